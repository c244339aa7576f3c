/**
 * Overload through the HTTP API: the hash pool's admission control seen from a client. The apps here hash
 * on a pool whose worker holds its thread as long as a password `slow:<ms> …` says
 * (test/fixtures/slow-hash-worker.ts), so a request can be made to outlive its timeout, or to queue behind
 * others, for known durations; users are registered through the ordinary app, on the same database.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { auditEvents, sessions, users } from '../src/db/schema';
import { createHashPool, type HashPool, type HashPoolOptions } from '../src/hashing/pool';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  login,
  registerUser,
  TEST_PASSWORD,
  type TestApp,
  type TokenBody,
  uniqueEmail,
} from './helpers';

const SLOW_WORKER = new URL('./fixtures/slow-hash-worker.ts', import.meta.url);
const pools: HashPool[] = [];
afterAll(() => Promise.all(pools.map((pool) => pool.close())));

const { app: ordinary, deps } = await createTestApp();

async function slowApp(env: Record<string, string> = {}, options: Partial<HashPoolOptions> = {}) {
  const hasher = createHashPool(SLOW_WORKER, { cost: 4, threads: 1, expectedHashMs: 1, ...options });
  pools.push(hasher);
  const { app } = await createTestApp({ env: { TRUST_PROXY: '1', ...env }, hasher });
  return { app, hasher };
}

let ipCounter = 0;
const uniqueIp = () => `198.18.${Math.floor(++ipCounter / 250) % 250}.${(ipCounter % 250) + 1}`;

const loginFrom = async (
  app: TestApp,
  username: string,
  password: string,
  ip: string,
  signal?: AbortSignal,
): Promise<Response> =>
  app.request('/token', {
    method: 'POST',
    headers: { 'X-Forwarded-For': ip },
    body: new URLSearchParams({ username, password }),
    signal,
  });

/** Resolves once the pool has nothing queued or running: every hash the test caused has ended. */
async function drained(pool: HashPool): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { queued, running } = pool.stats();
    if (queued === 0 && running === 0) return;
    await Bun.sleep(25);
  }
  throw new Error('the hash pool never went idle');
}

/** What the database holds for a user besides its registration: login events, sessions, last_login_time. */
async function tracesOf(userId: number) {
  const events = await deps.db
    .select({ event: auditEvents.event })
    .from(auditEvents)
    .where(eq(auditEvents.userId, userId));
  const live = await deps.db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, userId));
  const [user] = await deps.db.select().from(users).where(eq(users.id, userId));
  return { events: events.map((row) => row.event), sessions: live.length, lastLoginTime: user?.lastLoginTime ?? null };
}

describe('nothing happens after a request is answered', () => {
  test('a login answered 503 by its timeout writes nothing: no audit row, no login time, no session, no failure counted', async () => {
    const password = 'slow:800 correct horse';
    const { user, email } = await registerUser(ordinary, uniqueEmail('timeout'), password);
    const { app, hasher } = await slowApp({ REQUEST_TIMEOUT_MS: '300', RATE_LIMIT_LOGIN_FAILURES: '2' });
    const ip = uniqueIp();
    // Both at once: the first is running when its timeout answers, the second still queued behind it.
    const answers = await Promise.all([
      loginFrom(app, email, password, ip),
      loginFrom(app, email, 'slow:800 a wrong guess', ip),
    ]);
    for (const res of answers) await expectProblem(res, 503, 'timeout');
    await drained(hasher);
    await Bun.sleep(100); // time for any write that would still follow the hash
    expect(await tracesOf(user.id)).toEqual({ events: ['register'], sessions: 0, lastLoginTime: null });
    // Neither unanswered attempt counted: the two failures this address may have are still free…
    for (let i = 0; i < 2; i++) {
      await expectProblem(await loginFrom(app, email, 'a quick wrong guess', ip), 401, 'invalid-credentials');
    }
    // …and are used now (the control: the limit is on).
    await expectProblem(await loginFrom(app, email, 'a quick wrong guess', ip), 429, 'rate-limited');
  });

  test('a client that disconnects while its hash waits is dropped before the hash runs; nothing is written', async () => {
    const first = await registerUser(ordinary, uniqueEmail('first'), 'slow:400 first password');
    const second = await registerUser(ordinary, uniqueEmail('gone'), 'slow:400 second password');
    const { app, hasher } = await slowApp();
    const running = loginFrom(app, first.email, first.password, uniqueIp());
    await Bun.sleep(50);
    const client = new AbortController();
    const abandoned = loginFrom(app, second.email, second.password, uniqueIp(), client.signal);
    await Bun.sleep(50);
    client.abort();
    await abandoned.catch(() => {});
    expect((await running).status).toBe(200);
    // Had the abandoned login's hash been left in the queue, the worker would be running it now.
    expect(hasher.stats()).toMatchObject({ queued: 0, running: 0 });
    expect(await tracesOf(second.user.id)).toEqual({ events: ['register'], sessions: 0, lastLoginTime: null });
  });
});

describe('what still happens after a client has gone', () => {
  // In this process: an aborted signal must reach the app, not stop a client's fetch.
  let local: TestApp;
  beforeAll(async () => {
    local = (await createTestApp({ inProcess: true })).app;
  });

  test('a logout completes: a client that sends it and leaves is logged out all the same', async () => {
    const { email } = await registerUser(local);
    const { access_token } = await json<TokenBody>(await login(local, email, TEST_PASSWORD));
    await local.request('/logout', { method: 'POST', headers: bearer(access_token), signal: AbortSignal.abort() });
    expect((await local.request('/users/me', { headers: bearer(access_token) })).status).toBe(401);
  });

  test('a refresh does not: the client that left still holds a working refresh token', async () => {
    const { email } = await registerUser(local);
    const { refresh_token } = await json<TokenBody>(await login(local, email, TEST_PASSWORD));
    const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token });
    await local.request('/token', { method: 'POST', body, signal: AbortSignal.abort() });
    const again = await local.request('/token', { method: 'POST', body });
    expect(again.status).toBe(200);
  });
});

describe('admission', () => {
  test('every endpoint that hashes answers 503 overloaded with Retry-After at once when the hashes ahead cannot finish in time', async () => {
    const { email } = await registerUser(ordinary);
    const pair = await json<TokenBody>(await login(ordinary, email, TEST_PASSWORD));
    const { app } = await slowApp({}, { expectedHashMs: 60_000 }); // each hash is expected to take a minute
    const newEmail = uniqueEmail('refused');
    const requests: [string, () => Response | Promise<Response>][] = [
      [
        'POST /register',
        () =>
          app.request('/register', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ email: newEmail, password: TEST_PASSWORD }),
          }),
      ],
      ['POST /token', () => login(app, email, TEST_PASSWORD)],
      [
        'PUT /users/me/password',
        () =>
          app.request('/users/me/password', {
            method: 'PUT',
            headers: { ...bearer(pair.access_token), 'Content-Type': 'application/json' },
            body: JSON.stringify({ current_password: TEST_PASSWORD, new_password: 'a different passphrase' }),
          }),
      ],
    ];
    for (const [name, send] of requests) {
      const started = performance.now();
      const res = await send();
      await expectProblem(res, 503, 'overloaded');
      expect(Number(res.headers.get('Retry-After')), name).toBeGreaterThanOrEqual(1);
      expect(performance.now() - started, name).toBeLessThan(2_000); // refused, not queued
    }
    // Nothing was done: the email is still free, the password unchanged.
    expect((await registerUser(ordinary, newEmail)).email).toBe(newEmail);
    expect((await login(ordinary, email, TEST_PASSWORD)).status).toBe(200);
  });

  test('a flood from one address leaves room for a login from another', async () => {
    // One worker, 100 ms expected per hash, 2 s requests: 20 hashes fit, one address may hold 2 of them.
    const { app } = await slowApp({ REQUEST_TIMEOUT_MS: '2000' }, { expectedHashMs: 100 });
    const { email } = await registerUser(ordinary);
    const flooder = uniqueIp();
    const flood = Array.from({ length: 8 }, () => loginFrom(app, uniqueEmail('ghost'), 'slow:300 guess', flooder));
    await Bun.sleep(20);
    const legit = await loginFrom(app, email, TEST_PASSWORD, uniqueIp());
    const answers = await Promise.all(flood);
    expect(legit.status).toBe(200);
    const overloaded = answers.filter((res) => res.status === 503);
    expect(overloaded.length).toBeGreaterThanOrEqual(6);
    for (const res of overloaded) await expectProblem(res, 503, 'overloaded');
  });

  test('a user logging in from an address it logged in from before is served ahead of a flood of strangers', async () => {
    const { app } = await slowApp();
    const { email } = await registerUser(ordinary);
    const home = uniqueIp();
    expect((await loginFrom(app, email, TEST_PASSWORD, home)).status).toBe(200);
    const arrivals: string[] = [];
    const flood = Array.from({ length: 6 }, () =>
      loginFrom(app, uniqueEmail('ghost'), 'slow:300 guess', uniqueIp()).then((res) => {
        arrivals.push('stranger');
        return res;
      }),
    );
    await Bun.sleep(30);
    const known = await loginFrom(app, email, TEST_PASSWORD, home);
    arrivals.push('known');
    await Promise.all(flood);
    expect(known.status).toBe(200);
    // Only the hash already running when it arrived (and at most one more racing it) came before it.
    expect(arrivals.indexOf('known')).toBeLessThanOrEqual(2);
  });
});
