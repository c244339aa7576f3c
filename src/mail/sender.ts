/**
 * The outbox sender: an in-process loop in every long-running instance (runtimes/bootstrap.ts). It claims
 * one due message at a time (services/outbox.ts: `FOR UPDATE SKIP LOCKED`, so instances on one database
 * share the work and never take the same message), prepares it (a link mail gets its token, or is skipped
 * when no account qualifies: services/recovery.ts), renders it, hands it to the transport and records the
 * outcome. Requests only insert rows: the SMTP server's speed or health never reaches them.
 */
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { Clock } from '../lib/clock';
import { describeError, errorCodes, type Logger } from '../lib/logger';
import { type ClaimedMail, claimNextMail, completeMail, failMail, skipMail } from '../services/outbox';
import { ClaimLostError, prepareLinkMail } from '../services/recovery';
import { renderMail, TemplateError } from './templates';
import { describeMailFailure, isPermanentFailure, type MailTransport, messageIdFor } from './transport';

export interface SenderDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  config: Config;
  transport: MailTransport;
}

export interface MailSender {
  /** Starts the loop (idempotent). */
  start(): void;
  /** Sends at once instead of at the next poll: called after a request queued mail. */
  wake(): void;
  /** Stops claiming and closes the transport; resolves once the message in hand (if any) is done, or after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Sends every message due now, then resolves with how many were attempted (the CLI's `mail send`). */
  drain(): Promise<number>;
}

const DEFAULT_POLL_MS = 1_000; // how often an idle sender looks for due mail (retries, other instances' rows)
const DEFAULT_STOP_GRACE_MS = 5_000;

class SendTimeout extends Error {
  override name = 'SendTimeout';
  readonly code = 'ESENDTIMEOUT';
}

/** Rejects after `ms`: the transport's own timeouts bound each wait, this bounds the whole delivery. */
function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SendTimeout()), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export function createMailSender(deps: SenderDeps, { pollMs = DEFAULT_POLL_MS }: { pollMs?: number } = {}): MailSender {
  const { logger, config, transport } = deps;
  let running = false;
  let stopping = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  /**
   * One message, start to finish; every outcome of the delivery is recorded on the row. Only a database
   * error escapes (the loop polls again; the row's lease brings the message back).
   */
  async function deliver(mail: ClaimedMail): Promise<void> {
    const fields = { mailId: mail.id, template: mail.template, attempt: mail.attempts };
    if (mail.attempts > config.MAIL_MAX_ATTEMPTS) {
      // Claimed more often than allowed without an outcome: its senders died mid-send each time.
      await failMail(deps, { mail, error: 'no outcome after the maximum of attempts', permanent: true });
      logger.error('mail dead: its senders stopped mid-send on every attempt', fields);
      return;
    }
    let prepared: ClaimedMail | null;
    try {
      prepared = await prepareLinkMail(deps, mail);
    } catch (error) {
      if (!(error instanceof ClaimLostError)) throw error; // the database: the loop retries after a poll
      logger.warn('mail taken over by another sender while being prepared', fields);
      return;
    }
    if (!prepared) {
      // No account qualifies (an unknown or disabled address, or verified meanwhile): nothing to send.
      await skipMail(deps, mail);
      logger.debug('mail skipped: no account qualifies', fields);
      return;
    }
    try {
      const rendered = renderMail(config, prepared);
      const messageId = messageIdFor(config, mail.messageId);
      await withDeadline(
        transport.send({ ...rendered, to: mail.recipient, messageId }),
        config.MAIL_SEND_TIMEOUT_SECONDS * 1000,
      );
    } catch (error) {
      if (error instanceof SendTimeout) transport.reset();
      const permanent = error instanceof TemplateError || isPermanentFailure(error);
      const status = await failMail(deps, { mail, error: describeMailFailure(error), permanent });
      const log = {
        ...fields,
        error: describeError(error),
        responseCode: (error as { responseCode?: unknown }).responseCode,
      };
      if (status === 'dead') logger.error('mail dead: it will not be retried (`bun run cli mail retry ID`)', log);
      else logger.warn('mail not sent; it will be retried', log);
      return;
    }
    if (await completeMail(deps, mail)) logger.info('mail sent', fields);
    // Our lease ran out mid-send and another sender took the message over: it may go out twice, with this
    // same Message-ID (the documented at-least-once).
    else logger.warn('mail sent after its lease ran out; another sender may send it again', fields);
  }

  /** Claims and delivers due messages until none is left (or the sender stops); returns how many. */
  async function sendDue(): Promise<number> {
    let attempted = 0;
    for (;;) {
      if (stopping) return attempted;
      const mail = await claimNextMail(deps);
      if (!mail) return attempted;
      attempted++;
      await deliver(mail);
    }
  }

  function sleep(ms: number): Promise<void> {
    if (woken) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });
  }

  let lastFailureLog = 0;
  async function run(): Promise<void> {
    while (running) {
      try {
        await sendDue();
      } catch (error) {
        // The database is down or the claim failed: keep polling; one line a minute, not one per poll.
        if (Date.now() - lastFailureLog > 60_000) {
          lastFailureLog = Date.now();
          logger.warn('mail sender cannot reach the outbox; retrying', {
            error: describeError(error),
            codes: errorCodes(error),
          });
        }
      }
      if (running) await sleep(pollMs);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopping = false;
      logger.info('mail sender started', { transport: transport.description });
      loop = run();
    },
    wake() {
      if (wakeUp) wakeUp();
      else woken = true;
    },
    async stop(graceMs = DEFAULT_STOP_GRACE_MS) {
      if (!running) return;
      running = false;
      stopping = true;
      wakeUp?.();
      // A message still in hand after the grace keeps its lease: the next sender to start takes it over.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      loop = undefined;
      transport.close();
    },
    drain: () => sendDue(),
  };
}
