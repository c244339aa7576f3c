import { describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { auditEvents, sessions } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  expectProblem,
  expectUnauthorized,
  expectUnauthorizedSoon,
  json,
  login,
  loginAs,
  loginSession,
  refresh,
  TEST_PASSWORD,
  type TestApp,
  type TokenBody,
} from './helpers';

const { app, deps } = await createTestApp();
const DAY_MS = 24 * 60 * 60 * 1000;
const REFRESH_TOKEN_DAYS = 14; // REFRESH_TOKEN_EXPIRE_DAYS default
const NEW_PASSWORD = 'an entirely new passphrase';
const GRACE_MS = deps.config.REFRESH_REUSE_GRACE_SECONDS * 1000;

interface SessionBody {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

const me = (token: string, on: TestApp = app) => on.request('/users/me', { headers: bearer(token) });

async function expectAccepted(token: string, on: TestApp = app) {
  const res = await me(token, on);
  expect(res.status).toBe(200);
}

async function expectRefreshed(refreshToken: string, on: TestApp = app): Promise<TokenBody> {
  const res = await refresh(on, refreshToken);
  expect(res.status).toBe(200);
  return json<TokenBody>(res);
}

/** RFC 6749 §5.2: a refresh token that is not good is a 400 invalid_grant (the problem carries the `error`). */
async function expectRefreshRefused(refreshToken: string, on: TestApp = app) {
  const problem = await expectProblem(await refresh(on, refreshToken), 400, 'invalid-refresh-token');
  expect((problem as { error?: string }).error).toBe('invalid_grant');
}

async function listSessions(token: string): Promise<SessionBody[]> {
  const res = await app.request('/users/me/sessions', { headers: bearer(token) });
  expect(res.status).toBe(200);
  expect(res.headers.get('Content-Type')).toStartWith('application/json');
  return json<SessionBody[]>(res);
}

async function currentSessionId(token: string): Promise<string> {
  const current = (await listSessions(token)).find((session) => session.current);
  if (!current) throw new Error('no current session listed');
  return current.id;
}

const logout = (token: string, query = '') =>
  app.request(`/logout${query}`, { method: 'POST', headers: bearer(token) });

const changePassword = (token: string, body: unknown) =>
  app.request('/users/me/password', {
    method: 'PUT',
    headers: { ...bearer(token), 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });

const deleteSession = (token: string, id: string) =>
  app.request(`/users/me/sessions/${id}`, { method: 'DELETE', headers: bearer(token) });

describe('refresh grant', () => {
  test('a password login answers a refresh token next to the access token', async () => {
    const { email } = await loginAs(app);
    const body = await json<TokenBody>(await login(app, email, TEST_PASSWORD));
    expect(body.refresh_token).toBeString();
    expect(body.refresh_token).not.toBe(body.access_token);
  });

  test('exchanges a refresh token for a new, uncacheable pair whose access token works', async () => {
    const { refreshToken } = await loginAs(app);
    const res = await refresh(app, refreshToken);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const pair = await json<TokenBody>(res);
    expect(pair.token_type).toBe('bearer');
    expect(pair.refresh_token).not.toBe(refreshToken);
    await expectAccepted(pair.access_token);
  });

  test('the rotated refresh token can itself be exchanged', async () => {
    const { refreshToken } = await loginAs(app);
    const second = await expectRefreshed(refreshToken);
    const third = await expectRefreshed(second.refresh_token);
    await expectAccepted(third.access_token);
  });

  test('keeps the session: the new access token belongs to the same single session', async () => {
    const { token, refreshToken } = await loginAs(app);
    const before = await currentSessionId(token);
    const pair = await expectRefreshed(refreshToken);
    const after = await listSessions(pair.access_token);
    expect(after.map((session) => session.id)).toEqual([before]);
    expect(after[0]?.current).toBe(true);
  });

  test('refuses a spent refresh token with 400 invalid_grant problem+json', async () => {
    const { refreshToken } = await loginAs(app);
    await expectRefreshed(refreshToken);
    await expectRefreshRefused(refreshToken);
  });

  // Reuse detection fires past REFRESH_REUSE_GRACE_SECONDS (see "refresh races" below for within it): these
  // tests move their own app's clock past the window before the reuse.
  test('reuse of a spent refresh token revokes the refresh token issued in its place', async () => {
    const own = await createTestApp({ inProcess: true });
    const { refreshToken } = await loginAs(own.app);
    const next = await expectRefreshed(refreshToken, own.app);
    own.clock.advance(GRACE_MS);
    await expectRefreshRefused(refreshToken, own.app);
    await expectRefreshRefused(next.refresh_token, own.app);
  });

  test("reuse of a spent refresh token revokes the session's access tokens, old and new", async () => {
    const own = await createTestApp({ inProcess: true });
    const { token, refreshToken } = await loginAs(own.app);
    const next = await expectRefreshed(refreshToken, own.app);
    await expectAccepted(token, own.app);
    await expectAccepted(next.access_token, own.app);
    own.clock.advance(GRACE_MS);
    await expectRefreshRefused(refreshToken, own.app);
    await expectUnauthorized(await me(token, own.app));
    await expectUnauthorized(await me(next.access_token, own.app));
  });

  test("reuse in one session leaves the user's other sessions working", async () => {
    const own = await createTestApp({ inProcess: true });
    const { email, refreshToken } = await loginAs(own.app);
    const other = await loginSession(own.app, email);
    await expectRefreshed(refreshToken, own.app);
    own.clock.advance(GRACE_MS);
    await expectRefreshRefused(refreshToken, own.app);
    await expectAccepted(other.token, own.app);
    await expectRefreshed(other.refreshToken, own.app);
  });

  test('refuses a refresh token with a wrong secret, without spending the real one', async () => {
    const { refreshToken } = await loginAs(app);
    const [id, secret = ''] = refreshToken.split('.');
    const forged = `${id}.${secret.startsWith('A') ? 'B' : 'A'}${secret.slice(1)}`;
    await expectRefreshRefused(forged);
    await expectRefreshed(refreshToken);
  });

  test('refuses an unknown refresh token of the right shape', async () => {
    await expectRefreshRefused(`${crypto.randomUUID()}.${'A'.repeat(43)}`);
  });

  test('refuses a refresh token that is not of our format', async () => {
    await expectRefreshRefused('not-a-refresh-token');
  });

  test('refuses an access token presented as a refresh token', async () => {
    const { token } = await loginAs(app);
    await expectRefreshRefused(token);
  });

  test('answers a refresh grant without refresh_token with 422 at #/refresh_token', async () => {
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token' }),
    });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/refresh_token');
  });

  test('accepts a refresh token until just before its session expires', async () => {
    // The absolute lifetime, with an idle limit as long as it (by default a session idle 7 days ends sooner).
    const own = await createTestApp({ env: { REFRESH_TOKEN_IDLE_DAYS: String(REFRESH_TOKEN_DAYS) } });
    const { refreshToken } = await loginAs(own.app);
    own.clock.advance(REFRESH_TOKEN_DAYS * DAY_MS - 1000);
    await expectRefreshed(refreshToken, own.app);
  });

  test('refuses a refresh token once its session expired', async () => {
    const own = await createTestApp({ inProcess: true });
    const { refreshToken } = await loginAs(own.app);
    own.clock.advance(REFRESH_TOKEN_DAYS * DAY_MS);
    await expectRefreshRefused(refreshToken, own.app);
  });

  test('rejects an access token whose session row no longer exists', async () => {
    const { token } = await loginAs(app);
    const id = await currentSessionId(token);
    await deps.db.delete(sessions).where(eq(sessions.id, id)); // outside the service: heard within the bound
    await expectUnauthorizedSoon(() => me(token));
  });
});

describe('POST /logout', () => {
  test('answers 204 and stops the access token used', async () => {
    const { token } = await loginAs(app);
    const res = await logout(token);
    expect(res.status).toBe(204);
    await expectUnauthorized(await me(token));
  });

  test("revokes the session's refresh token", async () => {
    const { token, refreshToken } = await loginAs(app);
    expect((await logout(token)).status).toBe(204);
    await expectRefreshRefused(refreshToken);
  });

  test('revokes the access tokens of the same session issued before a refresh', async () => {
    const { token, refreshToken } = await loginAs(app);
    const next = await expectRefreshed(refreshToken);
    expect((await logout(next.access_token)).status).toBe(204);
    await expectUnauthorized(await me(token));
  });

  test("leaves the user's other sessions working", async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await logout(token)).status).toBe(204);
    await expectAccepted(other.token);
    await expectRefreshed(other.refreshToken);
  });

  test('with all=false ends only this session', async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await logout(token, '?all=false')).status).toBe(204);
    await expectUnauthorized(await me(token));
    await expectAccepted(other.token);
  });

  test('with all=true stops the access tokens of every session of the caller', async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await logout(token, '?all=true')).status).toBe(204);
    await expectUnauthorized(await me(token));
    await expectUnauthorized(await me(other.token));
  });

  test('with all=true revokes the refresh tokens of every session of the caller', async () => {
    const { email, token, refreshToken } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await logout(token, '?all=true')).status).toBe(204);
    await expectRefreshRefused(refreshToken);
    await expectRefreshRefused(other.refreshToken);
  });

  test('with all=true leaves other users logged in', async () => {
    const { token } = await loginAs(app);
    const someoneElse = await loginAs(app);
    expect((await logout(token, '?all=true')).status).toBe(204);
    await expectAccepted(someoneElse.token);
  });

  test('a second logout with the same token answers 401', async () => {
    const { token } = await loginAs(app);
    expect((await logout(token)).status).toBe(204);
    await expectUnauthorized(await logout(token));
  });

  test('answers 401 with the plain Bearer challenge when no token is sent', async () => {
    await expectUnauthorized(await app.request('/logout', { method: 'POST' }), 'Bearer');
  });
});

describe('PUT /users/me/password', () => {
  test('answers 204 and stops the access token used', async () => {
    const { token } = await loginAs(app);
    const res = await changePassword(token, { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD });
    expect(res.status).toBe(204);
    await expectUnauthorized(await me(token));
  });

  test('stops the refresh token of the session used', async () => {
    const { token, refreshToken } = await loginAs(app);
    await changePassword(token, { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD });
    await expectRefreshRefused(refreshToken);
  });

  test('stops the access and refresh tokens of every other session issued before', async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await changePassword(token, { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD })).status).toBe(
      204,
    );
    await expectUnauthorized(await me(other.token));
    await expectRefreshRefused(other.refreshToken);
  });

  test('the new password logs in and its token works', async () => {
    const { email, token } = await loginAs(app);
    await changePassword(token, { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD });
    const fresh = await loginSession(app, email, NEW_PASSWORD);
    await expectAccepted(fresh.token);
  });

  test('the old password no longer logs in', async () => {
    const { email, token } = await loginAs(app);
    await changePassword(token, { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD });
    await expectProblem(await login(app, email, TEST_PASSWORD), 401, 'invalid-credentials');
  });

  test('rejects a wrong current password with 400 /problems/wrong-password', async () => {
    const { token } = await loginAs(app);
    const res = await changePassword(token, { current_password: 'not the password', new_password: NEW_PASSWORD });
    const problem = await expectProblem(res, 400);
    expect(problem.type).toBe('/problems/wrong-password');
  });

  test('a wrong current password changes nothing: the token and the old password still work', async () => {
    const { email, token } = await loginAs(app);
    await changePassword(token, { current_password: 'not the password', new_password: NEW_PASSWORD });
    await expectAccepted(token);
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
    expect((await login(app, email, NEW_PASSWORD)).status).toBe(401);
  });

  test('rejects a new password of 7 characters with 422 at #/new_password', async () => {
    const { token } = await loginAs(app);
    const res = await changePassword(token, { current_password: TEST_PASSWORD, new_password: '1234567' });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/new_password');
  });

  test('rejects a new password over 72 bytes with 422 at #/new_password that names the limit', async () => {
    const { token } = await loginAs(app);
    const res = await changePassword(token, { current_password: TEST_PASSWORD, new_password: 'é'.repeat(37) });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/new_password');
    expect(problem.errors?.[0]?.detail).toContain('72 bytes');
  });

  test('a rejected new password changes nothing: the token still works', async () => {
    const { token } = await loginAs(app);
    await changePassword(token, { current_password: TEST_PASSWORD, new_password: 'short' });
    await expectAccepted(token);
  });

  test('answers 401 without a token', async () => {
    const res = await app.request('/users/me/password', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ current_password: TEST_PASSWORD, new_password: NEW_PASSWORD }),
    });
    await expectUnauthorized(res, 'Bearer');
  });
});

describe('GET /users/me/sessions', () => {
  test('lists each live session of the caller in the public shape, uncacheable', async () => {
    const { email, token } = await loginAs(app);
    await loginSession(app, email);
    const res = await app.request('/users/me/sessions', { headers: bearer(token) });
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const list = await json<SessionBody[]>(res);
    expect(list).toHaveLength(2);
    for (const session of list) {
      expect(Object.keys(session).sort()).toEqual(['created_at', 'current', 'id', 'ip', 'last_used_at', 'user_agent']);
      expect(new Date(session.created_at).toISOString()).toBe(session.created_at);
      expect(new Date(session.last_used_at).toISOString()).toBe(session.last_used_at);
    }
  });

  test("marks only the caller's own session as current", async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    const fromFirst = await listSessions(token);
    const fromOther = await listSessions(other.token);
    expect(fromFirst.filter((session) => session.current)).toHaveLength(1);
    expect(fromOther.filter((session) => session.current)).toHaveLength(1);
    expect(fromFirst.find((session) => session.current)?.id).not.toBe(fromOther.find((session) => session.current)?.id);
  });

  test('records the User-Agent of the login request', async () => {
    const { email } = await loginAs(app);
    const userAgent = `sessions-test/1.0 (${crypto.randomUUID()})`;
    const { token } = await loginSession(app, email, TEST_PASSWORD, { 'User-Agent': userAgent });
    const current = (await listSessions(token)).find((session) => session.current);
    expect(current?.user_agent).toBe(userAgent);
  });

  test('records the client address the runtime reports', async () => {
    const own = await createTestApp({ remoteAddress: () => '203.0.113.7' });
    const { token } = await loginAs(own.app);
    const res = await own.app.request('/users/me/sessions', { headers: bearer(token) });
    const [session] = await json<SessionBody[]>(res);
    expect(session?.ip).toBe('203.0.113.7');
  });

  test('leaves out a session that was logged out', async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    const otherId = await currentSessionId(other.token);
    expect((await logout(other.token)).status).toBe(204);
    const ids = (await listSessions(token)).map((session) => session.id);
    expect(ids).toHaveLength(1);
    expect(ids).not.toContain(otherId);
  });

  test("never lists another user's sessions", async () => {
    const { token } = await loginAs(app);
    const someoneElse = await loginAs(app);
    const theirId = await currentSessionId(someoneElse.token);
    const ids = (await listSessions(token)).map((session) => session.id);
    expect(ids).toHaveLength(1);
    expect(ids).not.toContain(theirId);
  });

  test('answers 401 without a token', async () => {
    await expectUnauthorized(await app.request('/users/me/sessions'), 'Bearer');
  });
});

describe('DELETE /users/me/sessions/{id}', () => {
  test("answers 204 and stops that session's access token", async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    const res = await deleteSession(token, await currentSessionId(other.token));
    expect(res.status).toBe(204);
    await expectUnauthorized(await me(other.token));
  });

  test("revokes that session's refresh token", async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await deleteSession(token, await currentSessionId(other.token))).status).toBe(204);
    await expectRefreshRefused(other.refreshToken);
  });

  test("leaves the caller's own session working", async () => {
    const { email, token, refreshToken } = await loginAs(app);
    const other = await loginSession(app, email);
    expect((await deleteSession(token, await currentSessionId(other.token))).status).toBe(204);
    await expectAccepted(token);
    await expectRefreshed(refreshToken);
  });

  test('can end the current session itself', async () => {
    const { token } = await loginAs(app);
    expect((await deleteSession(token, await currentSessionId(token))).status).toBe(204);
    await expectUnauthorized(await me(token));
  });

  test("answers 404 for another user's session, which keeps working", async () => {
    const { token } = await loginAs(app);
    const victim = await loginAs(app);
    const problem = await expectProblem(await deleteSession(token, await currentSessionId(victim.token)), 404);
    expect(problem.type).toBe('/problems/not-found');
    await expectAccepted(victim.token);
    await expectRefreshed(victim.refreshToken);
  });

  test('answers 404 for an unknown session id', async () => {
    const { token } = await loginAs(app);
    await expectProblem(await deleteSession(token, crypto.randomUUID()), 404);
  });

  test('answers 404 for a session that already ended', async () => {
    const { email, token } = await loginAs(app);
    const other = await loginSession(app, email);
    const id = await currentSessionId(other.token);
    expect((await deleteSession(token, id)).status).toBe(204);
    await expectProblem(await deleteSession(token, id), 404);
  });

  test('answers 422 at #/id for an id that is not a UUID', async () => {
    const { token } = await loginAs(app);
    const problem = await expectProblem(await deleteSession(token, 'not-a-uuid'), 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/id');
  });

  test('answers 401 without a token', async () => {
    const res = await app.request(`/users/me/sessions/${crypto.randomUUID()}`, { method: 'DELETE' });
    await expectUnauthorized(res, 'Bearer');
  });
});

describe('refresh races', () => {
  test('a retry of a token rotated moments ago answers 401 and leaves the session working', async () => {
    const { refreshToken } = await loginAs(app);
    const next = await expectRefreshed(refreshToken);
    await expectRefreshRefused(refreshToken); // a second tab, or a retry after a lost answer
    await expectAccepted(next.access_token);
    await expectAccepted((await expectRefreshed(next.refresh_token)).access_token);
  });

  test('parallel refreshes of one token give one new pair, and it works', async () => {
    const { refreshToken } = await loginAs(app);
    const answers = await Promise.all(Array.from({ length: 5 }, () => refresh(app, refreshToken)));
    expect(answers.map((res) => res.status).sort()).toEqual([200, 400, 400, 400, 400]);
    const winner = await json<TokenBody>(answers.find((res) => res.status === 200) as Response);
    await expectAccepted(winner.access_token);
    await expectRefreshed(winner.refresh_token);
  });

  test('reuse within the window after the successor was used still revokes the session', async () => {
    const { token, refreshToken } = await loginAs(app);
    const second = await expectRefreshed(refreshToken);
    const third = await expectRefreshed(second.refresh_token);
    await expectRefreshRefused(refreshToken); // its successor was used: a replay, not a retry
    await expectRefreshRefused(third.refresh_token);
    await expectUnauthorized(await me(token));
  });

  test('with REFRESH_REUSE_GRACE_SECONDS=0 any reuse revokes the session at once', async () => {
    const own = await createTestApp({ env: { REFRESH_REUSE_GRACE_SECONDS: '0' } });
    const { refreshToken } = await loginAs(own.app);
    const next = await expectRefreshed(refreshToken, own.app);
    await expectRefreshRefused(refreshToken, own.app);
    await expectRefreshRefused(next.refresh_token, own.app);
  });

  test('a refresh racing a logout is refused, or rotated before the logout: it never hands out tokens of an ended session', async () => {
    for (let trial = 0; trial < 10; trial++) {
      const { user, token, refreshToken } = await loginAs(app);
      const [refreshed] = await Promise.all([refresh(app, refreshToken), logout(token)]);
      const events = await deps.db
        .select({ id: auditEvents.id, event: auditEvents.event })
        .from(auditEvents)
        .where(eq(auditEvents.userId, user.id));
      const idOf = (event: string) => events.find((row) => row.event === event)?.id ?? Number.NaN;
      if (refreshed.status === 200) {
        // The rotation committed first, and the logout then ended its tokens too: in that order in the log.
        expect(idOf('token_refreshed')).toBeLessThan(idOf('logout'));
      } else {
        await expectProblem(refreshed, 400, 'invalid-refresh-token');
        expect(events.some((row) => row.event === 'token_refreshed')).toBe(false);
      }
    }
  });
});

describe('session lifetimes and numbers', () => {
  test('a session unused for REFRESH_TOKEN_IDLE_DAYS can no longer be refreshed, nor is it listed', async () => {
    const own = await createTestApp({ env: { REFRESH_TOKEN_IDLE_DAYS: '7' } });
    const { email, refreshToken } = await loginAs(own.app);
    own.clock.advance(7 * DAY_MS);
    await expectRefreshRefused(refreshToken, own.app);
    const fresh = await loginSession(own.app, email);
    const listed = await json<SessionBody[]>(
      await own.app.request('/users/me/sessions', { headers: bearer(fresh.token) }),
    );
    expect(listed).toHaveLength(1);
  });

  test('each refresh keeps a session from going idle', async () => {
    const own = await createTestApp({ env: { REFRESH_TOKEN_IDLE_DAYS: '7' } });
    let { refreshToken } = await loginAs(own.app);
    for (let week = 0; week < 2; week++) {
      own.clock.advance(6 * DAY_MS);
      refreshToken = (await expectRefreshed(refreshToken, own.app)).refresh_token;
    }
  });

  test('at most MAX_SESSIONS_PER_USER live sessions: a new login ends the least recently used', async () => {
    const own = await createTestApp({ env: { MAX_SESSIONS_PER_USER: '3' } });
    const { email, refreshToken: first } = await loginAs(own.app);
    own.clock.advance(1000);
    const second = await loginSession(own.app, email);
    own.clock.advance(1000);
    const third = await loginSession(own.app, email);
    own.clock.advance(1000);
    const firstAgain = await expectRefreshed(first, own.app); // the first is now more recently used than the second
    own.clock.advance(1000);
    const fourth = await loginSession(own.app, email);
    await expectRefreshRefused(second.refreshToken, own.app);
    await expectUnauthorized(await me(second.token, own.app));
    for (const refreshTokenLeft of [firstAgain.refresh_token, third.refreshToken, fourth.refreshToken]) {
      await expectRefreshed(refreshTokenLeft, own.app);
    }
  });
});
