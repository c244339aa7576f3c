/**
 * A real SMTP server on loopback for the mail tests: `smtp-server` (by nodemailer's authors) as a sink that
 * parses what it receives with `mailparser`, and can misbehave on demand, per recipient: answer a 4xx or 5xx
 * at RCPT TO or after DATA, drop the connection after taking the whole message (the "lost reply"), stall
 * after DATA without ever answering, or be down altogether (its port closed).
 */
import type { Socket } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export type SinkBehaviour =
  | { kind: 'accept' }
  | { kind: 'reject'; at: 'rcpt' | 'data'; code: number }
  /** Takes the whole message, then closes the connection without replying: the client cannot know. */
  | { kind: 'drop' }
  /** Takes the whole message and never replies (until released or the client gives up). */
  | { kind: 'stall' };

export interface SinkMessage {
  /** Message-ID as sent, angle brackets included. */
  messageId: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  headers: ParsedMail['headers'];
  /** False when the sink took the message but did not answer 250 (drop, stall): the client saw no success. */
  acknowledged: boolean;
}

export interface SmtpSink {
  url: string;
  port: number;
  /** Every message whose DATA the sink received in full, in order, acknowledged or not. */
  messages: SinkMessage[];
  /** How to treat mail to each recipient from now on (default: accept everything). */
  behave(rule: (recipient: string) => SinkBehaviour): void;
  /** Resolves when a message matching `match` has been received (or already was). */
  waitFor(match: (message: SinkMessage) => boolean, timeoutMs?: number): Promise<SinkMessage>;
  /** Received messages to `recipient`. */
  to(recipient: string): SinkMessage[];
  /** Closes the port (connections are refused) until `start()`; stalled sessions are cut. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const ACCEPT: SinkBehaviour = { kind: 'accept' };

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

export async function startSmtpSink(): Promise<SmtpSink> {
  let rule: (recipient: string) => SinkBehaviour = () => ACCEPT;
  const messages: SinkMessage[] = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  let server: SMTPServer | undefined;
  let port = 0;

  const received = (message: SinkMessage) => {
    messages.push(message);
    for (const wake of waiters) wake();
  };

  function listen(): Promise<void> {
    const instance = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      disableReverseLookup: true, // loopback only; a reverse DNS lookup per connection would dominate every test
      logger: false,
      onRcptTo(address, _session, callback) {
        const behaviour = rule(address.address);
        if (behaviour.kind === 'reject' && behaviour.at === 'rcpt') {
          callback(smtpError(behaviour.code, behaviour.code >= 500 ? 'No such user here' : 'Try again later'));
          return;
        }
        callback();
      },
      onData(stream, session, callback) {
        const recipient = session.envelope.rcptTo[0]?.address ?? '';
        const behaviour = rule(recipient);
        void simpleParser(stream).then((parsed) => {
          const message = (acknowledged: boolean): SinkMessage => ({
            messageId: parsed.messageId ?? '',
            to: recipient,
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
            headers: parsed.headers,
            acknowledged,
          });
          if (behaviour.kind === 'reject' && behaviour.at === 'data') {
            callback(smtpError(behaviour.code, behaviour.code >= 500 ? 'Message refused' : 'Try again later'));
          } else if (behaviour.kind === 'drop') {
            received(message(false));
            for (const socket of sockets) socket.destroy();
          } else if (behaviour.kind === 'stall') {
            received(message(false)); // no callback: the client waits for a reply that never comes
          } else {
            received(message(true));
            callback();
          }
        });
      },
    });
    instance.server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    server = instance;
    return new Promise((resolve, reject) => {
      instance.once('error', reject);
      instance.listen(port, '127.0.0.1', () => {
        port = (instance.server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  async function stop() {
    const current = server;
    server = undefined;
    if (!current) return;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => current.close(() => resolve()));
  }

  await listen();
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    behave(next) {
      rule = next;
    },
    to: (recipient) => messages.filter((m) => m.to === recipient),
    async waitFor(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(match);
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching mail within ${timeoutMs} ms (${messages.length} received)`);
        await new Promise<void>((resolve) => {
          const done = () => {
            waiters.delete(done);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(done, left);
          waiters.add(done);
        });
      }
    },
    stop,
    start: () => (server ? Promise.resolve() : listen()),
    close: stop,
  };
}

/** The `token` parameter of the first link in a mail's text part. */
export function linkToken(message: Pick<SinkMessage, 'text'>): string {
  const url = /https?:\/\/\S+/.exec(message.text)?.[0];
  const token = url ? new URL(url).searchParams.get('token') : null;
  if (!token) throw new Error(`no link with a token in: ${message.text}`);
  return token;
}
