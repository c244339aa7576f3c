import { describe, expect, test } from 'bun:test';
import { eq, sql } from 'drizzle-orm';
import { users } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  login,
  loginAs,
  ownDatabase,
  PUBLIC_USER_KEYS,
  postJson,
  registerUser,
  TEST_PASSWORD,
  type TokenBody,
  uniqueEmail,
} from './helpers';

const { app } = await createTestApp();

describe('POST /register', () => {
  test('creates a user and answers 201 with the public shape', async () => {
    const email = uniqueEmail();
    const res = await postJson(app, '/register', { email, password: TEST_PASSWORD });
    expect(res.status).toBe(201);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    const user = await json(res);
    expect(Object.keys(user).sort()).toEqual(PUBLIC_USER_KEYS);
    expect(user).toMatchObject({ email, role: 'user', disabled: false, last_login_time: null });
    expect(new Date(user.created_at).toISOString()).toBe(user.created_at);
  });

  test('trims and lower-cases the email', async () => {
    const email = uniqueEmail('MiXeD');
    const res = await postJson(app, '/register', { email: `  ${email.toUpperCase()} `, password: TEST_PASSWORD });
    expect(res.status).toBe(201);
    expect((await json(res)).email).toBe(email.toLowerCase());
  });

  test('rejects an email registered in another case with 409', async () => {
    const { email } = await registerUser(app);
    const res = await postJson(app, '/register', { email: email.toUpperCase(), password: TEST_PASSWORD });
    await expectProblem(res, 409, 'email-taken');
  });

  test('ignores a role in the body: nobody chooses their own role', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: TEST_PASSWORD, role: 'admin' });
    expect(res.status).toBe(201);
    expect((await json(res)).role).toBe('user');
  });

  test('never returns a password hash or the password', async () => {
    const password = 'a very memorable passphrase';
    const res = await postJson(app, '/register', { email: uniqueEmail(), password });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain(password);
    expect(text).not.toMatch(/\$2[aby]\$/);
    expect(text.toLowerCase()).not.toContain('hash');
  });

  test('answers concurrent registrations of one email with exactly one 201 and 409 for the rest', async () => {
    const email = uniqueEmail('race');
    // Mixed case: the race is decided by the case-insensitive unique index, not by string equality.
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        postJson(app, '/register', { email: i % 2 ? email.toUpperCase() : email, password: TEST_PASSWORD }),
      ),
    );
    const statuses = responses.map((res) => res.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    for (const res of responses.filter((r) => r.status === 409)) {
      expect((await expectProblem(res, 409)).type).toBe('/problems/email-taken');
    }
  });
});

describe('POST /token', () => {
  test('logs in with an urlencoded form and answers an uncacheable bearer token', async () => {
    const { email } = await registerUser(app);
    const res = await login(app, email, TEST_PASSWORD);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const body = await json<TokenBody>(res);
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 900 }); // 15 minutes: ES256 tokens are verified elsewhere too
    expect(body.access_token.split('.')).toHaveLength(3);
  });

  test('sets last_login_time to the time of the login', async () => {
    // Exact equality needs the app's clock in this process.
    const own = await createTestApp({ inProcess: true });
    const { email } = await registerUser(own.app);
    const res = await login(own.app, email, TEST_PASSWORD);
    expect(res.status).toBe(200);
    const me = await own.app.request('/users/me', { headers: bearer((await json<TokenBody>(res)).access_token) });
    expect((await json<{ last_login_time: string }>(me)).last_login_time).toBe(own.clock.now().toISOString());
  });

  test('logs in with a multipart form', async () => {
    const { email } = await registerUser(app);
    const form = new FormData();
    form.set('username', email);
    form.set('password', TEST_PASSWORD);
    const res = await app.request('/token', { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect((await json<TokenBody>(res)).token_type).toBe('bearer');
  });

  test('accepts grant_type=password', async () => {
    const { email } = await registerUser(app);
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'password', username: email, password: TEST_PASSWORD }),
    });
    expect(res.status).toBe(200);
  });

  test('rejects any other grant_type with 400 problem+json', async () => {
    const { email } = await registerUser(app);
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', username: email, password: TEST_PASSWORD }),
    });
    const problem = await expectProblem(res, 400);
    expect(problem.type).toBe('/problems/unsupported-grant-type');
  });

  test('finds the account whatever the case and surrounding spaces of the username', async () => {
    const { email } = await registerUser(app);
    const res = await login(app, `  ${email.toUpperCase()}  `, TEST_PASSWORD);
    expect(res.status).toBe(200);
  });

  test('rejects a wrong password with 401 problem+json and the Bearer challenge', async () => {
    const { email } = await registerUser(app);
    const res = await login(app, email, 'not the password');
    const problem = await expectProblem(res, 401, 'invalid-credentials');
    // The original app's sentence: FastAPI clients show it as it is (API.md compatibility rule).
    expect(problem.detail).toBe('Incorrect email or password');
    expect(res.headers.get('WWW-Authenticate')).toBe('Bearer');
  });

  test('answers an unknown email exactly like a wrong password', async () => {
    const { email } = await registerUser(app);
    const wrong = await login(app, email, 'not the password');
    const unknown = await login(app, uniqueEmail('ghost'), 'not the password');
    const [a, b] = [await expectProblem(wrong, 401), await expectProblem(unknown, 401)];
    expect(a).toEqual(b);
    expect(a.type).toBe('/problems/invalid-credentials');
    expect(wrong.headers.get('WWW-Authenticate')).toBe('Bearer');
    expect(unknown.headers.get('WWW-Authenticate')).toBe('Bearer');
  });

  test('rejects a password longer than 72 bytes whose first 72 bytes are the real one (no truncation)', async () => {
    const password = 'p'.repeat(72);
    const { email } = await registerUser(app, uniqueEmail(), password);
    expect((await login(app, email, password)).status).toBe(200);
    const res = await login(app, email, `${password}x`);
    await expectProblem(res, 401, 'invalid-credentials');
  });

  test('rejects a disabled account like a wrong password', async () => {
    const { email, user } = await registerUser(app);
    const { deps } = await createTestApp();
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, user.id));
    const res = await login(app, email, TEST_PASSWORD);
    await expectProblem(res, 401, 'invalid-credentials');
  });

  test('rejects a JSON body with 415: the endpoint takes a form', async () => {
    const { email } = await registerUser(app);
    const res = await postJson(app, '/token', { username: email, password: TEST_PASSWORD });
    await expectProblem(res, 415);
  });

  test('answers missing form fields with 422 naming each field', async () => {
    const res = await app.request('/token', { method: 'POST', body: new URLSearchParams({ grant_type: 'password' }) });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer).sort()).toEqual(['#/password', '#/username']);
  });

  test('refuses a NUL in the username with 422, not 500 (PostgreSQL text cannot hold it)', async () => {
    // Regression, found by test/fuzz.test.ts: the username reached the lookup and the audit log's jsonb.
    for (const username of ['\u0000', `a\u0000${uniqueEmail()}`]) {
      const res = await app.request('/token', {
        method: 'POST',
        body: new URLSearchParams({ username, password: 'x' }),
      });
      const problem = await expectProblem(res, 422);
      expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/username']);
    }
  });

  test('answers concurrent logins of one user all with 200 and keeps the latest last_login_time', async () => {
    const { email, user } = await registerUser(app);
    // Each clock reading is a millisecond earlier than the one before. A request reads the clock for
    // last_login_time before it reads it for the token, so the very first reading is the latest
    // login time; an update that lands later with an earlier time must not move it backwards.
    const start = Date.now();
    let readings = 0;
    const backwards = { now: () => new Date(start - readings++) };
    const { app: racing, deps } = await createTestApp({ clock: backwards });
    readings = 0; // making the app read the clock too: the logins' first reading is the latest
    const responses = await Promise.all(Array.from({ length: 8 }, () => login(racing, email, TEST_PASSWORD)));
    expect(responses.map((res) => res.status)).toEqual(Array(8).fill(200));
    const [row] = await deps.db.select().from(users).where(eq(users.id, user.id));
    expect(row?.lastLoginTime?.toISOString()).toBe(new Date(start).toISOString());
  });
});

describe('the bearer check', () => {
  test('answers a database error in it with 503 and Retry-After, never 401', async () => {
    const own = await ownDatabase('bearer_fault');
    try {
      // No view: each check reads the database (as behind a pooler with no DATABASE_LISTEN_URL).
      const { app: ownApp } = await createTestApp({ db: own.handle.db, env: { ACCESS_VIEW_MAX_ENTRIES: '0' } });
      const { token } = await loginAs(ownApp);
      // A real failure of the check's own query: its table is not there (42P01), then is again.
      await own.handle.db.execute(sql`alter table sessions rename to sessions_away`);
      const failed = await ownApp.request('/users/me', { headers: bearer(token) });
      await expectProblem(failed, 503, 'database-unavailable');
      expect(Number(failed.headers.get('Retry-After'))).toBeGreaterThan(0);
      await own.handle.db.execute(sql`alter table sessions_away rename to sessions`);
      expect((await ownApp.request('/users/me', { headers: bearer(token) })).status).toBe(200);
    } finally {
      await own.handle.close();
      await own.drop();
    }
  });
});
