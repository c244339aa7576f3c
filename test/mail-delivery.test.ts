/**
 * Delivery through the outbox when the SMTP server misbehaves: down, stalled, refusing (4xx, 5xx), dropping
 * the connection after taking the message. For each fault: what the request saw, and what became of every
 * message (README "Email", delivery guarantees).
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import type { Database } from '../src/db/database';
import { type MailOutboxRow, mailOutbox } from '../src/db/schema';
import { createLogger } from '../src/lib/logger';
import { createMailSender } from '../src/mail/sender';
import { createMailTransport, type MailTransport } from '../src/mail/transport';
import { enqueueMail, outboxStats, retryDeadMail, retryDelaySeconds } from '../src/services/outbox';
import {
  createTestApp,
  createTestClock,
  postJson,
  TEST_PASSWORD,
  type TestApp,
  testDatabaseUrl,
  uniqueEmail,
} from './helpers';
import { createMailTestApp, rowsTo, SENDER_POLL_MS, stopMailSenders } from './support/mail';
import { type SinkBehaviour, type SmtpSink, startSmtpSink } from './support/smtp-sink';

setDefaultTimeout(30_000);

const FAULT_ENV = { MAIL_MAX_ATTEMPTS: '3' };
// Short, so a stalled send gives up within the test (the lease is then 2 × 3 + 5 = 11 s).
const STALL_ENV = { ...FAULT_ENV, MAIL_SEND_TIMEOUT_SECONDS: '3' };

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterEach(async () => {
  await stopMailSenders();
  sink.behave(() => ACCEPT);
  await sink.start();
});
afterAll(() => sink.close());

const ACCEPT: SinkBehaviour = { kind: 'accept' };
/** The sink misbehaves for one recipient only, and accepts everyone else's mail. */
const onlyFor = (recipient: string, fault: SinkBehaviour) => (to: string) => (to === recipient ? fault : ACCEPT);

async function register(app: TestApp, email = uniqueEmail()) {
  const res = await postJson(app, '/register', { email, password: TEST_PASSWORD });
  expect(res.status).toBe(201);
  return email;
}

const oneRow = async (db: Database, recipient: string, done: (row: MailOutboxRow) => boolean) =>
  (await rowsTo(db, recipient, (rows) => rows.length === 1 && done(rows[0] as MailOutboxRow)))[0] as MailOutboxRow;

describe('delivery faults', () => {
  test('a stalled SMTP server holds neither the request nor the next request; the mail goes out later', async () => {
    const clock = createTestClock();
    const { app, deps, sender } = await createMailTestApp({ sink, clock, env: STALL_ENV });
    const stalled = uniqueEmail('stalled');
    sink.behave(onlyFor(stalled, { kind: 'stall' }));
    await register(app, stalled);
    await sink.waitFor((m) => m.to === stalled); // the sink holds the message and never answers
    // While the sender is stuck in that conversation, requests still answer at once.
    const next = await register(app);
    expect((await oneRow(deps.db, stalled, () => true)).status).toBe('sending');
    // The send gives up after MAIL_SEND_TIMEOUT_SECONDS and the message waits for its retry.
    const failed = await oneRow(deps.db, stalled, (row) => row.status === 'pending');
    expect(failed.lastError).toContain('ESENDTIMEOUT');
    sink.behave(() => ACCEPT);
    clock.advance(retryDelaySeconds(1) * 1000);
    sender.wake();
    await oneRow(deps.db, stalled, (row) => row.status === 'sent');
    await oneRow(deps.db, next, (row) => row.status === 'sent');
    // The stalled copy was never acknowledged; exactly one was.
    expect(sink.to(stalled).map((m) => m.acknowledged)).toEqual([false, true]);
    expect(new Set(sink.to(stalled).map((m) => m.messageId)).size).toBe(1);
    expect(sink.to(next).length).toBe(1);
  });

  test('SMTP down: the request still succeeds, and the mail goes out once after the server returns', async () => {
    const clock = createTestClock();
    const { app, deps, sender } = await createMailTestApp({ sink, clock, env: FAULT_ENV });
    await sink.stop();
    const email = await register(app);
    const waiting = await oneRow(deps.db, email, (row) => row.status === 'pending' && row.attempts === 1);
    expect(waiting.lastError).toContain('ECONNREFUSED');
    // The first retry comes 30 s later, by the app's clock.
    expect(waiting.nextAttemptAt.getTime() - clock.now().getTime()).toBe(retryDelaySeconds(1) * 1000);
    await sink.start();
    clock.advance(retryDelaySeconds(1) * 1000);
    sender.wake();
    const sent = await oneRow(deps.db, email, (row) => row.status === 'sent');
    expect(sent).toMatchObject({ attempts: 2, params: {}, lastError: null });
    expect(sink.to(email)).toHaveLength(1);
  });

  test('a 5xx for one recipient makes that message dead at once; the next message still goes out', async () => {
    const { app, deps } = await createMailTestApp({ sink, env: FAULT_ENV });
    const refused = uniqueEmail('refused');
    sink.behave(onlyFor(refused, { kind: 'reject', at: 'rcpt', code: 550 }));
    await register(app, refused);
    const next = await register(app);
    const dead = await oneRow(deps.db, refused, (row) => row.status === 'dead');
    expect(dead.attempts).toBe(1);
    expect(dead.lastError).toContain('550');
    await oneRow(deps.db, next, (row) => row.status === 'sent');
    expect(sink.to(next)).toHaveLength(1);
    expect(sink.to(refused)).toEqual([]);
  });

  test('a 4xx on every attempt: retried on the backoff schedule, dead after MAIL_MAX_ATTEMPTS, sent once retried', async () => {
    const clock = createTestClock();
    const { app, deps, sender } = await createMailTestApp({ sink, clock, env: FAULT_ENV });
    const busy = uniqueEmail('busy');
    sink.behave(onlyFor(busy, { kind: 'reject', at: 'data', code: 451 }));
    await register(app, busy);
    for (let attempt = 1; attempt < 3; attempt++) {
      const row = await oneRow(deps.db, busy, (r) => r.status === 'pending' && r.attempts === attempt);
      expect(row.nextAttemptAt.getTime() - clock.now().getTime()).toBe(retryDelaySeconds(attempt) * 1000);
      clock.advance(retryDelaySeconds(attempt) * 1000);
      sender.wake();
    }
    const dead = await oneRow(deps.db, busy, (row) => row.status === 'dead');
    expect(dead.attempts).toBe(3);
    expect(dead.lastError).toContain('451');

    sink.behave(() => ACCEPT);
    expect(await retryDeadMail(deps, { id: dead.id })).toBe(1);
    sender.wake();
    await oneRow(deps.db, busy, (row) => row.status === 'sent');
    expect(sink.to(busy).filter((m) => m.acknowledged)).toHaveLength(1);
  });

  test('a connection dropped after DATA (a lost reply): sent again, with the same Message-ID', async () => {
    const clock = createTestClock();
    const { app, deps, sender } = await createMailTestApp({ sink, clock, env: FAULT_ENV });
    const email = uniqueEmail('dropped');
    sink.behave(onlyFor(email, { kind: 'drop' }));
    await register(app, email);
    await oneRow(deps.db, email, (row) => row.status === 'pending' && row.attempts === 1);
    sink.behave(() => ACCEPT);
    clock.advance(retryDelaySeconds(1) * 1000);
    sender.wake();
    await oneRow(deps.db, email, (row) => row.status === 'sent');
    const copies = sink.to(email);
    expect(copies.map((m) => m.acknowledged)).toEqual([false, true]);
    expect(copies[0]?.messageId).toBe(copies[1]?.messageId as string);
  });

  test('a message no template can render is dead at once and holds up nothing', async () => {
    const { deps, sender } = await createMailTestApp({ sink, env: FAULT_ENV });
    const poison = uniqueEmail('poison');
    const next = uniqueEmail('next');
    const now = deps.clock.now();
    // A row this version cannot render (written by another version, or damaged), queued first.
    await deps.db
      .insert(mailOutbox)
      .values({ template: 'no-such-template', recipient: poison, createdAt: now, nextAttemptAt: now });
    await enqueueMail(deps, { template: 'test', to: next, params: {} });
    sender.wake();
    const dead = await oneRow(deps.db, poison, (row) => row.status === 'dead');
    expect(dead.lastError).toContain('unknown mail template');
    await oneRow(deps.db, next, (row) => row.status === 'sent');
  });
});

describe('several senders', () => {
  test('two senders on one database never send a message twice', async () => {
    const url = await testDatabaseUrl();
    const { deps } = await createTestApp({ env: { SMTP_URL: sink.url } });
    // On PostgreSQL each sender has its own connection pool, as two instances would; PGlite has one process.
    const { createPostgresDb } = await import('../src/db/client-postgres');
    const handles = url ? [createPostgresDb(url), createPostgresDb(url)] : [];
    const databases = url ? handles.map((h) => h.db) : [deps.db, deps.db];
    const tag = uniqueEmail('burst').replace('@', '-');
    const recipients = Array.from({ length: 40 }, (_, i) => `${tag}-${i}@example.com`);
    await deps.db.transaction(async (tx) => {
      for (const to of recipients)
        await enqueueMail({ db: tx, clock: deps.clock }, { template: 'test', to, params: {} });
    });
    const senders = databases.map((db) => {
      const transport = createMailTransport(deps.config, { logger: deps.logger });
      if (!transport) throw new Error('no transport');
      return createMailSender({ ...deps, db, transport }, { pollMs: SENDER_POLL_MS });
    });
    try {
      for (const sender of senders) sender.start();
      await sink.waitFor(() => recipients.every((to) => sink.to(to).length > 0), 20_000);
      await Bun.sleep(200); // a duplicate would arrive by now
    } finally {
      await Promise.all(senders.map((sender) => sender.stop()));
      await Promise.all(handles.map((h) => h.close()));
    }
    for (const to of recipients) expect(sink.to(to)).toHaveLength(1);
    const rows = await deps.db.select().from(mailOutbox).where(eq(mailOutbox.template, 'test'));
    const ours = rows.filter((row) => recipients.includes(row.recipient));
    expect(ours).toHaveLength(40);
    expect(ours.every((row) => row.status === 'sent' && row.attempts === 1)).toBe(true);
  });
});

describe('outbox numbers', () => {
  test('depth and oldest age grow while mail cannot go out; dead messages are counted', async () => {
    const clock = createTestClock();
    const { app, deps } = await createTestApp({ clock, env: { EMAIL_VERIFICATION: 'optional' } }); // no sender
    const before = await outboxStats(deps);
    const first = await register(app);
    await register(app);
    clock.advance(90_000);
    const after = await outboxStats(deps);
    expect(after.depth - before.depth).toBe(2);
    expect(after.oldestAgeSeconds).toBeGreaterThanOrEqual(90);
    await deps.db.update(mailOutbox).set({ status: 'dead' }).where(eq(mailOutbox.recipient, first));
    expect((await outboxStats(deps)).dead).toBe(after.dead + 1);
  });
});

describe('development without SMTP_URL', () => {
  test('mail is written as an .eml file under the data directory; the log names the file, never the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hpa-mail-files-'));
    const lines: string[] = [];
    try {
      const logger = createLogger('info', (line) => lines.push(line));
      const { app, deps } = await createTestApp({ logger, env: { EMAIL_VERIFICATION: 'optional', PGLITE_DIR: dir } });
      const transport = createMailTransport(deps.config, { logger });
      expect(transport?.description).toBe(join(dir, 'mail'));
      const email = await register(app);
      await createMailSender({ ...deps, transport: transport as MailTransport }).drain();
      const files = readdirSync(join(dir, 'mail')).map((name) => readFileSync(join(dir, 'mail', name), 'utf8'));
      const mine = files.find((text) => text.includes(`To: ${email}`)) as string;
      const token = /token=([A-Za-z0-9_-]{43})/.exec(mine)?.[1] as string;
      expect(token).toHaveLength(43);
      const logged = lines.filter((line) => line.includes('mail written'));
      expect(logged.length).toBeGreaterThan(0);
      expect(lines.join('\n')).not.toContain(token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('production without SMTP_URL has no transport: mail waits in the outbox', async () => {
    const { deps } = await createTestApp({ env: { NODE_ENV: 'production' } });
    expect(createMailTransport(deps.config, { logger: deps.logger })).toBeNull();
  });
});
