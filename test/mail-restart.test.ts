/**
 * A real server process killed (SIGKILL) in the middle of an SMTP conversation, and a new one started on the
 * same database: nothing queued is lost, and the only message sent twice is the one that was in flight, with
 * the same Message-ID both times (README "Email": at-least-once).
 */
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_PASSWORD, testDatabaseUrl, uniqueEmail } from './helpers';
import { type ServerProcess, startServer } from './server-process';
import { type SinkMessage, startSmtpSink } from './support/smtp-sink';

const pgliteDir = mkdtempSync(join(tmpdir(), 'hpa-mail-restart-'));
afterAll(() => rmSync(pgliteDir, { recursive: true, force: true }));

// Two server starts (a fresh PGlite directory takes ~5 s) and one lease (2 × 3 + 5 = 11 s) on a busy machine.
const TIMEOUT_MS = 120_000;

async function register(server: ServerProcess, email: string) {
  const res = await fetch(`${server.url}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password: TEST_PASSWORD }),
  });
  expect(res.status).toBe(201);
}

test(
  'a sender killed mid-send loses nothing; only the message in flight goes out twice, with one Message-ID',
  async () => {
    const sink = await startSmtpSink();
    const databaseUrl = await testDatabaseUrl();
    const env = {
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : { PGLITE_DIR: pgliteDir }),
      SMTP_URL: sink.url,
      MAIL_SEND_TIMEOUT_SECONDS: '3',
      EMAIL_VERIFICATION: 'optional', // each registration queues its verification mail
    };
    const [inFlight, queued1, queued2] = ['in-flight', 'queued', 'queued'].map((tag) => uniqueEmail(tag)) as [
      string,
      string,
      string,
    ];
    sink.behave((to) => (to === inFlight ? { kind: 'stall' } : { kind: 'accept' }));
    let second: ServerProcess | undefined;
    const first = await startServer(env);
    try {
      await register(first, inFlight);
      await sink.waitFor((m) => m.to === inFlight); // the whole message is at the server, which never answers
      await register(first, queued1);
      await register(first, queued2);
      first.proc.kill('SIGKILL');
      await first.proc.exited;

      sink.behave(() => ({ kind: 'accept' }));
      second = await startServer(env);
      const acknowledged = (to: string) => (m: SinkMessage) => m.to === to && m.acknowledged;
      await sink.waitFor(acknowledged(queued1), 30_000);
      await sink.waitFor(acknowledged(queued2), 30_000);
      // The in-flight message waits for its lease to end (the new sender cannot know the old one is dead).
      await sink.waitFor(acknowledged(inFlight), 30_000);
      await Bun.sleep(500); // a duplicate would arrive by now
    } finally {
      first.proc.kill('SIGKILL');
      if (second) {
        second.proc.kill('SIGTERM');
        await second.proc.exited;
      }
      await sink.close();
    }
    expect(sink.to(queued1).map((m) => m.acknowledged)).toEqual([true]);
    expect(sink.to(queued2).map((m) => m.acknowledged)).toEqual([true]);
    const copies = sink.to(inFlight);
    expect(copies.map((m) => m.acknowledged)).toEqual([false, true]);
    expect(copies[1]?.messageId).toBe(copies[0]?.messageId as string);
  },
  TIMEOUT_MS,
);
