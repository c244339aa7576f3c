import { describe, expect, test } from 'bun:test';
import { createTestApp, expectProblem, login, postJson, registerUser, TEST_PASSWORD, uniqueEmail } from './helpers';

const { app } = await createTestApp();

describe('POST /register', () => {
  test('creates a user and answers 201 with the public shape', async () => {
    const email = uniqueEmail();
    const res = await postJson(app, '/register', { email, password: TEST_PASSWORD });
    expect(res.status).toBe(201);
    const user = await res.json();
    expect(Object.keys(user).sort()).toEqual(['created_at', 'disabled', 'email', 'id', 'last_login_time', 'role']);
    expect(user).toMatchObject({ email, role: 'user', disabled: false, last_login_time: null });
    expect(new Date(user.created_at).toISOString()).toBe(user.created_at);
  });

  test('trims and lower-cases the email', async () => {
    const email = uniqueEmail('MiXeD');
    const res = await postJson(app, '/register', { email: `  ${email.toUpperCase()} `, password: TEST_PASSWORD });
    expect(res.status).toBe(201);
    expect((await res.json()).email).toBe(email.toLowerCase());
  });

  test('rejects an email registered in another case with 409', async () => {
    const { email } = await registerUser(app);
    const res = await postJson(app, '/register', { email: email.toUpperCase(), password: TEST_PASSWORD });
    const problem = await expectProblem(res, 409);
    expect(problem.type).toBe('/problems/email-taken');
  });

  test('ignores a role in the body: nobody chooses their own role', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: TEST_PASSWORD, role: 'admin' });
    expect(res.status).toBe(201);
    expect((await res.json()).role).toBe('user');
  });
});

describe('POST /token', () => {
  test('logs in with an urlencoded form and sets last_login_time', async () => {
    const { email } = await registerUser(app);
    const res = await login(app, email, TEST_PASSWORD);
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const body = await res.json();
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 1800 });
    expect(body.access_token.split('.')).toHaveLength(3);
  });

  test('answers an unknown email exactly like a wrong password', async () => {
    const { email } = await registerUser(app);
    const wrong = await login(app, email, 'not the password');
    const unknown = await login(app, uniqueEmail('ghost'), 'not the password');
    const [a, b] = [await expectProblem(wrong, 401), await expectProblem(unknown, 401)];
    expect(a).toEqual(b);
    expect(a.detail).toBe('Incorrect email or password');
    expect(wrong.headers.get('WWW-Authenticate')).toBe('Bearer');
    expect(unknown.headers.get('WWW-Authenticate')).toBe('Bearer');
  });
});
