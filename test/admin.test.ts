import { describe, expect, test } from 'bun:test';
import { and, eq, inArray, notInArray } from 'drizzle-orm';
import { users } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  expectProblem,
  expectUnauthorized,
  json,
  login,
  loginAs,
  loginAsAdmin,
  postJson,
  refresh,
  registerUser,
  TEST_PASSWORD,
  USER_PUBLIC_FIELDS,
  uniqueEmail,
} from './helpers';

const { app, deps } = await createTestApp();

interface UsersBody {
  items: { id: number; email: string; role: string; disabled: boolean }[];
  total: number;
}

/** No token at all when `token` is undefined. */
const auth = (token: string | undefined) => (token === undefined ? {} : bearer(token));
const get = (path: string, token: string | undefined) => app.request(path, { headers: auth(token) });
const patch = (id: number, token: string | undefined, body: unknown) =>
  app.request(`/users/${id}`, {
    method: 'PATCH',
    headers: { ...auth(token), 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
const remove = (id: number, token: string | undefined) =>
  app.request(`/users/${id}`, { method: 'DELETE', headers: auth(token) });
const me = (token: string) => app.request('/users/me', { headers: bearer(token) });

/** The admin routes, each as a request any caller can make about the user `id`. */
const ADMIN_REQUESTS: [string, (token: string | undefined, id: number) => Response | Promise<Response>, number][] = [
  ['GET /users', (token) => get('/users', token), 200],
  ['GET /users/{id}', (token, id) => get(`/users/${id}`, token), 200],
  ['PATCH /users/{id}', (token, id) => patch(id, token, { disabled: false }), 200],
  ['DELETE /users/{id}', (token, id) => remove(id, token), 204],
  ['GET /audit', (token) => get('/audit', token), 200],
];

/**
 * The last-admin guard counts every enabled admin in the database, and other test files (sharing it)
 * create admins too. So a guard test first disables every other enabled admin, and restores them after,
 * so it sees exactly the admins it made. Test files run one after another, so nothing else is running.
 */
async function withOnlyEnabledAdmins(keep: number[], run: () => Promise<void>) {
  const others = await deps.db
    .update(users)
    .set({ disabled: true })
    .where(and(eq(users.role, 'admin'), eq(users.disabled, false), notInArray(users.id, keep)))
    .returning({ id: users.id });
  try {
    await run();
  } finally {
    const ids = others.map((other) => other.id);
    if (ids.length > 0) await deps.db.update(users).set({ disabled: false }).where(inArray(users.id, ids));
  }
}

describe('admin routes', () => {
  test.each(ADMIN_REQUESTS)('%s succeeds for an admin (the control for the 403s)', async (_, send, status) => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    expect((await send(admin.token, user.id)).status).toBe(status);
  });

  test.each(ADMIN_REQUESTS)('%s answers 403 problem+json for a plain user', async (_, send) => {
    const caller = await loginAs(app);
    const { user } = await registerUser(app);
    const problem = await expectProblem(await send(caller.token, user.id), 403);
    expect(problem.type).toBe('/problems/forbidden');
  });

  test.each(ADMIN_REQUESTS)('%s answers 401 without a token', async (_, send) => {
    const { user } = await registerUser(app);
    await expectUnauthorized(await send(undefined, user.id), 'Bearer');
  });

  test('a plain user cannot promote themselves: 403 and the role stays user', async () => {
    const { token, user } = await loginAs(app);
    await expectProblem(await patch(user.id, token, { role: 'admin' }), 403);
    expect((await json(await me(token))).role).toBe('user');
  });

  test('a role in the registration body does not make an admin', async () => {
    const email = uniqueEmail();
    expect((await postJson(app, '/register', { email, password: TEST_PASSWORD, role: 'admin' })).status).toBe(201);
    const { access_token } = await json<{ access_token: string }>(await login(app, email, TEST_PASSWORD));
    await expectProblem(await get('/users', access_token), 403);
  });

  test('a demoted admin loses access at once, with the token they already hold', async () => {
    const admin = await loginAsAdmin(app, deps);
    const demoter = await loginAsAdmin(app, deps);
    expect((await get('/users', admin.token)).status).toBe(200);
    expect((await patch(admin.user.id, demoter.token, { role: 'user' })).status).toBe(200);
    await expectProblem(await get('/users', admin.token), 403);
  });
});

describe('GET /users', () => {
  test('answers items and total, uncacheable, in the public shape', async () => {
    const admin = await loginAsAdmin(app, deps);
    const res = await get('/users', admin.token);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const body = await json<UsersBody>(res);
    expect(body.total).toBeGreaterThanOrEqual(1);
    expect(Object.keys(body.items[0] ?? {}).sort()).toEqual(USER_PUBLIC_FIELDS);
  });

  test('answers 20 users by default', async () => {
    const admin = await loginAsAdmin(app, deps);
    for (let i = 0; i < 20; i++) await registerUser(app);
    const body = await json<UsersBody>(await get('/users', admin.token));
    expect(body.items).toHaveLength(20);
    expect(body.total).toBeGreaterThan(20);
  });

  test('orders users by id', async () => {
    const admin = await loginAsAdmin(app, deps);
    const body = await json<UsersBody>(await get('/users?limit=100', admin.token));
    const ids = body.items.map((user) => user.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  test('filters by an email substring, case-insensitively, and counts only the matches', async () => {
    const admin = await loginAsAdmin(app, deps);
    const tag = `filter${crypto.randomUUID().slice(0, 8)}`;
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push((await registerUser(app, uniqueEmail(tag))).user.id);
    const body = await json<UsersBody>(await get(`/users?email=${tag.toUpperCase()}`, admin.token));
    expect(body.total).toBe(3);
    expect(body.items.map((user) => user.id)).toEqual(mine);
  });

  test('matches LIKE wildcards in the filter literally', async () => {
    const admin = await loginAsAdmin(app, deps);
    const tag = `wild${crypto.randomUUID().slice(0, 8)}`;
    await registerUser(app, uniqueEmail(tag));
    const body = await json<UsersBody>(await get(`/users?email=${tag.slice(0, 4)}%25${tag.slice(6)}`, admin.token));
    expect(body.total).toBe(0);
  });

  test('pages with limit and offset, keeping the total of all matches', async () => {
    const admin = await loginAsAdmin(app, deps);
    const tag = `page${crypto.randomUUID().slice(0, 8)}`;
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push((await registerUser(app, uniqueEmail(tag))).user.id);
    const body = await json<UsersBody>(await get(`/users?email=${tag}&limit=2&offset=1`, admin.token));
    expect(body.total).toBe(3);
    expect(body.items.map((user) => user.id)).toEqual(mine.slice(1));
  });

  test('accepts limit=100', async () => {
    const admin = await loginAsAdmin(app, deps);
    expect((await get('/users?limit=100', admin.token)).status).toBe(200);
  });

  test('rejects limit=101 with 422 at #/limit', async () => {
    const admin = await loginAsAdmin(app, deps);
    const problem = await expectProblem(await get('/users?limit=101', admin.token), 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/limit');
  });

  test('rejects limit=0 and a negative offset with 422', async () => {
    const admin = await loginAsAdmin(app, deps);
    await expectProblem(await get('/users?limit=0', admin.token), 422);
    await expectProblem(await get('/users?offset=-1', admin.token), 422);
  });
});

describe('GET /users/{id}', () => {
  test('answers the user in the public shape', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user, email } = await registerUser(app);
    const res = await get(`/users/${user.id}`, admin.token);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(await json(res)).toMatchObject({ id: user.id, email, role: 'user', disabled: false });
  });

  test('answers 404 problem+json for an unknown id', async () => {
    const admin = await loginAsAdmin(app, deps);
    const problem = await expectProblem(await get(`/users/${2 ** 31 - 1}`, admin.token), 404);
    expect(problem.type).toBe('/problems/not-found');
  });

  test('answers 422 at #/id for an id that is not a number', async () => {
    const admin = await loginAsAdmin(app, deps);
    const problem = await expectProblem(await get('/users/abc', admin.token), 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/id');
  });
});

describe('PATCH /users/{id}', () => {
  test('changes the role and answers the updated user', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    const res = await patch(user.id, admin.token, { role: 'admin' });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(await json(res)).toMatchObject({ id: user.id, role: 'admin', disabled: false });
  });

  test('a promoted user can use admin routes with the token they already hold', async () => {
    const admin = await loginAsAdmin(app, deps);
    const promoted = await loginAs(app);
    await expectProblem(await get('/users', promoted.token), 403);
    expect((await patch(promoted.user.id, admin.token, { role: 'admin' })).status).toBe(200);
    expect((await get('/users', promoted.token)).status).toBe(200);
  });

  test('rejects an unknown role with 422 at #/role', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    const problem = await expectProblem(await patch(user.id, admin.token, { role: 'superuser' }), 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/role');
  });

  test('answers 404 for an unknown id', async () => {
    const admin = await loginAsAdmin(app, deps);
    await expectProblem(await patch(2 ** 31 - 1, admin.token, { disabled: true }), 404);
  });

  test('disabling answers the user with disabled true', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    const res = await patch(user.id, admin.token, { disabled: true });
    expect(res.status).toBe(200);
    expect((await json(res)).disabled).toBe(true);
  });

  test("disabling stops the user's existing access tokens at once", async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    expect((await me(target.token)).status).toBe(200);
    expect((await patch(target.user.id, admin.token, { disabled: true })).status).toBe(200);
    await expectUnauthorized(await me(target.token));
  });

  test('a disabled user cannot log in', async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    await patch(target.user.id, admin.token, { disabled: true });
    await expectProblem(await login(app, target.email, TEST_PASSWORD), 401, 'invalid-credentials');
  });

  test('a disabled user cannot refresh', async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    await patch(target.user.id, admin.token, { disabled: true });
    await expectProblem(await refresh(app, target.refreshToken), 401);
  });

  test('re-enabling lets the user log in again', async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    await patch(target.user.id, admin.token, { disabled: true });
    const res = await patch(target.user.id, admin.token, { disabled: false });
    expect(res.status).toBe(200);
    expect((await json(res)).disabled).toBe(false);
    const relogin = await login(app, target.email, TEST_PASSWORD);
    expect(relogin.status).toBe(200);
    const { access_token } = await json<{ access_token: string }>(relogin);
    expect((await me(access_token)).status).toBe(200);
  });
});

describe('DELETE /users/{id}', () => {
  test('answers 204 and the user is gone', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    expect((await remove(user.id, admin.token)).status).toBe(204);
    await expectProblem(await get(`/users/${user.id}`, admin.token), 404);
  });

  test("stops the user's access tokens at once", async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    expect((await me(target.token)).status).toBe(200);
    expect((await remove(target.user.id, admin.token)).status).toBe(204);
    await expectUnauthorized(await me(target.token));
  });

  test("stops the user's refresh tokens", async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    expect((await remove(target.user.id, admin.token)).status).toBe(204);
    await expectProblem(await refresh(app, target.refreshToken), 401);
  });

  test('a deleted user cannot log in, and the email can be registered again', async () => {
    const admin = await loginAsAdmin(app, deps);
    const target = await loginAs(app);
    await remove(target.user.id, admin.token);
    await expectProblem(await login(app, target.email, TEST_PASSWORD), 401);
    expect((await postJson(app, '/register', { email: target.email, password: TEST_PASSWORD })).status).toBe(201);
  });

  test('answers 404 for an unknown id', async () => {
    const admin = await loginAsAdmin(app, deps);
    const problem = await expectProblem(await remove(2 ** 31 - 1, admin.token), 404);
    expect(problem.type).toBe('/problems/not-found');
  });

  test('answers 404 for a user already deleted', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    expect((await remove(user.id, admin.token)).status).toBe(204);
    await expectProblem(await remove(user.id, admin.token), 404);
  });
});

describe('last-admin guard', () => {
  test('demoting the only enabled admin answers 409 /problems/last-admin and keeps the role', async () => {
    const admin = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([admin.user.id], async () => {
      const problem = await expectProblem(await patch(admin.user.id, admin.token, { role: 'user' }), 409);
      expect(problem.type).toBe('/problems/last-admin');
      expect((await json(await me(admin.token))).role).toBe('admin');
    });
  });

  test('disabling the only enabled admin answers 409 and they keep working', async () => {
    const admin = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([admin.user.id], async () => {
      const problem = await expectProblem(await patch(admin.user.id, admin.token, { disabled: true }), 409);
      expect(problem.type).toBe('/problems/last-admin');
      expect((await me(admin.token)).status).toBe(200);
    });
  });

  test('deleting the only enabled admin answers 409 and they keep working', async () => {
    const admin = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([admin.user.id], async () => {
      const problem = await expectProblem(await remove(admin.user.id, admin.token), 409);
      expect(problem.type).toBe('/problems/last-admin');
      expect((await me(admin.token)).status).toBe(200);
    });
  });

  test('with a second enabled admin, an admin can be demoted (the control)', async () => {
    const a = await loginAsAdmin(app, deps);
    const b = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([a.user.id, b.user.id], async () => {
      const res = await patch(a.user.id, a.token, { role: 'user' });
      expect(res.status).toBe(200);
      expect((await json(res)).role).toBe('user');
    });
  });

  test('with a second enabled admin, an admin can be disabled and deleted (the control)', async () => {
    const a = await loginAsAdmin(app, deps);
    const b = await loginAsAdmin(app, deps);
    const c = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([a.user.id, b.user.id, c.user.id], async () => {
      expect((await patch(b.user.id, a.token, { disabled: true })).status).toBe(200);
      expect((await remove(c.user.id, a.token)).status).toBe(204);
    });
  });

  test('a disabled admin does not count: the remaining enabled admin cannot be demoted', async () => {
    const a = await loginAsAdmin(app, deps);
    const b = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([a.user.id, b.user.id], async () => {
      expect((await patch(b.user.id, a.token, { disabled: true })).status).toBe(200);
      const problem = await expectProblem(await patch(a.user.id, a.token, { role: 'user' }), 409);
      expect(problem.type).toBe('/problems/last-admin');
    });
  });

  test('after the other admin is demoted, the remaining one cannot be deleted', async () => {
    const a = await loginAsAdmin(app, deps);
    const b = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([a.user.id, b.user.id], async () => {
      expect((await patch(b.user.id, a.token, { role: 'user' })).status).toBe(200);
      await expectProblem(await remove(a.user.id, a.token), 409);
    });
  });

  test('a change that keeps the only admin an enabled admin is allowed', async () => {
    const admin = await loginAsAdmin(app, deps);
    await withOnlyEnabledAdmins([admin.user.id], async () => {
      const res = await patch(admin.user.id, admin.token, { role: 'admin', disabled: false });
      expect(res.status).toBe(200);
    });
  });

  test('the only enabled admin can still demote, disable and delete plain users', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { user } = await registerUser(app);
    await withOnlyEnabledAdmins([admin.user.id], async () => {
      expect((await patch(user.id, admin.token, { disabled: true })).status).toBe(200);
      expect((await remove(user.id, admin.token)).status).toBe(204);
    });
  });
});
