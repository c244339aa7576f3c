import { afterAll, afterEach, describe, expect, setSystemTime, test } from 'bun:test';
import { ConfigError } from '../src/config';
import { createPostgresClient } from '../src/db/client-postgres';
import { systemClock } from '../src/lib/clock';
import { clientKey } from '../src/lib/ip';
import { createLogger } from '../src/lib/logger';
import { createRateLimitStore } from '../src/rate-limit/stores';
import {
  createTestApp,
  expectProblem,
  json,
  login,
  postJson,
  registerUser,
  TEST_PASSWORD,
  type TestApp,
  testConfig,
  testDatabase,
  testDatabaseUrl,
  uniqueEmail,
} from './helpers';
import { SERVER_TEST_TIMEOUT_MS, type ServerProcess, spawnProject, startServer } from './server-process';

const WRONG_PASSWORD = 'not the password at all';
const REDIS_URL = 'redis://127.0.0.1:6379';
const CLOSED_REDIS_URL = 'redis://127.0.0.1:1'; // nothing listens on port 1
const LOCKOUT_SECONDS = 900;

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

describe('the rate-limit stores', () => {
  test('postgres: locks the account through the rate_limits table, and releases it after the window', async () => {
    const { app, clock } = await lockoutApp({ RATE_LIMIT_STORE: 'postgres' });
    const { email } = await registerUser(app);
    for (let i = 0; i < 3; i++) expect((await loginFrom(app, email, WRONG_PASSWORD, uniqueIp())).status).toBe(401);
    await expectRateLimited(await login(app, email, TEST_PASSWORD), LOCKOUT_SECONDS);
    clock.advance((LOCKOUT_SECONDS + 1) * 1000); // the PostgreSQL store counts on the injected clock
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
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
  // PostgreSQL runs, else a fresh database on the local server, dropped afterwards.
  const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
  let own: Promise<{ url: string; drop(): Promise<void> }> | undefined;
  const servers: ServerProcess[] = [];

  async function freshDatabase() {
    const name = `hpa_test_rl_${process.pid}_${Date.now().toString(36)}`;
    const admin = createPostgresClient(ADMIN_URL, 1);
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    return {
      url: url.href,
      drop: async () => {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      },
    };
  }

  async function databaseUrl(): Promise<string> {
    const suite = await testDatabaseUrl();
    if (suite) return suite;
    own ??= freshDatabase(); // one promise: servers started together must share one database
    return (await own).url;
  }

  afterAll(async () => {
    for (const server of servers) server.proc.kill('SIGTERM');
    await Promise.all(servers.map((server) => server.proc.exited));
    await (await own)?.drop();
  });

  async function start(env: Record<string, string>) {
    const server = await startServer({ DATABASE_URL: await databaseUrl(), ...env });
    servers.push(server);
    return server;
  }

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
      expect(await proc.exited).toBe(1);
      const stderr = await new Response(proc.stderr).text();
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain(`cannot reach REDIS_URL ${CLOSED_REDIS_URL}`);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
