import { afterAll, afterEach, describe, expect, setSystemTime, test } from 'bun:test';
import { and, eq, like } from 'drizzle-orm';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import { ConfigError } from '../src/config';
import { auditEvents, rateLimits as rateLimitsTable } from '../src/db/schema';
import { systemClock } from '../src/lib/clock';
import { clientKey } from '../src/lib/ip';
import { createLogger } from '../src/lib/logger';
import { createRateLimitStore } from '../src/rate-limit/stores';
import {
  createTestApp,
  expectProblem,
  json,
  login,
  POSTGRES_ADMIN_URL,
  postJson,
  registerUser,
  TEST_PASSWORD,
  type TestApp,
  testConfig,
  testDatabase,
  testDatabaseUrl,
  uniqueEmail,
} from './helpers';
import { SERVER_TEST_TIMEOUT_MS, type ServerProcess, spawnProject, startServer, stopAll } from './server-process';

const WRONG_PASSWORD = 'not the password at all';
const REDIS_URL = 'redis://127.0.0.1:6379';
const CLOSED_REDIS_URL = 'redis://127.0.0.1:1'; // nothing listens on port 1
const LOCKOUT_SECONDS = 900;
const DAY_SECONDS = 24 * 60 * 60;

afterEach(() => setSystemTime()); // back to the real clock after a test moved it
await testDatabase(); // made once per process (seconds for PGlite): not inside the first test's timeout

let ipCounter = 0;
/** A documentation address (RFC 5737) no other test uses, to stand for a distinct client. */
const uniqueIp = () => `203.0.${Math.floor(++ipCounter / 250) % 250}.${(ipCounter % 250) + 1}`;

function loginFrom(app: TestApp, username: string, password: string, ip: string) {
  return app.request('/token', {
    method: 'POST',
    headers: { 'X-Forwarded-For': ip },
    body: new URLSearchParams({ username, password }),
  });
}

/** A 429 problem of type /problems/rate-limited with a whole, positive Retry-After of at most `maxSeconds`. */
async function expectRateLimited(res: Response, maxSeconds: number) {
  const body = await expectProblem(res, 429, 'rate-limited');
  const retryAfter = res.headers.get('Retry-After') ?? '';
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(maxSeconds);
  return body;
}

// Three failures per account and address, and three per account from addresses it never logged in from.
const lockoutApp = (env: Record<string, string> = {}) =>
  createTestApp({
    env: { TRUST_PROXY: '1', RATE_LIMIT_LOGIN_FAILURES: '3', RATE_LIMIT_ACCOUNT_FAILURES: '3', ...env },
  });

describe('per client IP', () => {
  test('answers 429 problem+json with Retry-After once an IP passes the login limit', async () => {
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_LOGIN_PER_IP: '3' } });
    const ip = uniqueIp();
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, ip)).status).toBe(401);
    const body = await expectRateLimited(await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, ip), 60);
    expect(body.detail).toContain('from this address');
  });

  test('counts each IP on its own', async () => {
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_LOGIN_PER_IP: '1' } });
    const [first, second] = [uniqueIp(), uniqueIp()];
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, first)).status).toBe(401);
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, first)).status).toBe(429);
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, second)).status).toBe(401);
  });

  test('limits registrations per IP, valid or not, with 429 and Retry-After', async () => {
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_REGISTER_PER_IP: '2' } });
    const ip = uniqueIp();
    const register = (from: string) =>
      postJson(app, '/register', { email: uniqueEmail('reg'), password: TEST_PASSWORD }, { 'X-Forwarded-For': from });
    expect((await register(ip)).status).toBe(201);
    expect((await postJson(app, '/register', { email: 'nope' }, { 'X-Forwarded-For': ip })).status).toBe(422);
    const body = await expectRateLimited(await register(ip), 3600);
    expect(body.detail).toContain('registrations');
    expect((await register(uniqueIp())).status).toBe(201);
  });

  test('ignores X-Forwarded-For without TRUST_PROXY: every claimed address shares the real one', async () => {
    const { app } = await createTestApp({ env: { RATE_LIMIT_LOGIN_PER_IP: '2' } });
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    await expectRateLimited(await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, uniqueIp()), 60);
  });

  test('keys by the socket address the runtime reports', async () => {
    const { app } = await createTestApp({
      env: { RATE_LIMIT_LOGIN_PER_IP: '1' },
      remoteAddress: (c) => c.req.header('X-Test-Peer'),
    });
    const from = (peer: string) =>
      app.request('/token', {
        method: 'POST',
        headers: { 'X-Test-Peer': peer },
        body: new URLSearchParams({ username: uniqueEmail(), password: WRONG_PASSWORD }),
      });
    expect((await from('198.51.100.1')).status).toBe(401);
    expect((await from('198.51.100.1')).status).toBe(429);
    expect((await from('198.51.100.2')).status).toBe(401);
  });

  test('counts a whole IPv6 /64 as one client', async () => {
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_LOGIN_PER_IP: '1' } });
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, '2001:db8:7:1::1')).status).toBe(401);
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, '2001:db8:7:1:ffff::9')).status).toBe(429);
    expect((await loginFrom(app, uniqueEmail(), WRONG_PASSWORD, '2001:db8:7:2::1')).status).toBe(401);
  });

  test('normalizes client addresses: IPv4-mapped IPv6 is IPv4, IPv6 is its /64', () => {
    expect(clientKey(null)).toBe('unknown');
    expect(clientKey('198.51.100.7')).toBe('198.51.100.7');
    expect(clientKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(clientKey('2001:DB8:0:0:1::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });
});

describe('per account', () => {
  test('locks an account after repeated failures from different IPs, even for the right password', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    const body = await expectRateLimited(await loginFrom(app, email, TEST_PASSWORD, uniqueIp()), LOCKOUT_SECONDS);
    expect(body.detail).toContain('for this account');
  });

  test('leaves other accounts alone while one is locked', async () => {
    const { app } = await lockoutApp();
    const target = await registerUser(app);
    const bystander = await registerUser(app);
    const ip = uniqueIp();
    for (let i = 0; i < 4; i++) await loginFrom(app, target.email, WRONG_PASSWORD, ip);
    expect((await loginFrom(app, target.email, TEST_PASSWORD, ip)).status).toBe(429);
    expect((await loginFrom(app, bystander.email, TEST_PASSWORD, ip)).status).toBe(200);
  });

  test('lets the account in again once the lockout window has passed', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    for (let i = 0; i < 3; i++) await loginFrom(app, email, WRONG_PASSWORD, uniqueIp());
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(429);
    setSystemTime(new Date(Date.now() + (LOCKOUT_SECONDS + 1) * 1000));
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  // The reset is per address now (README "Rate limiting"): a success forgives the failures of its own address.
  test('resets the failure count after a successful login', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    const ip = uniqueIp();
    for (let i = 0; i < 2; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, ip)).status).toBe(401);
    expect((await loginFrom(app, email, TEST_PASSWORD, ip)).status).toBe(200);
    // Without the reset the first of these would already be the fourth counted attempt.
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, ip)).status).toBe(401);
    expect((await loginFrom(app, email, TEST_PASSWORD, ip)).status).toBe(429);
  });

  test('locks an unknown email exactly like a known one, so a 429 reveals nothing', async () => {
    const { app } = await lockoutApp();
    const known = await registerUser(app);
    const unknown = uniqueEmail('ghost');
    const answers: { status: number; detail: string }[] = [];
    for (const email of [known.email, unknown]) {
      const ip = uniqueIp(); // one address per account: its own hard limit answers
      for (let i = 0; i < 3; i++) await loginFrom(app, email, WRONG_PASSWORD, ip);
      const res = await loginFrom(app, email, WRONG_PASSWORD, ip);
      answers.push({ status: res.status, detail: (await json<{ detail: string }>(res)).detail });
    }
    expect(answers[0]).toEqual({ status: 429, detail: 'Too many failed logins for this account; try again later' });
    expect(answers[1]).toEqual(answers[0] as { status: number; detail: string });
  });

  test('counts an email however it is cased or padded', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    for (const variant of [email.toUpperCase(), `  ${email}  `, email]) {
      expect((await loginFrom(app, variant, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    }
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(429);
  });

  test('does not limit the refresh grant per account', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_LOGIN_FAILURES: '1' });
    const { email } = await registerUser(app);
    const ip = uniqueIp();
    const res = await loginFrom(app, email, TEST_PASSWORD, ip);
    const { refresh_token } = (await res.json()) as { refresh_token: string };
    await loginFrom(app, email, WRONG_PASSWORD, ip);
    expect((await loginFrom(app, email, TEST_PASSWORD, ip)).status).toBe(429);
    const refreshed = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token }),
    });
    expect(refreshed.status).toBe(200);
  });
});

describe('a lockout that cannot be aimed', () => {
  test('failures from one address lock that address out of the account, and nobody else', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_ACCOUNT_FAILURES: '1000' });
    const { email } = await registerUser(app);
    const attacker = uniqueIp();
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, attacker)).status).toBe(401);
    await expectRateLimited(await loginFrom(app, email, TEST_PASSWORD, attacker), LOCKOUT_SECONDS);
    expect((await loginFrom(app, email, TEST_PASSWORD, uniqueIp())).status).toBe(200);
  });

  test('the account-wide limit stops new addresses, while an address that logged in before keeps its way in', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    const home = uniqueIp();
    expect((await loginFrom(app, email, TEST_PASSWORD, home)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    const body = await expectRateLimited(await loginFrom(app, email, TEST_PASSWORD, uniqueIp()), LOCKOUT_SECONDS);
    expect(body.detail).toContain('new addresses');
    expect((await loginFrom(app, email, TEST_PASSWORD, home)).status).toBe(200);
  });

  test('a known address is known for its IPv6 /64, as it is counted', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_ACCOUNT_FAILURES: '1' });
    const { email } = await registerUser(app);
    expect((await loginFrom(app, email, TEST_PASSWORD, '2001:db8:44:1::1')).status).toBe(200);
    expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    expect((await loginFrom(app, email, TEST_PASSWORD, '2001:db8:44:1::abcd')).status).toBe(200);
    expect((await loginFrom(app, email, TEST_PASSWORD, '2001:db8:44:2::1')).status).toBe(429);
  });

  test('the daily step of the account-wide limit outlasts the lockout window', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_ACCOUNT_FAILURES: '1000', RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY: '3' });
    const { email } = await registerUser(app);
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    const res = await loginFrom(app, email, TEST_PASSWORD, uniqueIp());
    await expectRateLimited(res, DAY_SECONDS);
    expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(LOCKOUT_SECONDS);
    setSystemTime(new Date(Date.now() + (LOCKOUT_SECONDS + 1) * 1000));
    expect((await loginFrom(app, email, TEST_PASSWORD, uniqueIp())).status).toBe(429);
    setSystemTime(new Date(Date.now() + DAY_SECONDS * 1000));
    expect((await loginFrom(app, email, TEST_PASSWORD, uniqueIp())).status).toBe(200);
  });

  test("a 429's Retry-After is the real wait: the rest of the window that began at the first failure", async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_LOGIN_FAILURES: '2' });
    const { email } = await registerUser(app);
    const ip = uniqueIp();
    const start = Date.now();
    for (let i = 0; i < 2; i++) await loginFrom(app, email, WRONG_PASSWORD, ip);
    setSystemTime(new Date(start + 300_000));
    const res = await loginFrom(app, email, TEST_PASSWORD, ip);
    await expectRateLimited(res, LOCKOUT_SECONDS);
    expect(Number(res.headers.get('Retry-After'))).toBeGreaterThanOrEqual(LOCKOUT_SECONDS - 300 - 2);
    expect(Number(res.headers.get('Retry-After'))).toBeLessThanOrEqual(LOCKOUT_SECONDS - 300 + 1); // whole seconds, rounded up
  });

  test('parallel logins with the right password are never answered 429', async () => {
    const { app } = await lockoutApp();
    const { email } = await registerUser(app);
    for (const ip of [uniqueIp(), uniqueIp()]) {
      const statuses = await Promise.all(Array.from({ length: 10 }, () => loginFrom(app, email, TEST_PASSWORD, ip)));
      expect(statuses.map((res) => res.status)).toEqual(Array(10).fill(200));
    }
  });

  test('parallel wrong guesses cannot exceed the limit', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_ACCOUNT_FAILURES: '1000' });
    const { email } = await registerUser(app);
    const ip = uniqueIp();
    const answers = await Promise.all(Array.from({ length: 10 }, () => loginFrom(app, email, WRONG_PASSWORD, ip)));
    const statuses = answers.map((res) => res.status).sort();
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
  });
});

describe('PUT /users/me/password counts as a login attempt', () => {
  const changeFrom = (app: TestApp, token: string, currentPassword: string, ip: string) =>
    app.request('/users/me/password', {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'X-Forwarded-For': ip },
      body: JSON.stringify({ current_password: currentPassword, new_password: 'an entirely new passphrase' }),
    });

  async function tokenOf(app: TestApp, email: string, ip: string): Promise<string> {
    const res = await loginFrom(app, email, TEST_PASSWORD, ip);
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  test('wrong current passwords count against the same per-account limit as logins, and each is audited', async () => {
    const { app, deps } = await lockoutApp();
    const { email, user } = await registerUser(app);
    const ip = uniqueIp();
    const token = await tokenOf(app, email, ip);
    for (let i = 0; i < 3; i++)
      await expectProblem(await changeFrom(app, token, WRONG_PASSWORD, ip), 400, 'wrong-password');
    await expectRateLimited(await changeFrom(app, token, TEST_PASSWORD, ip), LOCKOUT_SECONDS);
    await expectRateLimited(await loginFrom(app, email, TEST_PASSWORD, ip), LOCKOUT_SECONDS);
    const failures = await deps.db
      .select({ actorId: auditEvents.actorId })
      .from(auditEvents)
      .where(and(eq(auditEvents.userId, user.id), eq(auditEvents.event, 'password_change_failed')));
    expect(failures).toEqual(Array(3).fill({ actorId: user.id }));
  });

  test('is limited per client address like POST /token', async () => {
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_LOGIN_PER_IP: '2' } });
    const { email } = await registerUser(app);
    const token = await tokenOf(app, email, uniqueIp());
    const ip = uniqueIp();
    for (let i = 0; i < 2; i++) expect((await changeFrom(app, token, WRONG_PASSWORD, ip)).status).toBe(400);
    const body = await expectRateLimited(await changeFrom(app, token, WRONG_PASSWORD, ip), 60);
    expect(body.detail).toContain('from this address');
  });
});

describe('the rate-limit stores', () => {
  test('postgres: locks the account through the rate_limits table, and releases it after the window', async () => {
    const { app, clock } = await lockoutApp({ RATE_LIMIT_STORE: 'postgres' });
    const { email } = await registerUser(app);
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    await expectRateLimited(await login(app, email, TEST_PASSWORD), LOCKOUT_SECONDS);
    clock.advance((LOCKOUT_SECONDS + 1) * 1000); // the PostgreSQL store counts on the injected clock
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  test('postgres: parallel correct logins all succeed, and a known address keeps its way in', async () => {
    const { app } = await lockoutApp({ RATE_LIMIT_STORE: 'postgres' });
    const { email } = await registerUser(app);
    const home = uniqueIp();
    const statuses = await Promise.all(Array.from({ length: 8 }, () => loginFrom(app, email, TEST_PASSWORD, home)));
    expect(statuses.map((res) => res.status)).toEqual(Array(8).fill(200));
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    expect((await loginFrom(app, email, TEST_PASSWORD, uniqueIp())).status).toBe(429);
    expect((await loginFrom(app, email, TEST_PASSWORD, home)).status).toBe(200);
  });

  test('postgres: a username too long for an index row is counted in the table like any other, not per instance', async () => {
    const lines: string[] = [];
    const { app, deps } = await createTestApp({
      env: { TRUST_PROXY: '1', RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_LOGIN_FAILURES: '1' },
      logger: createLogger('warn', (line) => lines.push(line)),
    });
    // 1,000 random CJK characters: ~3 KB of UTF-8 that does not compress, past PostgreSQL's btree row limit.
    const username = Array.from({ length: 1000 }, () =>
      String.fromCodePoint(0x4e00 + Math.floor(Math.random() * 20000)),
    ).join('');
    const ip = uniqueIp();
    expect((await loginFrom(app, username, WRONG_PASSWORD, ip)).status).toBe(401);
    await expectRateLimited(await loginFrom(app, username, WRONG_PASSWORD, ip), LOCKOUT_SECONDS);
    expect(lines.join('\n')).not.toContain('rate-limit store unavailable');
    const [row] = await deps.db
      .select({ key: rateLimitsTable.key })
      .from(rateLimitsTable)
      .where(like(rateLimitsTable.key, 'rl:loginFailures:sha256:%'))
      .limit(1);
    expect(row?.key.length).toBeLessThan(100);
  });

  test('postgres: an SQL error is thrown, not hidden behind the in-memory fallback', async () => {
    const config = testConfig({ RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_LOGIN_FAILURES: '5' });
    const store = await createRateLimitStore(config, {
      db: (await testDatabase()).db,
      logger: createLogger('silent'),
      clock: systemClock,
      sweep: false,
    });
    // PostgreSQL text cannot hold NUL: the statement fails, and nothing is wrong with the connection.
    await expect(store.rateLimits.loginFailures?.consume('nul\u0000key')).rejects.toThrow();
    await store.close();
  });

  test('redis: two instances share the account lockout', async () => {
    const first = await lockoutApp({ RATE_LIMIT_STORE: 'redis', REDIS_URL });
    const second = await lockoutApp({ RATE_LIMIT_STORE: 'redis', REDIS_URL });
    try {
      const { email } = await registerUser(first.app);
      for (let i = 0; i < 3; i++) {
        expect((await loginFrom(first.app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
      }
      await expectRateLimited(await login(second.app, email, TEST_PASSWORD), LOCKOUT_SECONDS);
    } finally {
      await first.closeRateLimits();
      await second.closeRateLimits();
    }
  });

  test('redis down: answers as usual, keeps limiting per instance, and warns', async () => {
    const lines: string[] = [];
    const { app, closeRateLimits } = await createTestApp({
      env: {
        TRUST_PROXY: '1',
        RATE_LIMIT_LOGIN_FAILURES: '2',
        RATE_LIMIT_ACCOUNT_FAILURES: '2',
        RATE_LIMIT_STORE: 'redis',
        REDIS_URL,
      },
      logger: createLogger('warn', (line) => lines.push(line)),
    });
    const { email } = await registerUser(app);
    await closeRateLimits(); // Redis is gone from here on
    expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    await expectRateLimited(await login(app, email, TEST_PASSWORD), LOCKOUT_SECONDS);
    expect(lines.some((line) => line.includes('rate-limit store unavailable'))).toBe(true);
  });

  test('redis unreachable at start: refuses with an error naming REDIS_URL', async () => {
    const config = testConfig({ RATE_LIMIT_STORE: 'redis', REDIS_URL: CLOSED_REDIS_URL });
    const db = (await testDatabase()).db;
    await expect(
      createRateLimitStore(config, { db, logger: createLogger('silent'), clock: systemClock }),
    ).rejects.toThrow(`cannot reach REDIS_URL ${CLOSED_REDIS_URL}`);
  });

  test('refuses an unknown RATE_LIMIT_STORE and a REDIS_URL that is not redis://, naming each', () => {
    expect(() => testConfig({ RATE_LIMIT_STORE: 'memcached' })).toThrow(ConfigError);
    expect(() => testConfig({ RATE_LIMIT_STORE: 'memcached' })).toThrow(/RATE_LIMIT_STORE/);
    expect(() => testConfig({ REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(/REDIS_URL must be a redis:\/\//);
  });
});

test('documents 429 on /token and /register in the OpenAPI document', async () => {
  const { app } = await createTestApp();
  const doc = (await (await app.request('/openapi.json')).json()) as {
    paths: Record<string, { post: { responses: Record<string, { content: Record<string, unknown> }> } }>;
  };
  for (const path of ['/token', '/register']) {
    expect(Object.keys(doc.paths[path]?.post.responses['429']?.content ?? {})).toEqual(['application/problem+json']);
  }
});

describe('server processes', () => {
  // Several processes need PostgreSQL (a PGlite directory has one process): the suite's database on
  // PostgreSQL runs, else a scratch database on the local server, dropped afterwards.
  let own: Promise<ScratchDatabase> | undefined;

  async function databaseUrl(): Promise<string> {
    const suite = await testDatabaseUrl();
    if (suite) return suite;
    own ??= scratchDatabase('rl', { adminUrl: POSTGRES_ADMIN_URL }); // one: servers started together share it
    return (await own).url as string;
  }

  afterAll(async () => {
    await stopAll();
    await (await own)?.drop();
  }, SERVER_TEST_TIMEOUT_MS);

  const start = async (env: Record<string, string>) => startServer({ DATABASE_URL: await databaseUrl(), ...env });

  const loginOver = (server: ServerProcess, username: string, password: string, headers = {}) =>
    fetch(`${server.url}/token`, { method: 'POST', headers, body: new URLSearchParams({ username, password }) });

  test(
    'postgres store: failures counted on one server lock the account on another',
    async () => {
      const env = { RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_LOGIN_FAILURES: '2' };
      const [a, b] = await Promise.all([start(env), start(env)]);
      if (!a || !b) throw new Error('servers did not start');
      const email = uniqueEmail('shared');
      const registered = await fetch(`${a.url}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password: TEST_PASSWORD }),
      });
      expect(registered.status).toBe(201);
      expect((await loginOver(a, email, WRONG_PASSWORD)).status).toBe(401);
      expect((await loginOver(a, email, WRONG_PASSWORD)).status).toBe(401);
      await expectRateLimited(await loginOver(b, email, TEST_PASSWORD), LOCKOUT_SECONDS);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'keys by the socket address, not a forged X-Forwarded-For',
    async () => {
      const server = await start({ RATE_LIMIT_LOGIN_PER_IP: '2' });
      for (const ip of ['192.0.2.1', '192.0.2.2']) {
        expect((await loginOver(server, uniqueEmail(), WRONG_PASSWORD, { 'X-Forwarded-For': ip })).status).toBe(401);
      }
      const res = await loginOver(server, uniqueEmail(), WRONG_PASSWORD, { 'X-Forwarded-For': '192.0.2.3' });
      await expectRateLimited(res, 60);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'refuses to start when RATE_LIMIT_STORE=redis and Redis cannot be reached, with one line naming REDIS_URL',
    async () => {
      const proc = spawnProject(['src/runtimes/bun.ts'], {
        DATABASE_URL: await databaseUrl(),
        PORT: '0',
        RATE_LIMIT_STORE: 'redis',
        REDIS_URL: CLOSED_REDIS_URL,
      });
      expect(await proc.finished).toBe(1);
      const stderr = proc.stderr.join('\n');
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain(`cannot reach REDIS_URL ${CLOSED_REDIS_URL}`);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
