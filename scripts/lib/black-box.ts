/**
 * The project's black-box HTTP test files run against a server of someone else's (TEST_BASE_URL): by the
 * cross-runtime suite (scripts/test-runtimes.ts) on each runtime and by `bun run cluster:test` through
 * nginx. What the server needs for them, and how their result is read.
 */
import { runProcess } from './processes';

export const BLACK_BOX_TEST_FILES = [
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

/** test/helpers.ts TEST_SECRET_KEY: the tests forge tokens with it. */
export const BLACK_BOX_SECRET_KEY = 'test-secret-key-that-is-at-least-32-bytes-long';

/** The server's settings for these files, beside its database and port. */
export const BLACK_BOX_SERVER_ENV = {
  SECRET_KEY: BLACK_BOX_SECRET_KEY,
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
};

export interface SuiteResult {
  pass: number;
  fail: number;
  /** The `(fail) …` lines, once each. */
  failures: string[];
  output: string;
}

/** Runs the files against `baseUrl`, whose server uses the database at `databaseUrl` (the tests read it too). */
export async function runBlackBoxSuite(baseUrl: string, databaseUrl: string): Promise<SuiteResult> {
  const suite = await runProcess(['bun', 'test', ...BLACK_BOX_TEST_FILES], {
    env: { ...process.env, TEST_BASE_URL: baseUrl, TEST_DATABASE_URL: databaseUrl, FUZZ_RUNS: '40' },
  });
  const output = suite.stdout + suite.stderr;
  const failures = [...new Set(output.split('\n').filter((line) => line.startsWith('(fail)')))];
  const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, 'm').exec(output)?.[1] ?? 0);
  return { pass: count('pass'), fail: count('fail') || (suite.code === 0 ? 0 : 1), failures, output };
}
