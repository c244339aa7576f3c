/**
 * `bun run cli mail …` and the mail side of `create-admin`, as an operator runs them: real processes, their
 * own PGlite directory, a real SMTP sink.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { createPgliteDb } from '../src/db/client-pglite';
import { mailOutbox, users } from '../src/db/schema';
import { systemClock } from '../src/lib/clock';
import { enqueueMail } from '../src/services/outbox';
import { uniqueEmail } from './helpers';
import { runCli, SERVER_TEST_TIMEOUT_MS } from './server-process';
import { type SmtpSink, startSmtpSink } from './support/smtp-sink';

setDefaultTimeout(SERVER_TEST_TIMEOUT_MS);

const dir = mkdtempSync(join(tmpdir(), 'hpa-mail-cli-'));
let sink: SmtpSink;
const cli = (args: string[], env: Record<string, string> = {}, input?: string) =>
  runCli(args, { PGLITE_DIR: dir, BCRYPT_COST: '4', SMTP_URL: sink.url, ...env }, input);

/** The CLI's database, opened between commands (a PGlite directory has one process at a time). */
async function withDatabase<T>(work: (db: Awaited<ReturnType<typeof createPgliteDb>>['db']) => Promise<T>) {
  const handle = await createPgliteDb(dir);
  try {
    return await work(handle.db);
  } finally {
    await handle.close();
  }
}

beforeAll(async () => {
  sink = await startSmtpSink();
  const migrated = await runCli(['migrate'], { PGLITE_DIR: dir });
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
});
afterAll(async () => {
  await sink.close();
  rmSync(dir, { recursive: true, force: true });
});

test('create-admin marks the address verified and mails nothing', async () => {
  const email = uniqueEmail('cli-admin');
  expect((await cli(['create-admin', '--email', email], {}, 'an admin passphrase\n')).code).toBe(0);
  await withDatabase(async (db) => {
    const [admin] = await db.select().from(users).where(eq(users.email, email));
    expect(admin?.emailVerifiedAt).toBeInstanceOf(Date);
    expect(await db.select().from(mailOutbox).where(eq(mailOutbox.recipient, email))).toEqual([]);
  });
});

describe('mail status, send and retry', () => {
  const good = uniqueEmail('cli-good');
  const refused = uniqueEmail('cli-refused');

  test('send delivers what is due; a refused message is dead and status says why', async () => {
    await withDatabase((db) =>
      db.transaction(async (tx) => {
        for (const to of [refused, good])
          await enqueueMail({ db: tx, clock: systemClock }, { template: 'test', to, params: {} });
      }),
    );
    sink.behave((to) => (to === refused ? { kind: 'reject', at: 'rcpt', code: 550 } : { kind: 'accept' }));
    const sent = await cli(['mail', 'send']);
    expect(sent.code).toBe(0);
    expect(sent.stdout).toContain('attempted 2; waiting 0, dead 1');
    expect(sink.to(good)).toHaveLength(1);

    const status = await cli(['mail', 'status']);
    expect(status.stdout).toContain('waiting 0 (sending now 0), oldest 0 s, dead 1');
    expect(status.stdout).toMatch(new RegExp(`dead \\d+  test to ${refused}, 1 attempts: .*550`));
  });

  test('retry queues a dead message again, and the next send delivers it', async () => {
    const id = (await cli(['mail', 'status'])).stdout.match(/dead (\d+) {2}test/)?.[1] as string;
    sink.behave(() => ({ kind: 'accept' }));
    const retried = await cli(['mail', 'retry', id]);
    expect(retried.stdout).toContain('queued 1 message(s) again');
    expect((await cli(['mail', 'send'])).stdout).toContain('attempted 1; waiting 0, dead 0');
    expect(sink.to(refused)).toHaveLength(1);
  });

  test('retry of a message that is not dead fails; without an id it is a usage error', async () => {
    const missing = await cli(['mail', 'retry', '999999']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no dead message 999999');
    expect((await cli(['mail', 'retry'])).code).toBe(2);
    expect((await cli(['mail', 'frobnicate'])).code).toBe(2);
  });
});

describe('mail test', () => {
  test('sends through the configured SMTP server at once', async () => {
    const to = uniqueEmail('cli-test');
    const { code, stdout } = await cli(['mail', 'test', '--to', to]);
    expect(code).toBe(0);
    expect(stdout).toContain(`to ${to} via smtp://127.0.0.1:${sink.port}`);
    expect((await sink.waitFor((m) => m.to === to)).subject).toContain('test message');
  });

  test('reports an unreachable server with the reason, exit 1', async () => {
    await sink.stop();
    try {
      const { code, stderr } = await cli(['mail', 'test', '--to', uniqueEmail('cli-test')]);
      expect(code).toBe(1);
      expect(stderr).toContain('ECONNREFUSED');
    } finally {
      await sink.start();
    }
  });

  test('without SMTP_URL in development, writes an .eml file under the data directory', async () => {
    const to = uniqueEmail('cli-file');
    const { code, stdout } = await cli(['mail', 'test', '--to', to], { SMTP_URL: '' });
    expect(code).toBe(0);
    const [file] = readdirSync(join(dir, 'mail')).filter((name) => name.endsWith('.eml'));
    expect(stdout).toContain(join(dir, 'mail', file as string));
    expect(readFileSync(join(dir, 'mail', file as string), 'utf8')).toContain(`To: ${to}`);
  });

  test('in production without SMTP_URL there is nothing to send with', async () => {
    // A key as `openssl rand -base64 48` makes one: production refuses low-entropy keys.
    const SECRET_KEY = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString('base64');
    const env = { SMTP_URL: '', NODE_ENV: 'production', SECRET_KEY };
    const { code, stderr } = await cli(['mail', 'test', '--to', uniqueEmail('cli-test')], env);
    expect(code).toBe(1);
    expect(stderr).toContain('SMTP_URL is not set');
  });
});
