/**
 * How mail leaves the service: SMTP (SMTP_URL) through nodemailer, or, in development without SMTP_URL,
 * `.eml` files under the data directory (PGLITE_DIR/mail), so the first `bun run start` needs no mail server.
 * In production without SMTP_URL there is no transport: mail waits in the outbox, visible to
 * `bun run cli mail status`, instead of being reported sent and lost.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createTransport } from 'nodemailer';
import type { Config } from '../config';
import { DescribedError, errorCodes, type Logger } from '../lib/logger';
import type { RenderedMail } from './templates';

export interface OutgoingMessage extends RenderedMail {
  to: string;
  /** RFC 5322 §3.6.4, angle brackets included; the same on every attempt of one message. */
  messageId: string;
}

export interface MailTransport {
  /** `smtp://host:port` (never the credentials) or the directory the files go to. */
  readonly description: string;
  /** Resolves once the server accepted the message (250 after DATA), or the file is written. */
  send(message: OutgoingMessage): Promise<void>;
  /** Drops whatever connection a send left behind (it overran its deadline): the next send starts afresh. */
  reset(): void;
  close(): void;
}

type MailSettings = Pick<
  Config,
  'SMTP_URL' | 'MAIL_FROM' | 'APP_NAME' | 'PUBLIC_URL' | 'NODE_ENV' | 'PGLITE_DIR' | 'MAIL_SEND_TIMEOUT_SECONDS'
>;

/** The sender address: MAIL_FROM as given (`Name <a@b>` or `a@b`), else no-reply at PUBLIC_URL's host. */
export function mailFrom(config: Pick<Config, 'MAIL_FROM' | 'APP_NAME' | 'PUBLIC_URL'>): {
  name?: string;
  address: string;
} {
  const given = config.MAIL_FROM?.trim();
  if (given) {
    const named = /^\s*"?([^"<]*?)"?\s*<([^>]+)>\s*$/.exec(given);
    return named ? { name: named[1] || undefined, address: (named[2] as string).trim() } : { address: given };
  }
  const host = config.PUBLIC_URL ? new URL(config.PUBLIC_URL).hostname : 'localhost';
  return { name: config.APP_NAME, address: `no-reply@${host}` };
}

/** The Message-ID of an outbox row: its uuid at the sender's domain, so it is globally unique and stable. */
export const messageIdFor = (config: Pick<Config, 'MAIL_FROM' | 'APP_NAME' | 'PUBLIC_URL'>, uuid: string) =>
  `<${uuid}@${mailFrom(config).address.split('@').pop() || 'localhost'}>`;

/** The transport the configuration asks for; null in production without SMTP_URL (mail stays queued). */
export function createMailTransport(config: MailSettings, { logger }: { logger: Logger }): MailTransport | null {
  const from = mailFrom(config);
  const headers = {
    // RFC 3834 §5: machine-sent, so vacation responders and auto-replies leave it alone.
    'Auto-Submitted': 'auto-generated',
  };
  const compose = (message: OutgoingMessage) => ({
    from,
    to: message.to,
    subject: message.subject,
    text: message.text,
    html: message.html,
    messageId: message.messageId,
    headers,
  });

  if (config.SMTP_URL) {
    const smtpUrl = config.SMTP_URL;
    const timeoutMs = config.MAIL_SEND_TIMEOUT_SECONDS * 1000;
    const url = new URL(smtpUrl);
    // One pooled connection, reused from message to message: connecting (TCP, TLS, the greeting) costs more
    // than a message. The sender sends one message at a time, so one connection is all it can use. Every
    // wait is bounded by MAIL_SEND_TIMEOUT_SECONDS; a connection idle for a minute is closed.
    const connect = () =>
      createTransport({
        url: smtpUrl,
        pool: true,
        maxConnections: 1,
        idleTimeout: 60_000,
        connectionTimeout: timeoutMs,
        greetingTimeout: timeoutMs,
        socketTimeout: timeoutMs,
        dnsTimeout: timeoutMs,
      });
    let transporter = connect();
    return {
      description: `${url.protocol}//${url.host}`,
      send: async (message) => {
        await transporter.sendMail(compose(message));
      },
      reset: () => {
        // A conversation that overran its deadline would hold the pool's one connection: drop it.
        transporter.close();
        transporter = connect();
      },
      close: () => transporter.close(),
    };
  }
  if (config.NODE_ENV === 'production') return null;

  const dir = resolve(config.PGLITE_DIR, 'mail');
  const writer = createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    description: dir,
    send: async (message) => {
      const info = await writer.sendMail(compose(message));
      await mkdir(dir, { recursive: true });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const file = join(dir, `${stamp}-${message.messageId.replace(/^<|@.*$/g, '')}.eml`);
      await writeFile(file, info.message as Buffer, { mode: 0o600 });
      // The file, never the link: the log must not carry a token.
      logger.info('mail written to a file (no SMTP_URL)', { file, subject: message.subject });
    },
    reset: () => {},
    close: () => {},
  };
}

/**
 * A failure of this message rather than of the way to the server: the server refused the recipient or the
 * content with a 5xx (RFC 5321 §4.2.1: "permanent negative"). Retrying cannot help it. Everything else, a
 * refused connection, a timeout, a 4xx, a failed login, is the server's or the network's, and is retried.
 */
export function isPermanentFailure(error: unknown): boolean {
  const { permanent, command } = (error ?? {}) as { permanent?: unknown; command?: unknown };
  return permanent === true && typeof command === 'string' && (command.startsWith('RCPT') || command === 'DATA');
}

/**
 * What the outbox row keeps of a failure, for `cli mail status`: nodemailer's code and the socket's (a refused
 * connection is `ESOCKET (ECONNREFUSED)`), the SMTP command, and the server's reply ("550 5.1.1 no such user",
 * which names at most the recipient, whom the row names anyway). Our own errors give their sentence.
 */
export function describeMailFailure(error: unknown): string {
  if (error instanceof DescribedError) return error.message;
  const { command, response, originalCode } = (error ?? {}) as Record<string, unknown>;
  const codes = errorCodes(error);
  const name = codes.length > 0 ? codes.join(', ') : error instanceof Error ? error.name : typeof error;
  return [
    typeof originalCode === 'string' ? `${name} (${originalCode})` : name,
    typeof command === 'string' ? ` at ${command}` : '',
    typeof response === 'string' ? `: ${response.slice(0, 300)}` : '',
  ].join('');
}
