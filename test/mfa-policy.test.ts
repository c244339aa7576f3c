/**
 * The policy around the second factor (API.md "Second factor"): MFA_REQUIRED_FOR_ADMINS, step-up for
 * sensitive actions (RFC 9470), and the admin's DELETE /users/{id}/mfa for a user who lost every factor.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { parseConfig } from '../src/config';
import { auditEvents, mailOutbox, users } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  createTestClock,
  expectProblem,
  expectUnauthorized,
  json,
  login,
  loginAs,
  loginAsAdmin,
  POSTGRES_ADMIN_URL,
  refresh,
  TEST_PASSWORD,
  TEST_SECRET_KEY,
  type TestApp,
} from './helpers';
import { runCli, SERVER_TEST_TIMEOUT_MS } from './server-process';
import { codeAt, confirm, enrol, loginWithOtp, totpUser } from './support/mfa';

setDefaultTimeout(30_000);

const STEP_MS = 30_000;

async function clockedApp(env: Record<string, string> = {}) {
  const clock = createTestClock();
  const { app, deps } = await createTestApp({ clock, inProcess: true, env });
  return { app, deps, clock, now: () => clock.now() };
}

const send = (app: TestApp, method: string, path: string, token: string, body?: unknown) =>
  app.request(path, {
    method,
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

/** RFC 9470 §3: a 401 whose challenge asks for a stronger login, as problem+json. */
async function expectStepUp(res: Response) {
  await expectProblem(res, 401, 'insufficient-user-authentication');
  expect(res.headers.get('WWW-Authenticate')).toBe('Bearer error="insufficient_user_authentication"');
}

/** An admin (promoted in the database) with TOTP, and both kinds of their tokens. */
async function totpAdmin(
  app: TestApp,
  deps: { db: Parameters<typeof loginAsAdmin>[1]['db'] },
  clock: ReturnType<typeof createTestClock>,
) {
  const admin = await totpUser(app, () => clock.now());
  await deps.db.update(users).set({ role: 'admin' }).where(eq(users.id, admin.id));
  clock.advance(STEP_MS);
  const strong = await loginWithOtp(app, admin, clock.now());
  clock.advance(STEP_MS);
  return { ...admin, weakToken: admin.token, strongToken: strong.token };
}

describe('MFA_REQUIRED_FOR_ADMINS', () => {
  const production = { NODE_ENV: 'production', SECRET_KEY: `${TEST_SECRET_KEY}-Zq8#xP2$` };

  test('is on by default in production, off otherwise, and can be set either way', () => {
    expect(parseConfig(production).config.MFA_REQUIRED_FOR_ADMINS).toBe(true);
    expect(parseConfig({}).config.MFA_REQUIRED_FOR_ADMINS).toBe(false);
    expect(parseConfig({ ...production, MFA_REQUIRED_FOR_ADMINS: 'off' }).config.MFA_REQUIRED_FOR_ADMINS).toBe(false);
    expect(parseConfig({ MFA_REQUIRED_FOR_ADMINS: 'on' }).config.MFA_REQUIRED_FOR_ADMINS).toBe(true);
    expect(() => parseConfig({ MFA_REQUIRED_FOR_ADMINS: 'sometimes' })).toThrow(
      /^invalid configuration: MFA_REQUIRED_FOR_ADMINS must be on or off/,
    );
  });

  test('an admin without a second factor may only enrol, read who they are and log out', async () => {
    const { app, deps, now, clock } = await clockedApp({ MFA_REQUIRED_FOR_ADMINS: 'on' });
    const admin = await loginAsAdmin(app, deps);
    await expectProblem(await send(app, 'GET', '/users', admin.token), 403, 'mfa-enrolment-required');
    await expectProblem(await send(app, 'GET', '/welcome', admin.token), 403, 'mfa-enrolment-required');
    await expectProblem(await send(app, 'GET', '/users/me/sessions', admin.token), 403, 'mfa-enrolment-required');
    expect((await send(app, 'GET', '/users/me', admin.token)).status).toBe(200);
    expect((await send(app, 'GET', '/users/me/mfa', admin.token)).status).toBe(200);

    const { secret } = await json<{ secret: string }>(await enrol(app, admin.token));
    expect((await confirm(app, admin.token, codeAt(secret, now()))).status).toBe(200);
    // The session that enrolled still carries only the password; a login with the code opens the rest.
    await expectProblem(await send(app, 'GET', '/users', admin.token), 403, 'mfa-enrolment-required');
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, { email: admin.email, secret }, now());
    expect((await send(app, 'GET', '/users', token)).status).toBe(200);
    expect((await send(app, 'POST', '/logout', admin.token)).status).toBe(204);
  });

  test('such an admin cannot introspect with their bearer token', async () => {
    const { app, deps } = await clockedApp({ MFA_REQUIRED_FOR_ADMINS: 'on' });
    const admin = await loginAsAdmin(app, deps);
    const res = await app.request('/introspect', {
      method: 'POST',
      headers: bearer(admin.token),
      body: new URLSearchParams({ token: admin.token }),
    });
    await expectProblem(res, 401, 'invalid-client');
  });

  test('users are not concerned, and with the policy off neither are admins', async () => {
    const on = await clockedApp({ MFA_REQUIRED_FOR_ADMINS: 'on' });
    const user = await loginAs(on.app);
    expect((await send(on.app, 'GET', '/users/me/sessions', user.token)).status).toBe(200);
    const off = await clockedApp({ MFA_REQUIRED_FOR_ADMINS: 'off' });
    const admin = await loginAsAdmin(off.app, off.deps);
    expect((await send(off.app, 'GET', '/users', admin.token)).status).toBe(200);
  });
});

describe('step-up', () => {
  test('a password change needs a token that used the second factor, when the user has one', async () => {
    const { app, now, clock } = await clockedApp();
    const user = await totpUser(app, now);
    const body = { current_password: TEST_PASSWORD, new_password: 'a brand new passphrase' };
    await expectStepUp(await send(app, 'PUT', '/users/me/password', user.token, body));
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, now());
    expect((await send(app, 'PUT', '/users/me/password', token, body)).status).toBe(204);
  });

  test('so does an address change', async () => {
    const { app, now, clock } = await clockedApp();
    const user = await totpUser(app, now);
    const body = { new_email: `new-${user.email}`, current_password: TEST_PASSWORD };
    await expectStepUp(await send(app, 'PUT', '/users/me/email', user.token, body));
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, now());
    expect((await send(app, 'PUT', '/users/me/email', token, body)).status).toBe(202);
  });

  test('a user without a second factor changes their password with the password alone', async () => {
    const { app } = await clockedApp();
    const user = await loginAs(app);
    const body = { current_password: TEST_PASSWORD, new_password: 'a brand new passphrase' };
    expect((await send(app, 'PUT', '/users/me/password', user.token, body)).status).toBe(204);
  });

  test("an admin's role, disable and delete changes need it too", async () => {
    const { app, deps, clock } = await clockedApp();
    const admin = await totpAdmin(app, deps, clock);
    const target = await loginAs(app);
    const path = `/users/${target.user.id}`;
    await expectStepUp(await send(app, 'PATCH', path, admin.weakToken, { role: 'admin' }));
    await expectStepUp(await send(app, 'PATCH', path, admin.weakToken, { disabled: true }));
    await expectStepUp(await send(app, 'DELETE', path, admin.weakToken));
    await expectStepUp(await send(app, 'DELETE', `${path}/mfa`, admin.weakToken));
    // Reading needs no step-up.
    expect((await send(app, 'GET', path, admin.weakToken)).status).toBe(200);
    expect((await send(app, 'PATCH', path, admin.strongToken, { disabled: true })).status).toBe(200);
    expect((await send(app, 'DELETE', path, admin.strongToken)).status).toBe(204);
  });
});

describe('DELETE /users/{id}/mfa', () => {
  test('removes every factor, ends every session of the user, and is audited', async () => {
    const { app, deps, clock, now } = await clockedApp();
    const admin = await loginAsAdmin(app, deps);
    const user = await totpUser(app, now);
    clock.advance(STEP_MS);
    const session = await loginWithOtp(app, user, now());

    expect((await send(app, 'DELETE', `/users/${user.id}/mfa`, admin.token)).status).toBe(204);
    await expectUnauthorized(await send(app, 'GET', '/users/me', session.token));
    await expectProblem(await refresh(app, session.refreshToken), 400, 'invalid-refresh-token');
    const again = await login(app, user.email, TEST_PASSWORD);
    expect(again.status).toBe(200);
    const { access_token } = await json<{ access_token: string }>(again);
    expect(await json<unknown>(await send(app, 'GET', '/users/me/mfa', access_token))).toEqual({
      totp: { enabled: false, created_at: null },
      passkeys: [],
      recovery_codes_left: 0,
    });
    const [event] = await deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.userId, user.id), eq(auditEvents.event, 'mfa_reset')));
    expect(event).toMatchObject({ actorId: admin.user.id });
    expect(event?.details).toMatchObject({ sessions_revoked: 2 });
    const mail = await deps.db.select().from(mailOutbox).where(eq(mailOutbox.recipient, user.email));
    expect(mail.map((m) => m.template)).toContain('second-factor-removed');
  });

  test('404 for an unknown user; 403 for a user who is not an admin', async () => {
    const { app, deps } = await clockedApp();
    const admin = await loginAsAdmin(app, deps);
    await expectProblem(await send(app, 'DELETE', '/users/2147483647/mfa', admin.token), 404, 'not-found');
    const user = await loginAs(app);
    await expectProblem(await send(app, 'DELETE', `/users/${admin.user.id}/mfa`, user.token), 403, 'forbidden');
  });
});

describe('the CLI', () => {
  // PostgreSQL, in PGlite runs too: the CLI is another process, and an in-memory PGlite is out of its reach.
  test(
    'reset-mfa removes the second factor of the user with that email and ends their sessions; an unknown email exits 1; prune deletes spent mfa_tokens',
    async () => {
      const database = await scratchDatabase('mfa_cli', { adminUrl: POSTGRES_ADMIN_URL, migrate: 'in-process' });
      const handle = await database.open();
      try {
        const clock = createTestClock();
        const { app } = await createTestApp({ db: handle.db, clock });
        const user = await totpUser(app, () => clock.now());
        clock.advance(STEP_MS);
        const session = await loginWithOtp(app, user, clock.now());

        // The login's mfa_token is spent: prune deletes it.
        const pruned = await runCli(['prune'], database.env);
        expect(pruned.stdout).toContain('deleted 1 spent or expired mfa_tokens');

        const reset = await runCli(['reset-mfa', '--email', user.email], database.env);
        expect(reset.code).toBe(0);
        expect(reset.stdout).toContain(`removed every second factor of ${user.email}; ended 2 sessions`);
        await expectProblem(await refresh(app, session.refreshToken), 400, 'invalid-refresh-token');
        expect((await login(app, user.email, TEST_PASSWORD)).status).toBe(200);

        const unknown = await runCli(['reset-mfa', '--email', `nobody-${user.email}`], database.env);
        expect(unknown.code).toBe(1);
        expect(unknown.stderr).toContain('No such user');
      } finally {
        await handle.close();
        await database.drop();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
