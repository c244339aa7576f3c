import { eq } from 'drizzle-orm';
import { scratchDatabase, scratchPglite } from '../scripts/lib/scratch-database';
import { type AccessBus, type AccessSink, localOnlyBus, startAccessBus } from '../src/access/listener';
import { createApp } from '../src/app';
import { type Config, parseConfig } from '../src/config';
import type { Database, DatabaseHandle } from '../src/db/database';
import { users } from '../src/db/schema';
import { type AppDeps, accessSink, buildDeps, createInstance } from '../src/deps';
import { readAssetFromNodeModules } from '../src/docs/read-node-modules';
import { createBunHasher } from '../src/hashing/bun';
import type { Clock } from '../src/lib/clock';
import { createLogger } from '../src/lib/logger';
import { createPrometheusMetrics } from '../src/observability/prometheus';
import { createRateLimitStore } from '../src/rate-limit/stores';
import type { UserPublic } from '../src/schemas/user';
import { createKeyRing, ensureSigningKey } from '../src/services/keys';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
/**
 * Where a test that needs PostgreSQL in any run (several server processes on one database, a proxy to cut)
 * makes its scratch database: TEST_DATABASE_URL's server, else the local one, which every machine this suite
 * runs on has, also for PGlite-mode runs.
 */
export const POSTGRES_ADMIN_URL = TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/**
 * Set by the cross-runtime harness (scripts/test-runtimes.ts): the suite then sends its requests over HTTP
 * to a server of another runtime (Node, Deno, workerd, Bun) that runs on TEST_DATABASE_URL as it is.
 */
export const TEST_BASE_URL = process.env.TEST_BASE_URL || undefined;
export const TEST_SECRET_KEY = 'test-secret-key-that-is-at-least-32-bytes-long';
export const TEST_PASSWORD = 'correct horse battery';

interface TestDatabase {
  handle: DatabaseHandle;
  /** The PostgreSQL URL, for server processes; undefined on PGlite. */
  url?: string;
  drop(): Promise<void>;
}

let database: Promise<TestDatabase> | undefined;

/** The one database of this test process, migrated with the real ./drizzle migrations. */
export async function testDatabase(): Promise<DatabaseHandle> {
  database ??= TEST_BASE_URL ? serverDatabase(TEST_DATABASE_URL) : ownDatabase('test');
  return (await database).handle;
}

/** The PostgreSQL URL of this run's database (for server processes), or undefined on PGlite. */
export async function testDatabaseUrl(): Promise<string | undefined> {
  if (!TEST_DATABASE_URL) return undefined;
  await testDatabase();
  return (await database)?.url;
}

export async function closeTestDatabase(): Promise<void> {
  if (!database) return;
  const { handle, drop } = await database;
  database = undefined;
  await (await listener)?.stop();
  listener = undefined;
  await handle.close();
  await drop();
  await sharedHasher?.close();
  sharedHasher = undefined;
}

/** The remote server's own database (the harness made and migrated it): used as it is, dropped by the harness. */
async function serverDatabase(url: string | undefined): Promise<TestDatabase> {
  if (!url) throw new Error('TEST_BASE_URL needs TEST_DATABASE_URL: the database the server under test uses');
  const { createPostgresDb } = await import('../src/db/client-postgres');
  return { handle: createPostgresDb(url), url, drop: async () => {} };
}

/**
 * A migrated database of its own, of the kind this run tests: a scratch PostgreSQL database named for
 * `prefix` and this run when TEST_DATABASE_URL is set (so concurrent runs never see each other's rows),
 * else an in-memory PGlite. For the suite's shared database, and for a test whose subject is the whole
 * database (the last-admin guard counts every admin; readiness reads the migrations table).
 */
export async function ownDatabase(prefix: string): Promise<TestDatabase> {
  if (!TEST_DATABASE_URL) {
    const handle = await scratchPglite();
    await ensureTestSigningKey(handle.db);
    return { handle, drop: async () => {} };
  }
  const scratch = await scratchDatabase(prefix, { adminUrl: TEST_DATABASE_URL, migrate: 'in-process' });
  const handle = await scratch.open();
  await ensureTestSigningKey(handle.db);
  return { handle, url: scratch.url, drop: scratch.drop };
}

/**
 * The database's signing key, active since the epoch: every test app runs on a clock of its own, frozen when it
 * was made, and each must find the key active on its clock (a rotation test makes its own keys).
 */
async function ensureTestSigningKey(db: Database): Promise<void> {
  const config = testConfig();
  const clock = { now: () => new Date(0) };
  const logger = createLogger('silent');
  await ensureSigningKey({ config, clock, logger, db, keys: createKeyRing({ config, clock, logger }) });
}

export type TestClock = Clock & { advance(ms: number): void };

/** Lets a test move time forward (token expiry) without sleeping. */
export function createTestClock(start = Date.now()): TestClock {
  let offset = 0;
  return {
    now: () => new Date(start + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

// Every request through app.request() comes from the same unknown address, and suites log in and register
// hundreds of times through one app: the limits are on but out of reach, unless a test sets its own.
const GENEROUS_RATE_LIMITS = {
  RATE_LIMIT_LOGIN_PER_IP: '100000',
  RATE_LIMIT_LOGIN_FAILURES: '100000',
  RATE_LIMIT_ACCOUNT_FAILURES: '100000',
  RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY: '100000',
  RATE_LIMIT_REGISTER_PER_IP: '100000',
  RATE_LIMIT_RECOVERY_PER_IP: '100000',
};

export function testConfig(overrides: Record<string, string> = {}): Config {
  return parseConfig({
    SECRET_KEY: TEST_SECRET_KEY,
    BCRYPT_COST: '4',
    LOG_LEVEL: 'silent',
    // Apps without a mail sender queue no verification mail that nothing would send; the mail tests turn it on.
    EMAIL_VERIFICATION: 'off',
    ...GENEROUS_RATE_LIMITS,
    ...overrides,
  }).config;
}

let sharedHasher: ReturnType<typeof createBunHasher> | undefined;

/** The one bcrypt pool of the test process (cost 4), shared by every app it makes. */
export function testHasher() {
  // Normal priority, unlike a server's hash workers (idle priority, so a login flood yields to requests):
  // here the test is the request, and on a busy machine idle-priority workers would wait behind every
  // other process. What a test measures never depends on the priority (bun-hasher.test.ts checks it).
  sharedHasher ??= createBunHasher({ cost: testConfig().BCRYPT_COST, lowPriority: false });
  return sharedHasher;
}

/**
 * An app on the test database with real bcrypt (cost 4), a fixed config and a controllable clock. Its rate
 * limits are built from the config as the runtime builds them (RATE_LIMIT_STORE=redis connects to Redis:
 * call `closeRateLimits()` when done).
 */
export async function createTestApp(
  overrides: Partial<AppDeps> & { env?: Record<string, string>; inProcess?: boolean } = {},
) {
  const { env, inProcess, ...depOverrides } = overrides;
  // Against a remote server only the default app can be remote: a test that changes the configuration,
  // injects a dependency or moves the clock needs the app in this process (the README lists them).
  if (TEST_BASE_URL && !inProcess && env === undefined && Object.keys(depOverrides).length === 0) {
    return remoteTestApp(TEST_BASE_URL);
  }
  const config = testConfig(env);
  const clock = (depOverrides.clock as TestClock | undefined) ?? createTestClock();
  const testDb = (await testDatabase()).db;
  const logger = depOverrides.logger ?? createLogger(config.LOG_LEVEL);
  const instance = createInstance(config, { hasher: testHasher(), clock, logger });
  await instance.keys.reload(testDb);
  const sink = accessSink(instance, testDb);
  await listenForAccessChanges(sink);
  const rateLimitStore = await createRateLimitStore(config, { db: testDb, logger, clock });
  const deps: AppDeps = {
    ...buildDeps(instance, {
      db: testDb,
      // Like an instance of its own: it applies its changes at once, and hears the other apps' (and every
      // other write's) through the test database's one listener.
      access: localOnlyBus(sink),
      rateLimits: rateLimitStore.rateLimits,
      readAsset: readAssetFromNodeModules,
      metrics: createPrometheusMetrics(),
      poolStats: (await testDatabase()).stats,
    }),
    ...depOverrides,
  };
  return { app: createApp(deps), deps, clock, closeRateLimits: rateLimitStore.close };
}

// Every app of the test process shares one database, so one listener serves all their views, as one per
// instance does in production: each app's sink hears every change.
const sinks = new Set<AccessSink>();
let listenerHealthy = false;
let listener: Promise<AccessBus> | undefined;

async function listenForAccessChanges(sink: AccessSink): Promise<void> {
  sinks.add(sink);
  listener ??= testDatabase().then((handle) =>
    startAccessBus(testConfig(), handle, {
      logger: createLogger('silent'),
      sink: {
        apply: (message) => {
          for (const each of sinks) each.apply(message);
        },
        setHealthy: (healthy) => {
          listenerHealthy = healthy;
          for (const each of sinks) each.setHealthy(healthy);
        },
      },
    }),
  );
  await listener;
  sink.setHealthy(listenerHealthy);
}

export type TestApp = ReturnType<typeof createApp>;

/**
 * Runs `body` with an app in this process on a database of its own (ownDatabase), closed and dropped after:
 * for a test whose subject is the whole database, so that it neither depends on what other tests left in
 * the shared one nor changes what they see. Also against a remote server (TEST_BASE_URL), which cannot be
 * pointed at another database.
 */
export async function withOwnDatabase(
  prefix: string,
  body: (own: Awaited<ReturnType<typeof createTestApp>>) => Promise<void>,
): Promise<void> {
  const database = await ownDatabase(prefix);
  try {
    await body(await createTestApp({ db: database.handle.db }));
  } finally {
    await database.handle.close();
    await database.drop();
  }
}

/** The same shape as createTestApp's result, but every request goes over HTTP to the server at `baseUrl`. */
async function remoteTestApp(baseUrl: string) {
  // Paths go to the server as they are (even `//a//`); absolute URLs (hono/client sends
  // http://localhost/...) keep only their path and query.
  const request = (input: string | URL, init?: RequestInit): Promise<Response> => {
    const text = String(input);
    const path = /^https?:/.test(text) ? text.replace(/^https?:\/\/[^/]*/, '') : text;
    return fetch(`${baseUrl}${path}`, init);
  };
  const clock: TestClock = {
    now: () => new Date(),
    advance: () => {
      throw new Error("a remote server's clock cannot be moved: use createTestApp({ inProcess: true })");
    },
  };
  const config = testConfig();
  const deps = { db: (await testDatabase()).db, config, clock } as Partial<AppDeps> as AppDeps;
  return { app: { request } as unknown as TestApp, deps, clock, closeRateLimits: async () => {} };
}

let emailCounter = 0;
/** An email no other test (or earlier run on the same database) uses. */
export function uniqueEmail(tag = 'user'): string {
  return `${tag}-${process.pid}-${Date.now().toString(36)}-${++emailCounter}@example.com`;
}

export function postJson(app: TestApp, path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export async function registerUser(app: TestApp, email = uniqueEmail(), password = TEST_PASSWORD) {
  const res = await postJson(app, '/register', { email, password });
  if (res.status !== 201) throw new Error(`register ${email} failed: ${res.status} ${await res.text()}`);
  return { email, password, user: (await res.json()) as { id: number; email: string } };
}

export function login(app: TestApp, username: string, password: string) {
  return app.request('/token', { method: 'POST', body: new URLSearchParams({ username, password }) });
}

/** Registers a fresh user and logs in through the real form endpoint. */
export async function loginAs(app: TestApp, email?: string, password = TEST_PASSWORD) {
  const registered = await registerUser(app, email, password);
  const res = await login(app, registered.email, password);
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const { access_token, refresh_token } = (await res.json()) as TokenBody;
  return { ...registered, token: access_token, refreshToken: refresh_token };
}

/** Logs an existing user in once more (a new session), optionally with extra headers such as User-Agent. */
export async function loginSession(
  app: TestApp,
  username: string,
  password = TEST_PASSWORD,
  headers: Record<string, string> = {},
) {
  const res = await app.request('/token', {
    method: 'POST',
    headers,
    body: new URLSearchParams({ username, password }),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const { access_token, refresh_token } = (await res.json()) as TokenBody;
  return { token: access_token, refreshToken: refresh_token };
}

/** The refresh grant (RFC 6749 §6) through the real form endpoint. */
export function refresh(app: TestApp, refreshToken: string) {
  return app.request('/token', {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
}

/**
 * Registers a fresh user, promotes it to admin directly in the database (the bootstrap path is the CLI),
 * then logs in through the real form endpoint.
 */
export async function loginAsAdmin(app: TestApp, deps: Pick<AppDeps, 'db'>, email = uniqueEmail('admin')) {
  const registered = await registerUser(app, email);
  await deps.db.update(users).set({ role: 'admin' }).where(eq(users.id, registered.user.id));
  return { ...registered, ...(await loginSession(app, registered.email, registered.password)) };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * Asserts the RFC 9457 shape every error shares and returns the parsed body. With `code`, also that it is
 * that problem: its `type` is `/problems/<code>` (the catalogue's name, written out here as clients see it).
 */
export async function expectProblem(res: Response, status: number, code?: string) {
  const body = (await res.json()) as {
    type: string;
    title: string;
    status: number;
    detail: string;
    errors?: { pointer: string; detail: string }[];
  };
  if (res.status !== status || !res.headers.get('Content-Type')?.startsWith('application/problem+json')) {
    throw new Error(
      `expected ${status} problem+json, got ${res.status} ${res.headers.get('Content-Type')}: ${JSON.stringify(body)}`,
    );
  }
  if (
    body.status !== status ||
    typeof body.detail !== 'string' ||
    typeof body.title !== 'string' ||
    typeof body.type !== 'string'
  ) {
    throw new Error(`not an RFC 9457 problem: ${JSON.stringify(body)}`);
  }
  if (code !== undefined && body.type !== `/problems/${code}`) {
    throw new Error(`expected the problem /problems/${code}, got ${JSON.stringify(body)}`);
  }
  return body;
}

/** The decoded header and payload of a JWT, without verifying it: what any client can read. */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header, payload] = token
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
}

/** A 401 for a bad or missing bearer token: problem+json with the RFC 6750 challenge. */
export async function expectUnauthorized(res: Response, challenge = 'Bearer error="invalid_token"') {
  const body = await expectProblem(res, 401, challenge === 'Bearer' ? 'not-authenticated' : 'invalid-access-token');
  if (res.headers.get('WWW-Authenticate') !== challenge) {
    throw new Error(`expected WWW-Authenticate: ${challenge}, got ${res.headers.get('WWW-Authenticate')}`);
  }
  return body;
}

/**
 * A change written straight to the database (not through the service) reaches the view through the
 * database's own NOTIFY, a moment after it commits: allowed a second (API.md), polled briefly.
 */
export async function expectUnauthorizedSoon(request: () => Promise<Response> | Response) {
  const deadline = Date.now() + 1_000;
  let res = await request();
  while (res.status !== 401 && Date.now() < deadline) {
    await Bun.sleep(10);
    res = await request();
  }
  await expectUnauthorized(res);
}

export interface TokenBody {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  refresh_token: string;
}

/** The fields of a user in the public shape (register, /users/me, the admin routes), sorted. */
/** The fields of the public user shape (API.md), sorted: exactly these and nothing else ever leaves. */
export const PUBLIC_USER_KEYS = ['created_at', 'disabled', 'email', 'email_verified', 'id', 'last_login_time', 'role'];

/** A JSON body typed as API.md describes it (a public user unless told); @types/node types `json()` as unknown. */
export const json = <T = UserPublic>(res: Response) => res.json() as Promise<T>;

/** Runs a command to completion with only PATH, HOME and `env` in its environment, and `input` on its stdin. */
export async function runCommand(
  cmd: string[],
  { cwd, env = {}, input }: { cwd: string; env?: Record<string, string>; input?: string },
) {
  const proc = Bun.spawn(cmd, {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdin: input === undefined ? 'ignore' : new Blob([input]),
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}
