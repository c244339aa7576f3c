import { afterAll, describe, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { uniqueEmail } from './helpers';
import { cliDatabases, runCli, SERVER_TEST_TIMEOUT_MS } from './server-process';

const PASSWORD = 'an admin passphrase';

// PGlite directories of their own, in PostgreSQL runs too: these tests count every admin of the database.
const databases = await cliDatabases('cli_test');
afterAll(() => databases.drop(), SERVER_TEST_TIMEOUT_MS); // a dozen PGlite directories to remove

/** The CLI on a new copy of the migrated database, and the admins a test makes with it. */
async function freshCli() {
  const on = await databases.fresh();
  const createAdmin = (email: string, password = PASSWORD) =>
    on.cli(['create-admin', '--email', email], `${password}\n`);
  /** What a test starts from, not what it checks: an admin that exists. */
  const givenAdmin = async (email: string) => {
    const { code, stderr } = await createAdmin(email);
    if (code !== 0) throw new Error(`create-admin ${email} failed: ${stderr}`);
  };
  return { ...on, createAdmin, givenAdmin };
}

/** A test of the CLI on a database of its own; each step is a process of its own, seconds on a busy machine. */
const cliTest = (name: string, body: (on: Awaited<ReturnType<typeof freshCli>>) => Promise<void>) =>
  test(name, async () => body(await freshCli()), SERVER_TEST_TIMEOUT_MS);

/** Refusals before any change: the test name, the arguments, stdin, the exit code and what stderr says. */
const REFUSALS: [string, string[], string | undefined, number, string][] = [
  [
    'set-role with an unknown role exits 2 naming the allowed roles',
    ['set-role', '--email', uniqueEmail('cli-admin'), '--role', 'superuser'],
    undefined,
    2,
    '--role must be one of user, admin',
  ],
  [
    'set-role for an unknown email exits 1',
    ['set-role', '--email', uniqueEmail('nobody'), '--role', 'admin'],
    undefined,
    1,
    'No such user',
  ],
  [
    'create-admin without a password on stdin exits 2',
    ['create-admin', '--email', uniqueEmail('cli-empty')],
    undefined,
    2,
    'password',
  ],
  ['create-admin without --email exits 2', ['create-admin'], `${PASSWORD}\n`, 2, '--email is required'],
  ['an unknown command exits 2 with the usage', ['make-coffee'], undefined, 2, 'usage: bun run cli'],
];

describe('bun scripts/cli.ts', () => {
  cliTest('create-admin reads the password from stdin and creates the admin', async ({ createAdmin }) => {
    const first = uniqueEmail('cli-admin');
    const { code, stdout } = await createAdmin(first);
    expect(code).toBe(0);
    expect(stdout).toContain(`created admin ${first}`);
  });

  cliTest('create-admin refuses an email that already exists with exit 1', async ({ createAdmin, givenAdmin }) => {
    const first = uniqueEmail('cli-admin');
    await givenAdmin(first);
    const { code, stderr } = await createAdmin(first);
    expect(code).toBe(1);
    expect(stderr).toContain('Email already registered');
  });

  cliTest('set-role refuses to demote the only enabled admin with exit 1', async ({ cli, givenAdmin }) => {
    const first = uniqueEmail('cli-admin');
    await givenAdmin(first);
    const { code, stderr } = await cli(['set-role', '--email', first, '--role', 'user']);
    expect(code).toBe(1);
    expect(stderr).toContain('no enabled admin');
  });

  cliTest('set-role demotes an admin once a second admin exists', async ({ cli, createAdmin, givenAdmin }) => {
    const [first, second] = [uniqueEmail('cli-admin'), uniqueEmail('cli-admin')];
    await givenAdmin(first);
    expect((await createAdmin(second)).code).toBe(0);
    const { code, stdout } = await cli(['set-role', '--email', first, '--role', 'user']);
    expect(code).toBe(0);
    expect(stdout).toContain(`${first} is now user`);
  });

  cliTest('set-role promotes a user back to admin', async ({ cli, givenAdmin }) => {
    const [first, second] = [uniqueEmail('cli-admin'), uniqueEmail('cli-admin')];
    await givenAdmin(first);
    await givenAdmin(second);
    const demoted = await cli(['set-role', '--email', first, '--role', 'user']);
    if (demoted.code !== 0) throw new Error(`set-role failed: ${demoted.stderr}`);
    const { code, stdout } = await cli(['set-role', '--email', first, '--role', 'admin']);
    expect(code).toBe(0);
    expect(stdout).toContain(`${first} is now admin`);
  });

  test.each(REFUSALS)(
    '%s',
    async (_, args, input, exitCode, message) => {
      const { cli } = await freshCli();
      const { code, stderr } = await cli(args, input);
      expect(code).toBe(exitCode);
      expect(stderr).toContain(message);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  cliTest('create-admin with a too-short password exits 2 and says why, creating nobody', async ({ createAdmin }) => {
    const email = uniqueEmail('cli-short');
    const { code, stderr } = await createAdmin(email, 'short');
    expect(code).toBe(2);
    expect(stderr).toContain('Password must be at least 8 characters');
    // Nobody was created: the same email then works with a good password.
    expect((await createAdmin(email)).code).toBe(0);
  });

  cliTest(
    'prune deletes ended sessions and expired rate-limit counters, and says how many',
    async ({ cli, database, givenAdmin }) => {
      await givenAdmin(uniqueEmail('cli-admin')); // the user the sessions belong to
      // One ended session, one live session, one expired and one current rate-limit counter.
      const handle = await database.open();
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
  );
});

describe('bun scripts/cli.ts help', () => {
  const env = { BCRYPT_COST: '4' }; // help needs no database: none is opened
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

// Its own PGlite directory: the first command creates it (initdb) and nothing migrates it.
const empty = await scratchDatabase('cli_unmigrated');
afterAll(() => empty.drop(), SERVER_TEST_TIMEOUT_MS);

describe('on a database that was never migrated', () => {
  const unmigrated = { ...empty.env, BCRYPT_COST: '4' };

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
