/**
 * The cross-runtime suite: `bun run test:runtimes [bun node deno workers]`. For each runtime it makes a
 * fresh PostgreSQL database, migrates it with the CLI, starts that runtime's real server on it, and runs
 * the project's black-box HTTP test files against the server (TEST_BASE_URL). Ends with one line
 * "N passed, N failed" over all runtimes; exits non-zero if any test failed or a server did not start.
 *
 * What differs from the in-process suite is listed in the README ("Runtimes"): tests that change the
 * configuration, inject a dependency or move the clock run against an in-process app even here.
 */
import { BLACK_BOX_SERVER_ENV, runBlackBoxSuite } from './lib/black-box';
import { freePort, type ServerProcess, stopAll } from './lib/processes';
import { buildRuntime, RUNTIMES, type RuntimeName, startRuntime } from './lib/runtimes';
import { dropAllScratchDatabases, scratchDatabase } from './lib/scratch-database';

const ADMIN_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const START_TIMEOUT_MS = 90_000; // wrangler's first start bundles the Worker

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
        ...BLACK_BOX_SERVER_ENV,
      },
      timeoutMs: START_TIMEOUT_MS,
    });
    console.log(`\n==> ${name}: ${RUNTIMES[name].command.join(' ')} on ${server.url}`);
    const result = await runBlackBoxSuite(server.url, database.url as string);
    for (const line of result.failures) console.log(`  ${line}`);
    if (result.failures.length > 0) {
      const log = `${process.env.TMPDIR ?? '/tmp'}/hpa-test-runtimes-${name}.log`;
      await Bun.write(log, `${result.output}\n--- the server's output ---\n${server.lines.join('\n')}\n`);
      console.log(`  the whole output: ${log}`);
    }
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
