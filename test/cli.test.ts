import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { createPgliteDb } from '../src/db/client-pglite';
import { uniqueEmail } from './helpers';
import { runCli, SERVER_TEST_TIMEOUT_MS } from './server-process';

// Always its own PGlite directory, in PostgreSQL runs too: these tests need a database with no other admins.
const dir = mkdtempSync(join(tmpdir(), 'hpa-cli-test-'));
const env = { PGLITE_DIR: dir, BCRYPT_COST: '4' };
const PASSWORD = 'an admin passphrase';

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], input?: string) => runCli(args, env, input);

const createAdmin = (email: string, password = PASSWORD) => cli(['create-admin', '--email', email], `${password}\n`);

beforeAll(async () => {
  const migrated = await cli(['migrate']);
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
}, SERVER_TEST_TIMEOUT_MS);

// The tests of this block run in order on the one fresh database above, and tell one story of its admins:
// `first` is created alone (so it is the only enabled admin), then `second` joins.
describe('bun scripts/cli.ts', () => {
  const first = uniqueEmail('cli-admin');
  const second = uniqueEmail('cli-admin');

  test(
    'create-admin reads the password from stdin and creates the admin',
    async () => {
      const { code, stdout } = await createAdmin(first);
      expect(code).toBe(0);
      expect(stdout).toContain(`created admin ${first}`);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin refuses an email that already exists with exit 1',
    async () => {
      const { code, stderr } = await createAdmin(first);
      expect(code).toBe(1);
      expect(stderr).toContain('Email already registered');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'set-role refuses to demote the only enabled admin with exit 1',
    async () => {
      const { code, stderr } = await cli(['set-role', '--email', first, '--role', 'user']);
      expect(code).toBe(1);
      expect(stderr).toContain('no enabled admin');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'set-role demotes an admin once a second admin exists',
    async () => {
      expect((await createAdmin(second)).code).toBe(0);
      const { code, stdout } = await cli(['set-role', '--email', first, '--role', 'user']);
      expect(code).toBe(0);
      expect(stdout).toContain(`${first} is now user`);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'set-role promotes a user back to admin',
    async () => {
      const { code, stdout } = await cli(['set-role', '--email', first, '--role', 'admin']);
      expect(code).toBe(0);
      expect(stdout).toContain(`${first} is now admin`);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'set-role with an unknown role exits 2 naming the allowed roles',
    async () => {
      const { code, stderr } = await cli(['set-role', '--email', first, '--role', 'superuser']);
      expect(code).toBe(2);
      expect(stderr).toContain('--role must be one of user, admin');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'set-role for an unknown email exits 1',
    async () => {
      const { code, stderr } = await cli(['set-role', '--email', uniqueEmail('nobody'), '--role', 'admin']);
      expect(code).toBe(1);
      expect(stderr).toContain('No such user');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin with a too-short password exits 2 and says why, creating nobody',
    async () => {
      const email = uniqueEmail('cli-short');
      const { code, stderr } = await createAdmin(email, 'short');
      expect(code).toBe(2);
      expect(stderr).toContain('Password must be at least 8 characters');
      // Nobody was created: the same email then works with a good password.
      expect((await createAdmin(email)).code).toBe(0);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin without a password on stdin exits 2',
    async () => {
      const { code, stderr } = await cli(['create-admin', '--email', uniqueEmail('cli-empty')]);
      expect(code).toBe(2);
      expect(stderr).toContain('password');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin without --email exits 2',
    async () => {
      const { code, stderr } = await cli(['create-admin'], `${PASSWORD}\n`);
      expect(code).toBe(2);
      expect(stderr).toContain('--email is required');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'an unknown command exits 2 with the usage',
    async () => {
      const { code, stderr } = await cli(['make-coffee']);
      expect(code).toBe(2);
      expect(stderr).toContain('usage: bun run cli');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'prune deletes ended sessions and expired rate-limit counters, and says how many',
    async () => {
      // One ended session, one live session, one expired and one current rate-limit counter.
      const handle = await createPgliteDb(dir);
      try {
        await handle.db.execute(sql`
          insert into sessions (user_id, expires_at, revoked_at)
          select id, now() + interval '1 day', now() from users order by id limit 1`);
        await handle.db.execute(sql`
          insert into sessions (user_id, expires_at) select id, now() + interval '1 day' from users order by id limit 1`);
        await handle.db.execute(sql`
          insert into rate_limits (key, points, expire)
          values ('rl:test:old', 3, now() - interval '1 minute'), ('rl:test:new', 1, now() + interval '1 hour')`);
      } finally {
        await handle.close();
      }
      const { code, stdout } = await cli(['prune']);
      expect(code).toBe(0);
      expect(stdout).toContain('deleted 1 ended sessions and 1 expired rate-limit counters');
      expect((await cli(['prune'])).stdout).toContain('deleted 0 ended sessions and 0 expired rate-limit counters');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('bun scripts/cli.ts help', () => {
  test.each(['--help', 'help', '-h', 'create-admin --help'])(
    '`%s` prints the usage on stdout and exits 0',
    async (args) => {
      const { code, stdout, stderr } = await runCli(args.split(' '), env);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toContain('usage: bun run cli <command>');
      expect(stdout).toContain('create-admin --email <email>');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'no command at all is a usage error: exit 2',
    async () => {
      const { code, stderr } = await runCli([], env);
      expect(code).toBe(2);
      expect(stderr).toContain('usage: bun run cli');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('on a database that was never migrated', () => {
  // Its own PGlite directory: the first command creates it (initdb) and nothing migrates it.
  const empty = mkdtempSync(join(tmpdir(), 'hpa-cli-unmigrated-'));
  const unmigrated = { PGLITE_DIR: empty, BCRYPT_COST: '4' };
  afterAll(() => rmSync(empty, { recursive: true, force: true }));

  // Every row has its three members: bun takes a missing last argument for a `done` callback.
  const commands: [name: string, args: string[], input: string | undefined][] = [
    ['create-admin', ['create-admin', '--email', 'boss@example.com'], 'a long admin passphrase\n'],
    ['set-role', ['set-role', '--email', 'boss@example.com', '--role', 'admin'], undefined],
    ['prune', ['prune'], undefined],
    ['import-users', ['import-users', '--file', '-'], '{"email":"ada@example.com","hashed_password":"$2b$04$abc"}\n'],
  ];

  test.each(commands)(
    '%s exits 1 saying to run `bun run db:migrate`, and prints no query, email or hash',
    async (_name, args, input) => {
      const { code, stdout, stderr } = await runCli(args, unmigrated, input);
      expect(code).toBe(1);
      expect(stderr.trim()).toBe('error: the database is not migrated: run `bun run db:migrate` first');
      expect(`${stdout}${stderr}`).not.toMatch(/@example\.com|\$2[aby]\$|insert|select/i);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'status lists every migration as pending and names the command',
    async () => {
      const { code, stdout } = await runCli(['status'], unmigrated);
      expect(code).toBe(0);
      expect(stdout).toContain('pending  0000_init');
      expect(stdout).toContain('pending: run `bun run db:migrate`');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
