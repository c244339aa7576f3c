import { describe, expect, expectTypeOf, test } from 'bun:test';
import { hc } from 'hono/client';
import type { AppType } from '../src/app';
import { createTestApp, TEST_PASSWORD, uniqueEmail } from './helpers';

const { app } = await createTestApp();
// The typed client, talking to the app in-process instead of over a socket.
const client = hc<AppType>('http://localhost', {
  fetch: (input: string | URL | Request, init?: RequestInit) => app.request(input, init),
});

describe('typed hono/client', () => {
  test('registers, logs in and reads /users/me with typed requests and responses', async () => {
    const email = uniqueEmail('typed');
    const registered = await client.register.$post({ json: { email, password: TEST_PASSWORD } });
    expect(registered.status).toBe(201);
    if (registered.status !== 201) throw new Error('register failed');
    const created = await registered.json();
    expectTypeOf(created.id).toEqualTypeOf<number>();
    expect(created.email).toBe(email);

    const token = await client.token.$post({ form: { username: email, password: TEST_PASSWORD } });
    if (token.status !== 200) throw new Error(`login failed: ${token.status}`);
    const { access_token, token_type } = await token.json();
    expectTypeOf(token_type).toEqualTypeOf<'bearer'>();

    const res = await client.users.me.$get({}, { headers: { Authorization: `Bearer ${access_token}` } });
    if (res.status !== 200) throw new Error(`users/me failed: ${res.status}`);
    const me = await res.json();
    expectTypeOf(me).toEqualTypeOf<{
      id: number;
      email: string;
      role: 'user' | 'admin';
      disabled: boolean;
      email_verified: boolean;
      created_at: string;
      last_login_time: string | null;
    }>();
    expect(me).toMatchObject({ id: created.id, email, role: 'user' });
  });

  test('sees a 401 problem as a typed error response', async () => {
    const res = await client.users.me.$get();
    expect(res.status).toBe(401);
    if (res.status !== 401) return;
    const problem = await res.json();
    expectTypeOf(problem.detail).toEqualTypeOf<string>();
    expect(problem.status).toBe(401);
  });
});
