import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { auditEvents, users } from '../src/db/schema';
import { importUsers, parseImportText } from '../src/services/import-users';
import { createTestApp, expectProblem, login, uniqueEmail } from './helpers';
import { cliDatabases, SERVER_TEST_TIMEOUT_MS } from './server-process';

// Made by the original app's hashing, pasted here so the test never runs Python:
//   /usr/bin/python3 -c "from passlib.hash import bcrypt; print(bcrypt.using(rounds=4).hash('Imported-From-FastAPI 1'))"
// (the app's own CryptContext(schemes=['bcrypt']) writes the same $2b$ format at cost 12).
const PASSLIB_2B = {
  password: 'Imported-From-FastAPI 1',
  hash: '$2b$04$rKIoGVl8TadaoaEcLov6wejn4V4K3QAUjjSVcsqsajO0F6pBekMjC',
};
const PASSLIB_2B_OTHER = {
  password: 'Another legacy secret 2',
  hash: '$2b$04$wQK5Yb5Irz4Pc/Al/uWtNu71egFGMDdaH3FcbunKkXKgPF8QEA22m',
};
//   bcrypt.using(rounds=4, ident='2y').hash('Yet another legacy 3')
const PASSLIB_2Y = {
  password: 'Yet another legacy 3',
  hash: '$2y$04$7WjVXKtqbe0vYrSC31IS6.k.IKk.9wcHTXf0aSJKY0MkLwyR2vhs.',
};
// passlib.hash.bcrypt.hash("password", rounds=12): on the blocklist today, yet an imported account keeps
// logging in with it; only setting a password checks the list.
const PASSLIB_COST_12 = { password: 'password', hash: '$2b$12$bIRGj4QPPoSUMWsJE.4Pk.T1qTpDWz7HhMnuiQhGzGinKPsx/HQdq' };
// A login with it is a cost-12 verify on a hash worker at idle priority: ≈ 250 ms idle, seconds on a loaded machine.
const COST_12_TIMEOUT_MS = 30_000;

const CLI_META = { ip: null, userAgent: 'import-users test' };

/** A row as `select row_to_json(u) from "user" u` prints it for the reference app's table. */
function referenceRow(email: string, hash: string, extra: Record<string, unknown> = {}) {
  return {
    id: Math.floor(Math.random() * 1000),
    email,
    hashed_password: hash,
    role: 'user',
    created_at: '2024-03-01T09:30:15.123456',
    last_login_time: null,
    ...extra,
  };
}

const jsonLines = (rows: unknown[]) => `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`;

const { app, deps } = await createTestApp();

describe('importUsers (in process)', () => {
  test(
    'imports passlib $2b$ and $2y$ hashes unchanged, and they log in through POST /token',
    async () => {
      const rows = [
        referenceRow(uniqueEmail('legacy'), PASSLIB_2B.hash),
        referenceRow(uniqueEmail('legacy'), PASSLIB_2Y.hash, {
          role: 'admin',
          last_login_time: '2024-05-06T07:08:09.5+00:00',
        }),
        referenceRow(uniqueEmail('legacy'), PASSLIB_COST_12.hash, { created_at: null }),
      ];
      const report = await importUsers(deps, { inputs: parseImportText(jsonLines(rows)), meta: CLI_META });
      expect(report.rejected).toEqual([]);
      expect(report.duplicates).toEqual([]);
      expect(report.imported.map((u) => u.email)).toEqual(rows.map((r) => r.email));

      const [first] = await deps.db
        .select()
        .from(users)
        .where(eq(users.email, rows[0]?.email as string));
      expect(first?.passwordHash).toBe(PASSLIB_2B.hash); // never rehashed
      expect(first?.createdAt.toISOString()).toBe('2024-03-01T09:30:15.123Z'); // naive timestamps are UTC
      expect(first?.role).toBe('user');
      const [second] = await deps.db
        .select()
        .from(users)
        .where(eq(users.email, rows[1]?.email as string));
      expect(second?.role).toBe('admin');
      expect(second?.lastLoginTime?.toISOString()).toBe('2024-05-06T07:08:09.500Z');

      expect((await login(app, rows[0]?.email as string, PASSLIB_2B.password)).status).toBe(200);
      expect((await login(app, rows[1]?.email as string, PASSLIB_2Y.password)).status).toBe(200);
      expect((await login(app, rows[2]?.email as string, PASSLIB_COST_12.password)).status).toBe(200);
      await expectProblem(await login(app, rows[0]?.email as string, PASSLIB_2Y.password), 401);
    },
    COST_12_TIMEOUT_MS,
  );

  test('writes one register audit event per imported user, marked imported', async () => {
    const email = uniqueEmail('legacy');
    const report = await importUsers(deps, {
      inputs: [{ line: 1, value: referenceRow(email, PASSLIB_2B.hash) }],
      meta: CLI_META,
    });
    const id = report.imported[0]?.id as number;
    const events = await deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.userId, id), eq(auditEvents.event, 'register')));
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toMatchObject({ imported: true });
    expect(events[0]?.userAgent).toBe(CLI_META.userAgent);
  });

  test('rejects bad emails, non-bcrypt hashes, unknown roles and broken JSON, naming the line and reason', async () => {
    const good = uniqueEmail('legacy');
    const text = [
      JSON.stringify(referenceRow('not-an-email', PASSLIB_2B.hash)),
      JSON.stringify(referenceRow(uniqueEmail('legacy'), 'pbkdf2_sha256$260000$abc$def')),
      JSON.stringify(referenceRow(uniqueEmail('legacy'), `${PASSLIB_2B.hash}x`)),
      JSON.stringify(referenceRow(uniqueEmail('legacy'), PASSLIB_2B.hash, { role: 'superuser' })),
      '{"email": ',
      '',
      JSON.stringify(referenceRow(good, PASSLIB_2B.hash)),
      JSON.stringify({ email: uniqueEmail('legacy') }),
    ].join('\n');
    const report = await importUsers(deps, { inputs: parseImportText(text), meta: CLI_META });
    expect(report.imported.map((u) => u.email)).toEqual([good]);
    expect(report.rejected.map((r) => r.line)).toEqual([1, 2, 3, 4, 5, 8]);
    const reasons = report.rejected.map((r) => r.reason);
    expect(reasons[0]).toContain('email: Invalid email address');
    expect(reasons[1]).toContain('hashed_password: Not a bcrypt hash');
    expect(reasons[2]).toContain('hashed_password: Not a bcrypt hash');
    expect(reasons[3]).toContain('role:');
    expect(reasons[4]).toBe('Not valid JSON');
    expect(reasons[5]).toContain('hashed_password');
  });

  test('is idempotent: emails already present, or repeated in the input (any case), are skipped and reported', async () => {
    const email = uniqueEmail('legacy');
    const rows = [referenceRow(email, PASSLIB_2B.hash), referenceRow(email.toUpperCase(), PASSLIB_2B_OTHER.hash)];
    const once = await importUsers(deps, { inputs: parseImportText(JSON.stringify(rows)), meta: CLI_META });
    expect(once.imported.map((u) => u.email)).toEqual([email]);
    expect(once.duplicates).toEqual([{ line: 2, email }]);

    const again = await importUsers(deps, { inputs: parseImportText(JSON.stringify(rows)), meta: CLI_META });
    expect(again.imported).toEqual([]);
    expect(again.duplicates.map((d) => d.line)).toEqual([1, 2]);
    // The first hash won; the skipped row changed nothing.
    expect((await login(app, email, PASSLIB_2B.password)).status).toBe(200);
  });

  test('skips an email registered through the API, keeping its password', async () => {
    const email = uniqueEmail('legacy');
    const res = await app.request('/register', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: 'an api chosen passphrase' }),
    });
    expect(res.status).toBe(201);
    const report = await importUsers(deps, {
      inputs: [{ line: 1, value: referenceRow(email, PASSLIB_2B.hash) }],
      meta: CLI_META,
    });
    expect(report.duplicates).toEqual([{ line: 1, email }]);
    expect((await login(app, email, 'an api chosen passphrase')).status).toBe(200);
  });

  test('commits in batches: every batch of a large input is imported', async () => {
    const rows = Array.from({ length: 7 }, () => referenceRow(uniqueEmail('batch'), PASSLIB_2B.hash));
    const report = await importUsers(deps, { inputs: parseImportText(jsonLines(rows)), meta: CLI_META, batchSize: 3 });
    expect(report.imported).toHaveLength(7);
    expect(new Set(report.imported.map((u) => u.id)).size).toBe(7);
  });

  test('reports progress after each committed batch', async () => {
    const rows = Array.from({ length: 7 }, () => referenceRow(uniqueEmail('progress'), PASSLIB_2B.hash));
    const progress: { done: number; total: number }[] = [];
    await importUsers(deps, {
      inputs: parseImportText(jsonLines([...rows, 'not an object'])),
      meta: CLI_META,
      batchSize: 3,
      onProgress: (step) => progress.push(step),
    });
    expect(progress).toEqual([
      { done: 3, total: 7 },
      { done: 6, total: 7 },
      { done: 7, total: 7 },
    ]);
  });

  test('a truncated JSON array is refused as a whole', () => {
    expect(parseImportText('[1, 2')).toEqual([{ line: 1, error: 'The input starts with [ but is not a JSON array' }]);
  });
});

describe('bun run cli import-users (a real process, its own PGlite)', () => {
  let databases: Awaited<ReturnType<typeof cliDatabases>>;
  let file: string;
  const good = [
    referenceRow(uniqueEmail('cli-legacy'), PASSLIB_2B.hash),
    referenceRow(uniqueEmail('cli-legacy'), PASSLIB_2Y.hash, { role: 'admin' }),
  ];

  beforeAll(async () => {
    databases = await cliDatabases('import_test');
    file = join(tmpdir(), `hpa-import-test-${process.pid}-${Date.now().toString(36)}-users.jsonl`);
    writeFileSync(file, jsonLines(good));
  }, SERVER_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await databases?.drop();
    if (file) rmSync(file, { force: true });
  });

  /** A new copy of the migrated database, with `good` imported already when `imported`. */
  async function freshCli({ imported = false } = {}) {
    const on = await databases.fresh();
    if (imported) {
      const { code, stderr } = await on.cli(['import-users', '--file', file]);
      if (code !== 0) throw new Error(`import-users failed: ${stderr}`);
    }
    return on;
  }

  test(
    'imports a JSON-lines file, exits 0, and the users log in with their original passwords',
    async () => {
      const { cli, database } = await freshCli();
      const { code, stdout, stderr } = await cli(['import-users', '--file', file]);
      // Not a terminal: one progress line per batch on stderr, nothing else there.
      expect({ code, stderr }).toEqual({ code: 0, stderr: 'importing: 2 of 2 valid rows written\n' });
      expect(stdout).toContain('imported 2, skipped 0 already registered, rejected 0');

      // Log in through the app, on the database the CLI wrote (this process opens it after the CLI exited).
      const handle = await database.open();
      try {
        const { app } = await createTestApp({ db: handle.db });
        expect((await login(app, good[0]?.email as string, PASSLIB_2B.password)).status).toBe(200);
        expect((await login(app, good[1]?.email as string, PASSLIB_2Y.password)).status).toBe(200);
      } finally {
        await handle.close();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'reads stdin with --file -, skips what is already there, reports rejected rows and exits 1',
    async () => {
      const { cli } = await freshCli({ imported: true });
      const fresh = referenceRow(uniqueEmail('cli-legacy'), PASSLIB_2B_OTHER.hash);
      const input = jsonLines([...good, referenceRow('nobody', PASSLIB_2B.hash), fresh]);
      const { code, stdout, stderr } = await cli(['import-users', '--file', '-'], input);
      expect(code).toBe(1);
      expect(stdout).toContain(`line 1: skipped ${good[0]?.email}: already registered`);
      expect(stdout).toContain('imported 1, skipped 2 already registered, rejected 1');
      expect(stderr).toContain('line 3: rejected: email: Invalid email address');
      expect(stderr).toContain('1 row(s) rejected');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'a second run of the same file changes nothing and exits 0',
    async () => {
      const { cli } = await freshCli({ imported: true });
      const { code, stdout } = await cli(['import-users', '--file', file]);
      expect(code).toBe(0);
      expect(stdout).toContain('imported 0, skipped 2 already registered, rejected 0');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin refuses a common password with a reason',
    async () => {
      const { cli } = await freshCli();
      const { code, stderr } = await cli(['create-admin', '--email', uniqueEmail('cli-admin')], 'password123\n');
      expect(code).toBe(2);
      expect(stderr).toContain('password: Password is too common; choose another');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
