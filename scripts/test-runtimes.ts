/**
 * The cross-runtime suite: `bun run test:runtimes [bun node deno workers]`. For each runtime it makes a
 * fresh PostgreSQL database, migrates it with the CLI, starts that runtime's real server on it, and runs
 * the project's black-box HTTP test files against the server (TEST_BASE_URL). Ends with one line
 * "N passed, N failed" over all runtimes; exits non-zero if any test failed or a server did not start.
 *
 * What differs from the in-process suite is listed in the README ("Runtimes"): tests that change the
 * configuration, inject a dependency or move the clock run against an in-process app even here.
 */
import { freePort, runProcess, type ServerProcess, stopAll } from './lib/processes';
import { buildRuntime, RUNTIMES, type RuntimeName, startRuntime } from './lib/runtimes';
import { dropAllScratchDatabases, scratchDatabase } from './lib/scratch-database';

const ADMIN_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const SECRET_KEY = 'test-secret-key-that-is-at-least-32-bytes-long'; // test/helpers.ts TEST_SECRET_KEY: tests forge tokens with it
const START_TIMEOUT_MS = 90_000; // wrangler's first start bundles the Worker
const FILES = [
  'auth',
  'users',
  'tokens',
  'sessions',
  'admin',
  'audit',
  'errors',
  'docs',
  'headers',
  'client',
  'password-policy',
  'mfa-flow',
  'fuzz',
].map((name) => `test/${name}.test.ts`);

/** Runs the suite against one runtime; returns the pass and fail counts bun test reported. */
async function suiteOn(name: RuntimeName): Promise<{ pass: number; fail: number }> {
  const database = await scratchDatabase(`xrt_${name}`, { adminUrl: ADMIN_URL, migrate: 'cli' });
  let server: ServerProcess | undefined;
  try {
    await buildRuntime(name);
    server = await startRuntime(name, {
      env: {
        PORT: String(freePort()), // polled: LOG_LEVEL=error leaves out the `listening` line
        DATABASE_URL: database.url,
        SECRET_KEY,
        BCRYPT_COST: '4',
        LOG_LEVEL: 'error',
        // As createTestApp has it (test/helpers.ts testConfig): registering queues no verification mail.
        EMAIL_VERIFICATION: 'off',
        // The suite logs in many times from one address; the limits have their own tests (rate-limit.test.ts).
        RATE_LIMIT_LOGIN_PER_IP: '0',
        RATE_LIMIT_LOGIN_FAILURES: '0',
        RATE_LIMIT_REGISTER_PER_IP: '0',
        RATE_LIMIT_RECOVERY_PER_IP: '0',
        RATE_LIMIT_ACCOUNT_FAILURES: '0',
        RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY: '0',
        // The suite's admins log in with the password alone, also on workerd (NODE_ENV=production in
        // wrangler.toml, where the policy is on by default); the policy has its own tests (mfa-policy.test.ts).
        MFA_REQUIRED_FOR_ADMINS: 'off',
      },
      timeoutMs: START_TIMEOUT_MS,
    });
    console.log(`\n==> ${name}: ${RUNTIMES[name].command.join(' ')} on ${server.url}`);
    const suite = await runProcess(['bun', 'test', ...FILES], {
      env: { ...process.env, TEST_BASE_URL: server.url, TEST_DATABASE_URL: database.url, FUZZ_RUNS: '40' },
    });
    const output = suite.stdout + suite.stderr;
    const failures = output.split('\n').filter((line) => line.startsWith('(fail)'));
    for (const line of new Set(failures)) console.log(`  ${line}`);
    if (failures.length > 0) {
      const log = `${process.env.TMPDIR ?? '/tmp'}/hpa-test-runtimes-${name}.log`;
      await Bun.write(log, `${output}\n--- the server's output ---\n${server.lines.join('\n')}\n`);
      console.log(`  the whole output: ${log}`);
    }
    const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, 'm').exec(output)?.[1] ?? 0);
    const result = { pass: count('pass'), fail: count('fail') || (suite.code === 0 ? 0 : 1) };
    console.log(`${name}: ${result.pass} passed, ${result.fail} failed`);
    return result;
  } finally {
    await server?.stop({ group: true }); // its own process group: wrangler starts workerd, and both must stop
    await database.drop();
  }
}

async function main(): Promise<number> {
  const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(RUNTIMES);
  const unknown = names.filter((name) => !(name in RUNTIMES));
  if (unknown.length > 0) {
    console.error(`unknown runtime ${unknown.join(', ')}; choose from ${Object.keys(RUNTIMES).join(', ')}`);
    return 2;
  }
  let pass = 0;
  let fail = 0;
  for (const name of names as RuntimeName[]) {
    try {
      const result = await suiteOn(name);
      pass += result.pass;
      fail += result.fail;
    } catch (error) {
      console.log(`${name}: did not run: ${error instanceof Error ? error.message : String(error)}`);
      fail += 1;
    }
  }
  console.log(`\n${pass} passed, ${fail} failed`);
  return fail === 0 ? 0 : 1;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void Promise.all([stopAll(), dropAllScratchDatabases()]).finally(() => process.exit(130));
  });
}

process.exit(await main());
