/**
 * An in-process app whose outbox sender delivers to a real SMTP server on loopback (smtp-sink.ts), as the
 * long-running runtimes wire it (runtimes/bootstrap.ts): the sender polls the outbox and is woken by every
 * request that queued mail.
 */
import { eq } from 'drizzle-orm';
import type { Database } from '../../src/db/database';
import { type MailOutboxRow, mailOutbox } from '../../src/db/schema';
import { createMailSender, type MailSender } from '../../src/mail/sender';
import { createMailTransport } from '../../src/mail/transport';
import { createTestApp, type TestClock } from '../helpers';
import type { SmtpSink } from './smtp-sink';

export const SENDER_POLL_MS = 25;

const running = new Set<MailSender>();

/**
 * Stops every sender the tests started (call it in afterEach): a sender left running, on a clock a test moved
 * forward, would take over other tests' messages as if their senders had died.
 */
export async function stopMailSenders(): Promise<void> {
  await Promise.all([...running].map((sender) => sender.stop()));
  running.clear();
}

export async function createMailTestApp({
  sink,
  env = {},
  clock,
}: {
  sink: SmtpSink;
  env?: Record<string, string>;
  clock?: TestClock;
}) {
  let sender: MailSender | undefined;
  const testApp = await createTestApp({
    env: { SMTP_URL: sink.url, EMAIL_VERIFICATION: 'optional', ...env },
    ...(clock ? { clock } : {}),
    mailQueued: () => sender?.wake(),
  });
  const { deps } = testApp;
  const transport = createMailTransport(deps.config, { logger: deps.logger });
  if (!transport) throw new Error('no mail transport');
  sender = createMailSender({ ...deps, transport }, { pollMs: SENDER_POLL_MS });
  sender.start();
  running.add(sender);
  return { ...testApp, sender };
}

/** The outbox rows to `recipient`, once `done` holds for them (polled: the sender works in the background). */
export async function rowsTo(
  db: Database,
  recipient: string,
  done: (rows: MailOutboxRow[]) => boolean,
  timeoutMs = 10_000,
): Promise<MailOutboxRow[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await db.select().from(mailOutbox).where(eq(mailOutbox.recipient, recipient));
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`outbox rows to ${recipient} never got there: ${JSON.stringify(rows)}`);
    await Bun.sleep(SENDER_POLL_MS);
  }
}
