import { describe, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  login,
  loginAs,
  loginAsAdmin,
  loginSession,
  postJson,
  refresh,
  registerUser,
  TEST_PASSWORD,
  type TestApp,
  uniqueEmail,
} from './helpers';

const { app, deps } = await createTestApp();
const admin = await loginAsAdmin(app, deps);

interface AuditEventBody {
  id: number;
  created_at: string;
  event: string;
  user_id: number | null;
  actor_id: number | null;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}
interface AuditPage {
  items: AuditEventBody[];
  total: number;
}

async function auditPage(query: string, on: TestApp = app, token = admin.token): Promise<AuditPage> {
  const res = await on.request(`/audit${query}`, { headers: bearer(token) });
  expect(res.status).toBe(200);
  expect(res.headers.get('Content-Type')).toStartWith('application/json');
  return json<AuditPage>(res);
}

/** The user's events, newest first (a test user has far fewer than 100). */
const eventsOf = async (userId: number) => (await auditPage(`?user_id=${userId}&limit=100`)).items;

async function latestEvent(userId: number, event: string): Promise<AuditEventBody> {
  const found = (await eventsOf(userId)).find((item) => item.event === event);
  if (!found) throw new Error(`no ${event} event for user ${userId}`);
  return found;
}

const withAgent = (userAgent: string) => ({ 'User-Agent': userAgent });
const logout = (token: string) => app.request('/logout', { method: 'POST', headers: bearer(token) });
const patchUser = (id: number, body: unknown) =>
  app.request(`/users/${id}`, {
    method: 'PATCH',
    headers: { ...bearer(admin.token), 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });

/** A rejected statement's whole message chain (drizzle wraps the driver's error as `cause`). */
async function rejection(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    const messages: string[] = [];
    for (let e: unknown = error; e instanceof Error; e = e.cause) messages.push(e.message);
    return messages.join(' <- ');
  }
  throw new Error('the statement was not rejected');
}

describe('GET /audit', () => {
  test('answers items and total in the public shape, uncacheable', async () => {
    const { user } = await registerUser(app);
    const res = await app.request(`/audit?user_id=${user.id}`, { headers: bearer(admin.token) });
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const page = await json<AuditPage>(res);
    expect(page.total).toBe(1);
    expect(Object.keys(page.items[0] ?? {}).sort()).toEqual([
      'actor_id',
      'created_at',
      'details',
      'event',
      'id',
      'ip',
      'user_agent',
      'user_id',
    ]);
    const createdAt = page.items[0]?.created_at ?? '';
    expect(new Date(createdAt).toISOString()).toBe(createdAt);
  });

  test('lists newest first', async () => {
    const { user, email } = await loginAs(app);
    await login(app, email, 'a wrong password');
    await loginSession(app, email);
    const ids = (await eventsOf(user.id)).map((item) => item.id);
    expect(ids.length).toBeGreaterThanOrEqual(3);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect((await eventsOf(user.id)).at(-1)?.event).toBe('register');
  });

  test("filters by user_id: only that user's events", async () => {
    const { user } = await loginAs(app);
    await loginAs(app);
    const items = await eventsOf(user.id);
    expect(items.length).toBeGreaterThanOrEqual(2);
    expect(items.every((item) => item.user_id === user.id)).toBe(true);
  });

  test('pages with limit and offset, keeping the total', async () => {
    const { user, email } = await loginAs(app);
    await loginSession(app, email);
    const all = await eventsOf(user.id);
    expect(all).toHaveLength(3); // register, login_succeeded twice
    const page = await auditPage(`?user_id=${user.id}&limit=1&offset=1`);
    expect(page.total).toBe(3);
    expect(page.items.map((item) => item.id)).toEqual([all[1]?.id ?? -1]);
  });

  test('rejects limit=101 with 422 at #/limit', async () => {
    const res = await app.request('/audit?limit=101', { headers: bearer(admin.token) });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/limit');
  });

  test('answers 403 for a plain user', async () => {
    const { token } = await loginAs(app);
    const problem = await expectProblem(await app.request('/audit', { headers: bearer(token) }), 403);
    expect(problem.type).toBe('/problems/forbidden');
  });
});

describe('audit events', () => {
  test('register, with the role and the user agent of the request', async () => {
    const email = uniqueEmail();
    const res = await postJson(app, '/register', { email, password: TEST_PASSWORD }, withAgent('audit-test/register'));
    const { id } = await json(res);
    const event = await latestEvent(id, 'register');
    expect(event).toMatchObject({ user_id: id, user_agent: 'audit-test/register' });
    expect(event.details.role).toBe('user');
  });

  test('login_succeeded, with the user agent of the login', async () => {
    const { user, email } = await registerUser(app);
    await loginSession(app, email, TEST_PASSWORD, withAgent('audit-test/login'));
    const event = await latestEvent(user.id, 'login_succeeded');
    expect(event).toMatchObject({ user_id: user.id, user_agent: 'audit-test/login' });
  });

  test('records the client address the runtime reports', async () => {
    const own = await createTestApp({ remoteAddress: () => '198.51.100.23' });
    const { user } = await loginAs(own.app);
    const event = (await auditPage(`?user_id=${user.id}`, own.app)).items.find(
      (item) => item.event === 'login_succeeded',
    );
    expect(event?.ip).toBe('198.51.100.23');
  });

  test('login_failed for a wrong password of a known email, naming the email', async () => {
    const { user, email } = await registerUser(app);
    expect((await login(app, email, 'not the password')).status).toBe(401);
    const event = await latestEvent(user.id, 'login_failed');
    expect(event.details.email).toBe(email);
  });

  test('login_failed for an unknown email, naming the email and no user', async () => {
    const email = uniqueEmail('nobody');
    expect((await login(app, email, 'not the password')).status).toBe(401);
    const recent = (await auditPage('?limit=100')).items;
    const event = recent.find((item) => item.event === 'login_failed' && item.details.email === email);
    expect(event?.user_id).toBeNull();
  });

  test('never records the attempted password', async () => {
    const { user, email } = await registerUser(app);
    const attempted = `secret-${crypto.randomUUID()}`;
    await login(app, email, attempted);
    expect(JSON.stringify(await eventsOf(user.id))).not.toContain(attempted);
  });

  test('token_refreshed, naming the session', async () => {
    const { user, refreshToken } = await loginAs(app);
    expect((await refresh(app, refreshToken)).status).toBe(200);
    const event = await latestEvent(user.id, 'token_refreshed');
    expect(event.details.session_id).toBeString();
  });

  // Past REFRESH_REUSE_GRACE_SECONDS (within it, a retry is answered 401 without revoking): so on this app's clock.
  test('refresh_reuse_detected when a spent refresh token comes back', async () => {
    const own = await createTestApp({ inProcess: true });
    const { user, refreshToken } = await loginAs(own.app);
    await refresh(own.app, refreshToken);
    own.clock.advance(own.deps.config.REFRESH_REUSE_GRACE_SECONDS * 1000);
    expect((await refresh(own.app, refreshToken)).status).toBe(400);
    const event = await latestEvent(user.id, 'refresh_reuse_detected');
    expect(event.details.session_id).toBe((await latestEvent(user.id, 'token_refreshed')).details.session_id);
  });

  test('no refresh_reuse_detected for a normal rotation (the control)', async () => {
    const { user, refreshToken } = await loginAs(app);
    await refresh(app, refreshToken);
    const events = (await eventsOf(user.id)).map((item) => item.event);
    expect(events).toContain('token_refreshed');
    expect(events).not.toContain('refresh_reuse_detected');
  });

  test('logout, with the user as the actor', async () => {
    const { user, token } = await loginAs(app);
    expect((await logout(token)).status).toBe(204);
    expect(await latestEvent(user.id, 'logout')).toMatchObject({ user_id: user.id, actor_id: user.id });
  });

  test('session_revoked, naming the session', async () => {
    const { user, email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    const sessions = await json<{ id: string; current: boolean }[]>(
      await app.request('/users/me/sessions', { headers: bearer(other.token) }),
    );
    const id = sessions.find((session) => session.current)?.id ?? '';
    const res = await app.request(`/users/me/sessions/${id}`, { method: 'DELETE', headers: bearer(token) });
    expect(res.status).toBe(204);
    const event = await latestEvent(user.id, 'session_revoked');
    expect(event).toMatchObject({ actor_id: user.id, details: { session_id: id } });
  });

  test('password_changed', async () => {
    const { user, token } = await loginAs(app);
    const res = await app.request('/users/me/password', {
      method: 'PUT',
      headers: { ...bearer(token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ current_password: TEST_PASSWORD, new_password: 'another good passphrase' }),
    });
    expect(res.status).toBe(204);
    expect(await latestEvent(user.id, 'password_changed')).toMatchObject({ user_id: user.id, actor_id: user.id });
  });

  test('role_changed, with the admin as the actor and both roles', async () => {
    const { user } = await registerUser(app);
    expect((await patchUser(user.id, { role: 'admin' })).status).toBe(200);
    const event = await latestEvent(user.id, 'role_changed');
    expect(event).toMatchObject({ actor_id: admin.user.id, details: { from: 'user', to: 'admin' } });
  });

  test('user_disabled and user_enabled, with the admin as the actor', async () => {
    const { user } = await registerUser(app);
    expect((await patchUser(user.id, { disabled: true })).status).toBe(200);
    expect((await patchUser(user.id, { disabled: false })).status).toBe(200);
    const [enabled, disabled] = await eventsOf(user.id);
    expect(disabled).toMatchObject({ event: 'user_disabled', user_id: user.id, actor_id: admin.user.id });
    expect(enabled).toMatchObject({ event: 'user_enabled', user_id: user.id, actor_id: admin.user.id });
  });

  test('a PATCH that changes nothing records no event', async () => {
    const { user } = await registerUser(app);
    expect((await patchUser(user.id, { role: 'user', disabled: false })).status).toBe(200);
    expect((await eventsOf(user.id)).map((item) => item.event)).toEqual(['register']);
  });

  test('user_deleted, with the admin as the actor; the history outlives the user', async () => {
    const { user, email } = await registerUser(app);
    const res = await app.request(`/users/${user.id}`, { method: 'DELETE', headers: bearer(admin.token) });
    expect(res.status).toBe(204);
    const events = await eventsOf(user.id);
    expect(events[0]).toMatchObject({ event: 'user_deleted', actor_id: admin.user.id, details: { email } });
    expect(events.at(-1)?.event).toBe('register');
  });
});

describe('the audit table is append-only', () => {
  test('a no-op UPDATE of no rows goes through (the control: the statement itself is valid)', async () => {
    await deps.db.execute(sql`update audit_events set details = '{}'::jsonb where false`);
  });

  test('rejects an UPDATE of an event', async () => {
    const { user } = await registerUser(app);
    const message = await rejection(() =>
      deps.db.execute(sql`update audit_events set event = 'logout' where user_id = ${user.id}`),
    );
    expect(message).toContain('append-only');
    expect((await eventsOf(user.id)).map((item) => item.event)).toEqual(['register']);
  });

  test('rejects a DELETE of an event', async () => {
    const { user } = await registerUser(app);
    const message = await rejection(() => deps.db.execute(sql`delete from audit_events where user_id = ${user.id}`));
    expect(message).toContain('append-only');
    expect(await eventsOf(user.id)).toHaveLength(1);
  });

  test('rejects a TRUNCATE', async () => {
    const before = (await auditPage('?limit=1')).total;
    // In a transaction that never commits, so a missing trigger could not wipe the log other tests read.
    const message = await rejection(() =>
      deps.db.transaction(async (tx) => {
        await tx.execute(sql`truncate audit_events`);
        throw new Error('TRUNCATE went through (rolled back)');
      }),
    );
    expect(message).toContain('append-only');
    expect((await auditPage('?limit=1')).total).toBe(before);
  });
});
