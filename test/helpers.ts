import { createApp } from '../src/app';
import { type Config, parseConfig } from '../src/config';
import type { DatabaseHandle } from '../src/db/database';
import { runMigrations } from '../src/db/migrate';
import type { AppDeps, Clock } from '../src/deps';
import { createLogger } from '../src/lib/logger';
import { createBunHasher } from '../src/runtimes/bun-hasher';
import { readAssetFromNodeModules } from '../src/runtimes/read-asset-fs';
import type { UserPublic } from '../src/schemas/user';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;
export const TEST_SECRET_KEY = 'test-secret-key-that-is-at-least-32-bytes-long';
export const TEST_PASSWORD = 'correct horse battery';

let database: Promise<{ handle: DatabaseHandle; url?: string; drop(): Promise<void> }> | undefined;

/** The one database of this test process, migrated with the real ./drizzle migrations. */
export async function testDatabase(): Promise<DatabaseHandle> {
  database ??= TEST_DATABASE_URL ? freshPostgresDatabase(TEST_DATABASE_URL) : inMemoryPglite();
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
  await handle.close();
  await drop();
  sharedHasher?.close();
  sharedHasher = undefined;
}

async function inMemoryPglite() {
  const { createPgliteDb } = await import('../src/db/client-pglite');
  const handle = await createPgliteDb();
  await runMigrations(handle);
  return { handle, drop: async () => {} };
}

/** A new database named for this run, so concurrent runs against one server never see each other's rows. */
async function freshPostgresDatabase(adminUrl: string) {
  const { createPostgresClient, createPostgresDb } = await import('../src/db/client-postgres');
  const name = `hpa_test_${process.pid}_${Date.now().toString(36)}`;
  const admin = createPostgresClient(adminUrl, 1);
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const handle = createPostgresDb(url.href);
  await runMigrations(handle);
  return {
    handle,
    url: url.href,
    drop: async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

/** Lets a test move time forward (token expiry) without sleeping. */
export function createTestClock(start = Date.now()): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    now: () => new Date(start + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return parseConfig({ SECRET_KEY: TEST_SECRET_KEY, BCRYPT_COST: '4', LOG_LEVEL: 'silent', ...overrides }).config;
}

let sharedHasher: ReturnType<typeof createBunHasher> | undefined;

/** An app on the test database with real bcrypt (cost 4), a fixed config and a controllable clock. */
export async function createTestApp(overrides: Partial<AppDeps> & { env?: Record<string, string> } = {}) {
  const { env, ...depOverrides } = overrides;
  const config = testConfig(env);
  sharedHasher ??= createBunHasher({ cost: config.BCRYPT_COST });
  const clock = createTestClock();
  const deps: AppDeps = {
    db: (await testDatabase()).db,
    hasher: sharedHasher,
    config,
    clock,
    logger: createLogger(config.LOG_LEVEL),
    readAsset: readAssetFromNodeModules,
    ...depOverrides,
  };
  return { app: createApp(deps), deps, clock };
}

export type TestApp = Awaited<ReturnType<typeof createTestApp>>['app'];

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
  const { access_token } = (await res.json()) as { access_token: string };
  return { ...registered, token: access_token };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Asserts the RFC 9457 shape every error shares and returns the parsed body. */
export async function expectProblem(res: Response, status: number) {
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
  const body = await expectProblem(res, 401);
  if (res.headers.get('WWW-Authenticate') !== challenge) {
    throw new Error(`expected WWW-Authenticate: ${challenge}, got ${res.headers.get('WWW-Authenticate')}`);
  }
  return body;
}

export interface TokenBody {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
}

/** A JSON body typed as API.md describes it (a public user unless told); @types/node types `json()` as unknown. */
export const json = <T = UserPublic>(res: Response) => res.json() as Promise<T>;
