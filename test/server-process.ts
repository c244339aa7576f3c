/**
 * Real processes for the tests that need one (server.test.ts, rate-limit.test.ts, faults.test.ts,
 * runtimes.test.ts, binary.test.ts, the CLI tests): this project's commands started through
 * scripts/lib/processes.ts with the test environment, and the HTTP checks these tests run over TCP.
 * A file that starts servers stops what is left of them with `afterAll(stopAll, SERVER_TEST_TIMEOUT_MS)`.
 */
import { expect } from 'bun:test';
import {
  type ChildProcess,
  listeningLine,
  runProcess,
  type ServerProcess,
  spawnProcess,
  startServerProcess,
} from '../scripts/lib/processes';
import { type RuntimeName, startRuntime } from '../scripts/lib/runtimes';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { TEST_PASSWORD, TEST_SECRET_KEY, uniqueEmail } from './helpers';

export { PROJECT_ROOT, type ServerProcess, stopAll } from '../scripts/lib/processes';

/**
 * For a test that starts servers or runs the CLI. A start is seconds of work (Bun loads the sources, a new
 * PGlite directory is initialised: ~5 s alone, Deno compiles the sources once), and on a loaded 2-core
 * machine two or three times that; a stop may take up to the harness's 20 s before SIGKILL.
 */
export const SERVER_TEST_TIMEOUT_MS = 90_000;
/** How long a server may take to start before the test fails with its last output lines. */
export const START_TIMEOUT_MS = 60_000;

/** Every process of these tests: the test key (tests forge tokens with it), cheap bcrypt, info logs. */
// EMAIL_VERIFICATION as createTestApp has it: a server that registers users queues no mail (no .eml files).
const TEST_ENV = { SECRET_KEY: TEST_SECRET_KEY, BCRYPT_COST: '4', LOG_LEVEL: 'info', EMAIL_VERIFICATION: 'off' };

/** Runs `bun ...args` in the project with the test environment plus `env`; it runs until it exits or is stopped. */
export function spawnProject(args: string[], env: Record<string, string | undefined> = {}): ChildProcess {
  return spawnProcess(`bun ${args.join(' ')}`, ['bun', ...args], { env: { ...TEST_ENV, ...env } });
}

/** Runs `bun scripts/cli.ts ...args` to completion, with `input` on its stdin when given. */
export function runCli(args: string[], env: Record<string, string | undefined>, input?: string) {
  return runProcess(['bun', 'scripts/cli.ts', ...args], {
    env: { ...TEST_ENV, ...env },
    stdin: input === undefined ? 'ignore' : new Blob([input]),
  });
}

/**
 * The CLI on PGlite directories of its own (in PostgreSQL runs too): `fresh()` gives each test a copy of
 * one directory migrated once, so it sees exactly what it writes itself; `drop()` removes them all.
 */
export async function cliDatabases(prefix: string) {
  const template = await scratchDatabase(prefix, { migrate: 'cli' });
  const databases = [template];
  return {
    async fresh() {
      const database = await scratchDatabase(prefix, { copyOf: template });
      databases.push(database);
      return { database, cli: (args: string[], input?: string) => runCli(args, database.env, input) };
    },
    drop: () => Promise.all(databases.map((database) => database.drop())),
  };
}

/** Starts the server of a runtime (default Bun) on a port of its own; resolves once it serves. */
export function startServer(
  env: Record<string, string | undefined>,
  runtime: RuntimeName = 'bun',
): Promise<ServerProcess> {
  return startRuntime(runtime, { env: { ...TEST_ENV, ...env }, timeoutMs: START_TIMEOUT_MS });
}

/** Starts an executable of this project that announces its URL (the single binary), from `cwd`. */
export function startExecutable(
  cmd: string[],
  cwd: string,
  env: Record<string, string | undefined>,
): Promise<ServerProcess> {
  return startServerProcess(cmd.join(' '), cmd, {
    cwd,
    env: { ...TEST_ENV, HOST: '127.0.0.1', PORT: '0', ...env },
    ready: { line: listeningLine },
    timeoutMs: START_TIMEOUT_MS,
  });
}

/** A graceful stop: exit code 0 and the `stopped` log line. */
export async function expectGracefulStop(server: ServerProcess, options?: { group?: boolean }): Promise<void> {
  expect(await server.stop(options)).toBe(0);
  expect(server.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
}

export async function register(url: string, email: string, password = TEST_PASSWORD): Promise<void> {
  const res = await fetch(`${url}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  expect(res.status).toBe(201);
}

/** Logs in through the form endpoint and returns the access token. */
export async function login(url: string, email: string, password = TEST_PASSWORD): Promise<string> {
  const res = await fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ username: email, password }) });
  const body = (await res.json()) as { access_token?: string; detail?: string };
  expect({ status: res.status, detail: body.detail }).toEqual({ status: 200, detail: undefined });
  return body.access_token as string;
}

export async function expectMe(url: string, token: string, email: string): Promise<void> {
  const res = await fetch(`${url}/users/me`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { email: string }).email).toBe(email);
}

/** register → login → /users/me, over TCP. */
export async function expectAuthFlow(url: string, tag: string): Promise<string> {
  const email = uniqueEmail(tag);
  await register(url, email);
  await expectMe(url, await login(url, email), email);
  return email;
}

const DOCS: [path: string, contentType: string][] = [
  ['/docs', 'text/html'],
  ['/redoc', 'text/html'],
  ['/openapi.json', 'application/json'],
  ['/vendor/swagger-ui-dist/swagger-ui.css', 'text/css'],
  ['/vendor/swagger-ui-dist/swagger-ui-bundle.js', 'text/javascript'],
  ['/vendor/redoc/redoc.standalone.js', 'text/javascript'],
  ['/vendor/redoc/logo-mini.svg', 'image/svg+xml'],
];

/** Swagger UI, ReDoc and every asset they load, served by the service itself with the right types. */
export async function expectDocs(url: string): Promise<void> {
  const seen: string[] = [];
  for (const [path] of DOCS) {
    const res = await fetch(`${url}${path}`);
    const body = await res.text();
    seen.push(`${path} ${res.status} ${res.headers.get('Content-Type')?.split(';')[0]} ${body.length > 0}`);
    if (path.endsWith('redoc.standalone.js')) expect(body).not.toContain('cdn.redoc.ly');
  }
  expect(seen).toEqual(DOCS.map(([path, contentType]) => `${path} 200 ${contentType} true`));
}
