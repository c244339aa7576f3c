/**
 * An in-process app whose outbox sender delivers to a real SMTP server on loopback (smtp-sink.ts), as the
 * long-running runtimes wire it (runtimes/bootstrap.ts): the sender polls the outbox and is woken by every
 * request that queued mail.
 */
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
