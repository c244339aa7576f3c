/**
 * GET /metrics: who may scrape it, what it counts after real traffic, that labels never carry an email, an
 * id or a token, and that each app counts on a registry of its own.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { createHashPool, type HashPool } from '../src/hashing/pool';
import { noMetrics } from '../src/lib/metrics';
import {
  bearer,
  createTestApp,
  createTestClock,
  expectProblem,
  login,
  loginAs,
  postJson,
  refresh,
  registerUser,
  type TestApp,
  uniqueEmail,
} from './helpers';
import { codeAt, loginWithOtp, mfaOtp, mfaTokenOf, totpUser } from './support/mfa';
import { SoftwareAuthenticator } from './support/webauthn';

const LOOPBACK = () => '127.0.0.1';
const OUTSIDE = () => '203.0.113.20';
const METRICS_TOKEN = 'a-metrics-token-of-32-characters';

const scrape = async (app: TestApp, headers: Record<string, string> = {}) => {
  const res = await app.request('/metrics', { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('Content-Type')).toStartWith('text/plain; version=0.0.4');
  return res.text();
};

/** The value of one sample (`name{labels} value`), or undefined when the scrape has no such line. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('who may scrape', () => {
  test('without METRICS_TOKEN a loopback client may, IPv4 and IPv6', async () => {
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      const { app } = await createTestApp({ remoteAddress: () => address });
      await scrape(app);
    }
  });

  test('without METRICS_TOKEN any other client is refused 403, and so is one whose address is unknown', async () => {
    const { app } = await createTestApp({ remoteAddress: OUTSIDE });
    await expectProblem(await app.request('/metrics'), 403, 'forbidden');
    const { app: unknown } = await createTestApp();
    await expectProblem(await unknown.request('/metrics'), 403, 'forbidden');
  });

  test('behind a trusted proxy on this machine, a request forwarded from outside is not loopback', async () => {
    // nginx on the same host: every connection comes from 127.0.0.1; X-Forwarded-For names the real client.
    const { app } = await createTestApp({ env: { TRUST_PROXY: '1' }, remoteAddress: LOOPBACK });
    const forwarded = await app.request('/metrics', { headers: { 'X-Forwarded-For': '198.51.100.7' } });
    await expectProblem(forwarded, 403, 'forbidden');
    // A scraper on the machine itself, straight to the port, is still local.
    await scrape(app);
  });

  test('with METRICS_TOKEN only its bearer may scrape, from anywhere; loopback alone is not enough', async () => {
    const { app } = await createTestApp({ env: { METRICS_TOKEN }, remoteAddress: LOOPBACK });
    await expectProblem(await app.request('/metrics'), 401, 'not-authenticated');
    await expectProblem(await app.request('/metrics', { headers: bearer(`${METRICS_TOKEN}x`) }), 401);
    await expectProblem(await app.request('/metrics', { headers: bearer(METRICS_TOKEN.slice(0, -1)) }), 401);
    const { app: remote } = await createTestApp({ env: { METRICS_TOKEN }, remoteAddress: OUTSIDE });
    await scrape(remote, bearer(METRICS_TOKEN));
  });

  test('where no metrics are kept (Workers), an allowed scraper gets a 404 problem saying so', async () => {
    const { app } = await createTestApp({ metrics: noMetrics, remoteAddress: LOOPBACK });
    const body = await expectProblem(await app.request('/metrics'), 404, 'not-found');
    expect(body.detail).toBe('Metrics are not kept on this runtime');
  });

  test('a short METRICS_TOKEN is a configuration error naming it', async () => {
    await expect(createTestApp({ env: { METRICS_TOKEN: 'short' } })).rejects.toThrow(/METRICS_TOKEN must be at least/);
  });
});

describe('what is counted', () => {
  test('requests by route template and status, logins by outcome, refresh reuse, hashing, the view, the pool, the outbox; no email, id or token in any label', async () => {
    const { app } = await createTestApp({ remoteAddress: LOOPBACK, env: { REFRESH_REUSE_GRACE_SECONDS: '0' } });
    const alice = await loginAs(app, uniqueEmail('metrics-alice'));
    const bob = await registerUser(app, uniqueEmail('metrics-bob'));
    await expectProblem(await login(app, bob.email, 'not the password'), 401, 'invalid-credentials');
    for (let i = 0; i < 3; i++)
      expect((await app.request('/users/me', { headers: bearer(alice.token) })).status).toBe(200);
    expect((await app.request(`/users/${bob.user.id}`, { headers: bearer(alice.token) })).status).toBe(403);
    const rotated = await refresh(app, alice.refreshToken);
    expect(rotated.status).toBe(200);
    const { access_token: newToken, refresh_token: newRefresh } = (await rotated.json()) as Record<string, string>;
    await expectProblem(await refresh(app, alice.refreshToken), 400, 'invalid-refresh-token'); // reuse: family revoked
    await app.request(`/no/such/${alice.user.id}/${encodeURIComponent(alice.email)}`);

    const text = await scrape(app);
    expect(sample(text, 'auth_http_requests_total{method="GET",route="/users/me",status="200"}')).toBe(3);
    expect(sample(text, 'auth_http_requests_total{method="GET",route="/users/:id",status="403"}')).toBe(1);
    expect(sample(text, 'auth_http_requests_total{method="POST",route="/token",status="401"}')).toBe(1);
    expect(sample(text, 'auth_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(sample(text, 'auth_http_request_duration_seconds_count{method="GET",route="/users/me",status="200"}')).toBe(
      3,
    );
    expect(sample(text, 'auth_logins_total{grant="password",outcome="ok"}')).toBe(1);
    expect(sample(text, 'auth_logins_total{grant="password",outcome="bad_credentials"}')).toBe(1);
    expect(sample(text, 'auth_refresh_reuse_total')).toBe(1);
    expect(sample(text, 'auth_password_hash_duration_seconds_count{operation="hash"}')).toBe(2); // two registrations
    expect(sample(text, 'auth_password_hash_duration_seconds_count{operation="verify"}')).toBe(2); // two logins
    expect(sample(text, 'auth_hash_queue_depth')).toBe(0);
    expect(sample(text, 'auth_hash_mean_seconds')).toBeGreaterThan(0);
    // The view answers the repeated bearer checks once it has read them.
    expect(sample(text, 'auth_view_lookups_total{result="hit"}')).toBeGreaterThan(0);
    expect(sample(text, 'auth_view_hit_ratio')).toBeGreaterThan(0);
    expect(sample(text, 'auth_db_queries_total')).toBeGreaterThan(10);
    expect(sample(text, 'auth_db_pool_max')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'auth_outbox_depth')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'auth_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(0);

    for (const secret of [alice.email, bob.email, alice.token, alice.refreshToken, newToken, newRefresh]) {
      expect(text).not.toContain(secret as string);
    }
    expect(text).not.toContain(`/users/${bob.user.id}`);
    expect(text).not.toContain(`/no/such`);
    // Every label value is from a fixed set: a route template, a method, a status, an outcome, a name.
    for (const [, labels] of text.matchAll(/^\w+\{([^}]*)\}/gm)) {
      for (const [, name, value] of (labels as string).matchAll(/(\w+)="([^"]*)"/g)) {
        expect(`${name}=${value}`).toMatch(
          /^(method=[A-Z]+|route=(unmatched|[/\w:{}.*-]+)|status=\d{3}|grant=\w+|outcome=\w+|limit=\w+|reason=\w+|operation=\w+|kind=\w+|result=\w+|quantile=[\d.]+|le=[\d.+Inf]+)$/,
        );
        if (name === 'route') expect(value).not.toMatch(/\/\d+(\/|$)/);
      }
    }
  });

  test('a lockout counts by its limit, and its login as locked', async () => {
    const { app } = await createTestApp({ remoteAddress: LOOPBACK, env: { RATE_LIMIT_LOGIN_FAILURES: '2' } });
    const { email } = await registerUser(app, uniqueEmail('metrics-locked'));
    for (let i = 0; i < 2; i++) await expectProblem(await login(app, email, 'wrong'), 401);
    await expectProblem(await login(app, email, 'wrong'), 429, 'rate-limited');
    const text = await scrape(app);
    expect(sample(text, 'auth_lockouts_total{limit="loginFailures"}')).toBe(1);
    expect(sample(text, 'auth_logins_total{grant="password",outcome="locked"}')).toBe(1);
    expect(sample(text, 'auth_logins_total{grant="password",outcome="bad_credentials"}')).toBe(2);
  });

  test('a login with a second factor counts its password step as mfa_required and its code step apart', async () => {
    const clock = createTestClock();
    const { app } = await createTestApp({ clock, remoteAddress: LOOPBACK });
    const user = await totpUser(app, () => clock.now());
    clock.advance(60_000); // past the confirming code's step, which is spent
    const right = codeAt(user.secret, clock.now());
    const otp = `${(Number(right[0]) + 1) % 10}${right.slice(1)}`; // surely not the code of this step
    const wrong = await mfaOtp(app, await mfaTokenOf(app, user.email), { otp });
    await expectProblem(wrong, 401, 'invalid-otp');
    await loginWithOtp(app, user, clock.now());
    const text = await scrape(app);
    expect(sample(text, 'auth_logins_total{grant="password",outcome="mfa_required"}')).toBe(2);
    expect(sample(text, 'auth_logins_total{grant="mfa_otp",outcome="bad_code"}')).toBe(1);
    expect(sample(text, 'auth_logins_total{grant="mfa_otp",outcome="ok"}')).toBe(1);
    expect(text).not.toContain(user.secret);
  });

  test('a passkey login counts under its own grant, a refused one as bad_passkey', async () => {
    const origin = 'http://localhost:8000';
    const { app } = await createTestApp({ env: { WEBAUTHN_ORIGINS: origin }, remoteAddress: LOOPBACK });
    const user = await loginAs(app, uniqueEmail('metrics-passkey'));
    const authenticator = new SoftwareAuthenticator(origin);
    const options = async (path: string, body: unknown, token?: string) =>
      (await postJson(app, path, body, token ? bearer(token) : {})).json() as Promise<never>;
    const created = authenticator.create(await options('/webauthn/register/options', {}, user.token));
    expect((await postJson(app, '/webauthn/register/verify', created, bearer(user.token))).status).toBe(201);
    const assertion = authenticator.get(await options('/webauthn/login/options', {}));
    expect((await postJson(app, '/webauthn/login/verify', assertion)).status).toBe(200);
    // The same assertion again: its challenge is spent.
    expect((await postJson(app, '/webauthn/login/verify', assertion)).status).toBe(401);
    const text = await scrape(app);
    expect(sample(text, 'auth_logins_total{grant="passkey",outcome="ok"}')).toBe(1);
    expect(sample(text, 'auth_logins_total{grant="passkey",outcome="bad_passkey"}')).toBe(1);
  });

  test('each app counts on its own registry', async () => {
    const { app: one } = await createTestApp({ remoteAddress: LOOPBACK });
    const { app: two } = await createTestApp({ remoteAddress: LOOPBACK });
    await loginAs(one);
    expect(sample(await scrape(one), 'auth_logins_total{grant="password",outcome="ok"}')).toBe(1);
    expect(sample(await scrape(two), 'auth_logins_total{grant="password",outcome="ok"}')).toBeUndefined();
  });
});

describe('overload', () => {
  // A pool whose worker holds its thread as long as a `slow:<ms> …` password says (test/fixtures).
  const SLOW_WORKER = new URL('./fixtures/slow-hash-worker.ts', import.meta.url);
  const pools: HashPool[] = [];
  afterAll(() => Promise.all(pools.map((pool) => pool.close())));

  test('a hash the pool refuses at admission and a request past its deadline count apart', async () => {
    const password = 'slow:600 correct horse';
    const { email } = await registerUser((await createTestApp()).app, uniqueEmail('metrics-slow'), password);
    // Expected far slower than the deadline allows: refused before it is queued.
    const refusing = createHashPool(SLOW_WORKER, { cost: 4, threads: 1, expectedHashMs: 5_000 });
    // Expected fast, but slow: admitted, and the request's deadline answers first.
    const slow = createHashPool(SLOW_WORKER, { cost: 4, threads: 1, expectedHashMs: 1 });
    pools.push(refusing, slow);
    const env = { REQUEST_TIMEOUT_MS: '300' };
    const { app: admission } = await createTestApp({ env, hasher: refusing, remoteAddress: LOOPBACK });
    await expectProblem(await login(admission, email, password), 503, 'overloaded');
    const { app: deadline } = await createTestApp({ env, hasher: slow, remoteAddress: LOOPBACK });
    await expectProblem(await login(deadline, email, password), 503, 'timeout');

    const refused = await scrape(admission);
    expect(sample(refused, 'auth_overload_rejections_total{reason="hash_admission"}')).toBe(1);
    expect(sample(refused, 'auth_logins_total{grant="password",outcome="overloaded"}')).toBe(1);
    const late = await scrape(deadline);
    expect(sample(late, 'auth_overload_rejections_total{reason="deadline"}')).toBe(1);
    expect(sample(late, 'auth_overload_rejections_total{reason="hash_admission"}')).toBeUndefined();
  });
});
