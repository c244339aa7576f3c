/**
 * The cross-runtime suite: `bun run test:runtimes [bun node deno workers]`. For each runtime it makes a
 * fresh PostgreSQL database, migrates it with the CLI, starts that runtime's real server on it, and runs
 * the project's black-box HTTP test files against the server (TEST_BASE_URL). Ends with one line
 * "N passed, N failed" over all runtimes; exits non-zero if any test failed or a server did not start.
 *
 * What differs from the in-process suite is listed in the README ("Runtimes"): tests that change the
 * configuration, inject a dependency or move the clock run against an in-process app even here.
 */
import type { Subprocess } from 'bun';
import postgres from 'postgres';
import { freePort, RUNTIMES, type RuntimeCommand, type RuntimeName } from './runtimes';

const ROOT = new URL('..', import.meta.url).pathname;
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
  'fuzz',
].map((name) => `test/${name}.test.ts`);

function run(cmd: string[], env: Record<string, string | undefined> = {}) {
  const result = Bun.spawnSync(cmd, { cwd: ROOT, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe' });
  if (result.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed:\n${result.stderr.toString()}`);
}

async function waitForHealth(url: string, server: Subprocess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`exited with code ${server.exitCode} before serving`);
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(250);
  }
  throw new Error(`no answer on ${url}/health within ${START_TIMEOUT_MS / 1000} s`);
}

/** Runs the suite against one runtime; returns the pass and fail counts bun test reported. */
async function suiteOn(
  name: string,
  runtime: RuntimeCommand,
  admin: postgres.Sql,
): Promise<{ pass: number; fail: number }> {
  const database = `hpa_xrt_${name}_${process.pid}_${Date.now().toString(36)}`;
  const databaseUrl = Object.assign(new URL(ADMIN_URL), { pathname: `/${database}` }).href;
  await admin.unsafe(`create database "${database}"`);
  let server: Subprocess | undefined;
  try {
    run(['bun', 'scripts/cli.ts', 'migrate'], { DATABASE_URL: databaseUrl });
    if (runtime.build) run(runtime.build);
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    server = Bun.spawn(runtime.command, {
      cwd: ROOT,
      detached: true, // its own process group: wrangler starts workerd, and both must stop
      stdout: 'ignore',
      stderr: 'inherit',
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        HOST: '127.0.0.1',
        PORT: String(port),
        DATABASE_URL: databaseUrl,
        SECRET_KEY,
        BCRYPT_COST: '4',
        LOG_LEVEL: 'error',
        // The suite logs in many times from one address; the limits have their own tests (rate-limit.test.ts).
        RATE_LIMIT_LOGIN_PER_IP: '0',
        RATE_LIMIT_LOGIN_FAILURES: '0',
        RATE_LIMIT_REGISTER_PER_IP: '0',
      },
    });
    await waitForHealth(url, server);
    console.log(`\n==> ${name}: ${runtime.command.join(' ')} on ${url}`);
    const suite = Bun.spawn(['bun', 'test', ...FILES], {
      cwd: ROOT,
      env: { ...process.env, TEST_BASE_URL: url, TEST_DATABASE_URL: databaseUrl, FUZZ_RUNS: '40' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const [stdout, stderr] = await Promise.all([new Response(suite.stdout).text(), new Response(suite.stderr).text()]);
    await suite.exited;
    const output = stdout + stderr;
    const failures = output.split('\n').filter((line) => line.startsWith('(fail)'));
    for (const line of new Set(failures)) console.log(`  ${line}`);
    if (failures.length > 0) {
      const log = `${process.env.TMPDIR ?? '/tmp'}/hpa-test-runtimes-${name}.log`;
      await Bun.write(log, output);
      console.log(`  the whole output: ${log}`);
    }
    const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, 'm').exec(output)?.[1] ?? 0);
    const result = { pass: count('pass'), fail: count('fail') || (suite.exitCode === 0 ? 0 : 1) };
    console.log(`${name}: ${result.pass} passed, ${result.fail} failed`);
    return result;
  } finally {
    if (server) {
      try {
        process.kill(-server.pid, 'SIGTERM');
      } catch {}
      await Promise.race([server.exited, Bun.sleep(10_000)]);
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {}
    }
    await admin.unsafe(`drop database if exists "${database}" with (force)`);
  }
}

async function main(): Promise<number> {
  const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(RUNTIMES);
  const unknown = names.filter((name) => !(name in RUNTIMES));
  if (unknown.length > 0) {
    console.error(`unknown runtime ${unknown.join(', ')}; choose from ${Object.keys(RUNTIMES).join(', ')}`);
    return 2;
  }
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  let pass = 0;
  let fail = 0;
  try {
    for (const name of names) {
      try {
        const result = await suiteOn(name, RUNTIMES[name as RuntimeName], admin);
        pass += result.pass;
        fail += result.fail;
      } catch (error) {
        console.log(`${name}: did not run: ${error instanceof Error ? error.message : String(error)}`);
        fail += 1;
      }
    }
  } finally {
    await admin.end();
  }
  console.log(`\n${pass} passed, ${fail} failed`);
  return fail === 0 ? 0 : 1;
}

process.exit(await main());
