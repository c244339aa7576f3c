import { describe, expect, test } from 'bun:test';
import {
  bearer,
  createTestApp,
  expectProblem,
  expectUnauthorized,
  json,
  login,
  loginAs,
  postJson,
  USER_PUBLIC_FIELDS,
  uniqueEmail,
} from './helpers';

const { app } = await createTestApp();

const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;

/** An RFC-valid address of exactly `length` characters, unique to this run. */
function emailOfLength(length: number): string {
  const local = uniqueEmail('long').split('@')[0] ?? '';
  const labels = ['a', 'b', 'c', 'd'].map((c) => c.repeat(63)).join('.');
  const domain = `${labels}.com`.slice(-(length - local.length - 1));
  const email = `${local}@${domain.replace(/^[.-]+/, 'x')}`;
  if (email.length !== length) throw new Error(`built ${email.length} chars, wanted ${length}`);
  return email;
}

describe('GET /users/me', () => {
  test('answers the caller in the public shape, uncacheable', async () => {
    const { email, token, user } = await loginAs(app);
    const res = await app.request('/users/me', { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const me = await json(res);
    expect(Object.keys(me).sort()).toEqual(USER_PUBLIC_FIELDS);
    expect(me).toMatchObject({ id: user.id, email, role: 'user', disabled: false });
    expect(new Date(me.last_login_time ?? 'null').toISOString()).toBe(me.last_login_time ?? 'null');
  });

  test('answers 401 with the plain Bearer challenge when no token is sent', async () => {
    const res = await app.request('/users/me');
    await expectUnauthorized(res, 'Bearer');
  });
});

describe('GET /welcome', () => {
  test('greets the caller by their email', async () => {
    const { email, token } = await loginAs(app);
    const res = await app.request('/welcome', { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    const body = await json<{ message: string }>(res);
    expect(Object.keys(body)).toEqual(['message']);
    expect(body.message).toContain(email);
  });

  test('answers 401 with the plain Bearer challenge when no token is sent', async () => {
    await expectUnauthorized(await app.request('/welcome'), 'Bearer');
  });

  test('answers 401 invalid_token for a garbage token', async () => {
    await expectUnauthorized(await app.request('/welcome', { headers: bearer('not.a.jwt') }));
  });
});

describe('email rules', () => {
  test('accepts an email of exactly 254 characters', async () => {
    const email = emailOfLength(254);
    const res = await postJson(app, '/register', { email, password: 'long enough' });
    expect(res.status).toBe(201);
    expect((await json(res)).email).toBe(email);
  });

  test('rejects an email of 255 characters with 422 at #/email', async () => {
    const res = await postJson(app, '/register', { email: emailOfLength(255), password: 'long enough' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/email']);
    expect(problem.errors?.[0]?.detail).toContain('254');
  });

  test('counts the length after trimming surrounding spaces', async () => {
    const email = emailOfLength(254);
    const res = await postJson(app, '/register', { email: `   ${email}   `, password: 'long enough' });
    expect(res.status).toBe(201);
  });

  test('rejects an address that is not an email with 422 at #/email', async () => {
    const res = await postJson(app, '/register', { email: 'not-an-email', password: 'long enough' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/email']);
  });

  test('rejects a control character inside the email with 422 at #/email', async () => {
    const [local, domain] = uniqueEmail().split('@');
    const res = await postJson(app, '/register', { email: `${local}\u0001@${domain}`, password: 'long enough' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/email']);
  });

  test('stores the email lower-cased, so login in any case finds it', async () => {
    const email = uniqueEmail('CamelCase');
    const res = await postJson(app, '/register', { email, password: 'long enough' });
    expect((await json(res)).email).toBe(email.toLowerCase());
    expect((await login(app, email.toLowerCase(), 'long enough')).status).toBe(200);
  });
});

describe('password rules', () => {
  test('accepts a password of exactly 8 characters', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: 'tq8#vzmw' }); // 12345678 is blocklisted
    expect(res.status).toBe(201);
  });

  test('rejects a password of 7 characters with 422 at #/password', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: '1234567' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/password']);
    expect(problem.errors?.[0]?.detail).toContain('8');
  });

  test('accepts a 72-byte multi-byte password and logs in with it', async () => {
    const password = 'é'.repeat(36);
    expect(utf8Bytes(password)).toBe(72);
    const email = uniqueEmail();
    expect((await postJson(app, '/register', { email, password })).status).toBe(201);
    expect((await login(app, email, password)).status).toBe(200);
  });

  test('rejects a 73-byte password with a 422 that names the 72-byte limit', async () => {
    const password = `${'é'.repeat(36)}a`;
    expect(utf8Bytes(password)).toBe(73);
    const res = await postJson(app, '/register', { email: uniqueEmail(), password });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/password']);
    expect(problem.detail).toContain('72 bytes');
    expect(problem.errors?.[0]?.detail).toContain('72 bytes');
  });

  test('rejects a NUL in the password with 422 at #/password', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: 'abcd\u0000efgh' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/password']);
    expect(problem.errors?.[0]?.detail).toContain('NUL');
  });
});
