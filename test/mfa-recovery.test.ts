/**
 * Recovery codes (API.md "Second factor"): ten, shown once, each logs in once instead of a TOTP code; using
 * one is audited and mailed (through the outbox, to a real SMTP server on loopback); a new set voids the old.
 * And disabling TOTP, which takes the codes with it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { auditEvents, recoveryCodes } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  createTestClock,
  decodeJwt,
  expectProblem,
  json,
  login,
  postJson,
  TEST_PASSWORD,
  type TestApp,
  type TokenBody,
} from './helpers';
import { createMailTestApp, stopMailSenders } from './support/mail';
import { codeAt, loginWithOtp, mfaOtp, mfaTokenOf, totpUser } from './support/mfa';
import { type SmtpSink, startSmtpSink } from './support/smtp-sink';

// The mail tests wait for real mail over SMTP.
setDefaultTimeout(30_000);

const STEP_MS = 30_000;

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterEach(stopMailSenders);
afterAll(() => sink.close());

async function clockedApp() {
  const clock = createTestClock();
  const { app, deps } = await createTestApp({ clock, inProcess: true });
  return { app, deps, clock };
}

const summaryOf = async (app: TestApp, token: string) =>
  json<{ totp: { enabled: boolean }; recovery_codes_left: number }>(
    await app.request('/users/me/mfa', { headers: bearer(token) }),
  );

function del(app: TestApp, path: string, body: unknown, token: string) {
  return app.request(path, {
    method: 'DELETE',
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    body: JSON.stringify(body),
  });
}

describe('recovery codes', () => {
  test('one logs in once, amr pwd+otp; it is audited and mailed, and one fewer is left', async () => {
    const clock = createTestClock();
    const { app, deps } = await createMailTestApp({ sink, clock });
    const user = await totpUser(app, () => clock.now());
    const [code] = user.recoveryCodes as [string];

    const res = await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: code });
    expect(res.status).toBe(200);
    const { access_token } = await json<TokenBody>(res);
    expect(decodeJwt(access_token).payload.amr).toEqual(['pwd', 'otp']);
    expect((await summaryOf(app, access_token)).recovery_codes_left).toBe(9);

    await expectProblem(
      await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: code }),
      401,
      'invalid-otp',
    );

    const mail = await sink.waitFor((m) => m.to === user.email && m.subject.includes('recovery code'));
    expect(mail.text).toContain('9 of them are left');
    expect(mail.text).not.toContain(code);
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    const used = events.filter((e) => e.event === 'recovery_code_used');
    expect(used).toHaveLength(1);
    expect(used[0]?.details).toEqual({ left: 9 });
  });

  test('are stored only as keyed hashes', async () => {
    const { app, deps, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const rows = await deps.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, user.id));
    expect(rows).toHaveLength(10);
    const stored = rows.map((r) => r.codeHash).join(' ');
    for (const code of user.recoveryCodes) {
      expect(stored).not.toContain(code);
      expect(stored).not.toContain(code.replace('-', ''));
    }
  });

  test('are typed as people type them: any case, with or without the hyphen', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const code = (user.recoveryCodes[1] as string).toUpperCase().replace('-', '');
    expect((await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: code })).status).toBe(200);
  });

  test('a recovery code in the otp field, or a TOTP code as recovery_code, is a wrong code', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const mfaToken = await mfaTokenOf(app, user.email);
    await expectProblem(await mfaOtp(app, mfaToken, { otp: user.recoveryCodes[0] as string }), 401, 'invalid-otp');
    await expectProblem(
      await mfaOtp(app, mfaToken, { recovery_code: codeAt(user.secret, clock.now()) }),
      401,
      'invalid-otp',
    );
  });

  test("one user's recovery code does not open another's account", async () => {
    const { app, clock } = await clockedApp();
    const victim = await totpUser(app, () => clock.now());
    const attacker = await totpUser(app, () => clock.now());
    const res = await mfaOtp(app, await mfaTokenOf(app, victim.email), {
      recovery_code: attacker.recoveryCodes[0] as string,
    });
    await expectProblem(res, 401, 'invalid-otp');
  });

  test('a new set voids the old one; it needs a login with the second factor, the password and a code', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, clock.now());
    clock.advance(STEP_MS);
    const body = { current_password: TEST_PASSWORD, code: codeAt(user.secret, clock.now()) };

    // The enrolling session's token carries no second factor: step-up first.
    const refused = await postJson(app, '/users/me/mfa/recovery-codes', body, bearer(user.token));
    await expectProblem(refused, 401, 'insufficient-user-authentication');
    await expectProblem(
      await postJson(
        app,
        '/users/me/mfa/recovery-codes',
        { ...body, current_password: 'wrong password' },
        bearer(token),
      ),
      400,
      'wrong-password',
    );
    const res = await postJson(app, '/users/me/mfa/recovery-codes', body, bearer(token));
    expect(res.status).toBe(200);
    const fresh = (await json<{ recovery_codes: string[] }>(res)).recovery_codes;
    expect(fresh).toHaveLength(10);
    expect(fresh.filter((code) => user.recoveryCodes.includes(code))).toEqual([]);

    const old = await mfaOtp(app, await mfaTokenOf(app, user.email), {
      recovery_code: user.recoveryCodes[0] as string,
    });
    await expectProblem(old, 401, 'invalid-otp');
    expect((await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: fresh[0] as string })).status).toBe(
      200,
    );
  });

  test('a wrong code is a 400, and its set stays', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, clock.now());
    const wrong = { current_password: TEST_PASSWORD, code: codeAt(user.secret, clock.now(), 5) };
    await expectProblem(await postJson(app, '/users/me/mfa/recovery-codes', wrong, bearer(token)), 400, 'wrong-code');
    expect((await summaryOf(app, token)).recovery_codes_left).toBe(10);
  });
});

describe('disabling TOTP', () => {
  test('with the password and a code: 204, the recovery codes go, the password alone logs in again', async () => {
    const { app, deps, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, clock.now());
    clock.advance(STEP_MS);
    const res = await del(
      app,
      '/users/me/mfa/totp',
      { current_password: TEST_PASSWORD, code: codeAt(user.secret, clock.now()) },
      token,
    );
    expect(res.status).toBe(204);
    expect(await summaryOf(app, token)).toMatchObject({ totp: { enabled: false }, recovery_codes_left: 0 });
    expect(await deps.db.select().from(recoveryCodes).where(eq(recoveryCodes.userId, user.id))).toEqual([]);
    expect((await login(app, user.email, TEST_PASSWORD)).status).toBe(200);
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.map((e) => e.event)).toContain('totp_disabled');
  });

  test('the owner is mailed that it was turned off', async () => {
    const clock = createTestClock();
    const { app } = await createMailTestApp({ sink, clock });
    const user = await totpUser(app, () => clock.now());
    const logged = await mfaOtp(app, await mfaTokenOf(app, user.email), {
      recovery_code: user.recoveryCodes[0] as string,
    });
    const { access_token } = await json<TokenBody>(logged);
    const proof = { current_password: TEST_PASSWORD, code: user.recoveryCodes[1] as string };
    expect((await del(app, '/users/me/mfa/totp', proof, access_token)).status).toBe(204);
    const notice = await sink.waitFor((m) => m.to === user.email && m.subject.includes('second factor'));
    expect(notice.text).toContain('turned off');
  });

  test('with a recovery code when the phone is lost', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const logged = await mfaOtp(app, await mfaTokenOf(app, user.email), {
      recovery_code: user.recoveryCodes[0] as string,
    });
    const { access_token } = await json<TokenBody>(logged);
    const proof = { current_password: TEST_PASSWORD, code: user.recoveryCodes[1] as string };
    expect((await del(app, '/users/me/mfa/totp', proof, access_token)).status).toBe(204);
  });

  test('refused: a wrong code (400), a wrong password (400), a token without the second factor (401)', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, clock.now());
    clock.advance(STEP_MS);
    const code = codeAt(user.secret, clock.now());
    await expectProblem(
      await del(
        app,
        '/users/me/mfa/totp',
        { current_password: TEST_PASSWORD, code: codeAt(user.secret, clock.now(), 5) },
        token,
      ),
      400,
      'wrong-code',
    );
    await expectProblem(
      await del(app, '/users/me/mfa/totp', { current_password: 'not the password', code }, token),
      400,
      'wrong-password',
    );
    const stepUp = await del(app, '/users/me/mfa/totp', { current_password: TEST_PASSWORD, code }, user.token);
    await expectProblem(stepUp, 401, 'insufficient-user-authentication');
    expect(stepUp.headers.get('WWW-Authenticate')).toBe('Bearer error="insufficient_user_authentication"');
    expect((await summaryOf(app, token)).totp.enabled).toBe(true);
  });
});
