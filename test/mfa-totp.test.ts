/**
 * TOTP (API.md "Second factor"): the RFC 6238 vectors, the ±1 step window, replay, and the login's second
 * step (mfa_token, grant_type=mfa_otp) with its guards: single use, 5 minutes, bound to the client address
 * and to its user, 5 wrong codes, the account lockout. Every test runs in-process on the injected clock.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { auditEvents, totpFactors } from '../src/db/schema';
import { deriveKeyEncryptionKey, seal } from '../src/lib/key-crypto';
import { totpCode } from '../src/lib/totp';
import { TOTP_SECRET_INFO, totpBinding } from '../src/services/mfa';
import {
  bearer,
  createTestApp,
  createTestClock,
  decodeJwt,
  expectProblem,
  json,
  login,
  loginAs,
  refresh,
  TEST_PASSWORD,
  TEST_SECRET_KEY,
  type TokenBody,
} from './helpers';
import { codeAt, confirm, enrol, loginWithOtp, mfaOtp, mfaTokenOf, totpUser } from './support/mfa';

setDefaultTimeout(30_000);

const STEP_MS = 30_000;
const MINUTE_MS = 60_000;
const RFC_SECRET = new TextEncoder().encode('12345678901234567890'); // RFC 6238 Appendix B, SHA-1

// RFC 6238 Appendix B: unix time → the 8-digit SHA-1 code.
const RFC_VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
];

/** An in-process app on its own clock, started `at` (ms since the epoch) or now. */
async function clockedApp(at = Date.now(), env?: Record<string, string>) {
  const clock = createTestClock(at);
  const { app, deps } = await createTestApp({ clock, inProcess: true, ...(env ? { env } : {}) });
  return { app, deps, clock };
}

describe('RFC 6238 test vectors', () => {
  test('the generator gives the 8-digit SHA-1 vectors at the injected clock times, and their last 6 digits', () => {
    for (const [seconds, code] of RFC_VECTORS) {
      const at = createTestClock(seconds * 1000).now();
      expect(totpCode(RFC_SECRET, at, 8)).toBe(code);
      expect(totpCode(RFC_SECRET, at)).toBe(code.slice(-6));
    }
  });

  test('the service accepts the 6-digit vector of the RFC secret at each vector time', async () => {
    for (const [seconds, code] of RFC_VECTORS) {
      const { app, deps, clock } = await clockedApp(seconds * 1000);
      const user = await totpUser(app, () => clock.now());
      // The RFC's secret in place of the enrolment's, sealed as the service seals it.
      const kek = await deriveKeyEncryptionKey(TEST_SECRET_KEY, TOTP_SECRET_INFO);
      const sealed = await seal(kek, totpBinding(user.id), RFC_SECRET);
      await deps.db
        .update(totpFactors)
        .set({ secret: sealed, lastUsedStep: null })
        .where(eq(totpFactors.userId, user.id));
      const res = await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: code.slice(-6) });
      expect(res.status).toBe(200);
    }
  });
});

describe('enrolment', () => {
  test('answers a base32 secret, its otpauth URI and an SVG QR code; pending until confirmed', async () => {
    const { app } = await clockedApp();
    const { email, token } = await loginAs(app);
    const res = await enrol(app, token);
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const body = await json<{ secret: string; otpauth_uri: string; qr_svg: string }>(res);
    expect(body.secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits
    expect(body.otpauth_uri).toStartWith('otpauth://totp/');
    expect(body.otpauth_uri).toContain(`secret=${body.secret}`);
    expect(body.qr_svg).toStartWith('<svg');
    // Pending: the password alone still logs in, and the summary says not enabled.
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
    const summary = await json<{ totp: { enabled: boolean } }>(
      await app.request('/users/me/mfa', { headers: bearer(token) }),
    );
    expect(summary.totp.enabled).toBe(false);
  });

  test('confirming answers ten distinct recovery codes and enables TOTP', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    expect(user.recoveryCodes).toHaveLength(10);
    expect(new Set(user.recoveryCodes).size).toBe(10);
    const summary = await json<{ totp: { enabled: boolean; created_at: string }; recovery_codes_left: number }>(
      await app.request('/users/me/mfa', { headers: bearer(user.token) }),
    );
    expect(summary).toMatchObject({ totp: { enabled: true }, recovery_codes_left: 10, passkeys: [] });
    expect(summary.totp.created_at).toBe(clock.now().toISOString());
  });

  test('the secret is stored sealed, never as base32 or raw bytes', async () => {
    const { app, deps, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const [row] = await deps.db.select().from(totpFactors).where(eq(totpFactors.userId, user.id));
    expect(row?.secret).toStartWith('v1.');
    expect(row?.secret).not.toContain(user.secret);
  });

  test('409 once enabled: no second enrolment, nothing to confirm', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    await expectProblem(await enrol(app, user.token), 409, 'mfa-already-enabled');
    await expectProblem(await confirm(app, user.token, '000000'), 409, 'mfa-not-enabled');
  });

  test('a wrong current password is a 400 and audited like a failed password change', async () => {
    const { app, deps } = await clockedApp();
    const { user, token } = await loginAs(app);
    await expectProblem(await enrol(app, token, 'not the password'), 400, 'wrong-password');
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.map((e) => e.event)).toContain('password_change_failed');
  });

  test('a wrong confirmation code is a 400 and leaves TOTP off', async () => {
    const { app, clock } = await clockedApp();
    const { token } = await loginAs(app);
    const { secret } = await json<{ secret: string }>(await enrol(app, token));
    await expectProblem(await confirm(app, token, codeAt(secret, clock.now(), 5)), 400, 'wrong-code');
    const summary = await json<{ totp: { enabled: boolean } }>(
      await app.request('/users/me/mfa', { headers: bearer(token) }),
    );
    expect(summary.totp.enabled).toBe(false);
  });
});

describe('codes on bearer routes', () => {
  test('a wrong code counts toward the account lockout like a wrong password', async () => {
    const { app, clock } = await clockedApp(Date.now(), { RATE_LIMIT_LOGIN_FAILURES: '2' });
    const { token } = await loginAs(app);
    const { secret } = await json<{ secret: string }>(await enrol(app, token));
    const wrong = codeAt(secret, clock.now(), 5);
    await expectProblem(await confirm(app, token, wrong), 400, 'wrong-code');
    await expectProblem(await confirm(app, token, wrong), 400, 'wrong-code');
    await expectProblem(await confirm(app, token, codeAt(secret, clock.now())), 429, 'rate-limited');
  });
});

describe('login with TOTP', () => {
  test('the password grant answers 403 mfa-required; mfa_otp gives tokens with amr pwd+otp, kept by refresh', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token, refreshToken } = await loginWithOtp(app, user, clock.now());
    expect((await app.request('/users/me', { headers: bearer(token) })).status).toBe(200);

    const refreshed = await refresh(app, refreshToken);
    expect(refreshed.status).toBe(200);
    const pair = await json<TokenBody>(refreshed);
    expect(decodeJwt(pair.access_token).payload.amr).toEqual(['pwd', 'otp']);
  });

  test('introspection shows the amr', async () => {
    const { app, clock } = await clockedApp(Date.now(), {
      INTROSPECTION_CLIENT_ID: 'rs',
      INTROSPECTION_CLIENT_SECRET: 'a-long-enough-client-secret',
    });
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, clock.now());
    const res = await app.request('/introspect', {
      method: 'POST',
      headers: { Authorization: `Basic ${btoa('rs:a-long-enough-client-secret')}` },
      body: new URLSearchParams({ token }),
    });
    expect(await res.json()).toMatchObject({ active: true, amr: ['pwd', 'otp'] });
  });

  test('a user without a second factor still logs in with the password alone, amr pwd', async () => {
    const { app } = await clockedApp();
    const { token } = await loginAs(app);
    expect(decodeJwt(token).payload.amr).toEqual(['pwd']);
  });

  describe('the ±1 step window', () => {
    // Each edge on a user of its own, ten minutes after their confirmation: no earlier step is spent near it.
    for (const [steps, accepted] of [
      [-2, false],
      [-1, true],
      [0, true],
      [1, true],
      [2, false],
    ] as const) {
      test(`a code ${steps} step(s) from now is ${accepted ? 'accepted' : 'refused'}`, async () => {
        const { app, clock } = await clockedApp();
        const user = await totpUser(app, () => clock.now());
        clock.advance(10 * MINUTE_MS);
        const res = await mfaOtp(app, await mfaTokenOf(app, user.email), {
          otp: codeAt(user.secret, clock.now(), steps),
        });
        if (accepted) expect(res.status).toBe(200);
        else await expectProblem(res, 401, 'invalid-otp');
      });
    }
  });

  test('a code is accepted once: its replay within the window is refused, the next step works', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const code = codeAt(user.secret, clock.now());
    expect((await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: code })).status).toBe(200);
    clock.advance(STEP_MS / 2); // the same code is still inside its ±1 window
    await expectProblem(await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: code }), 401, 'invalid-otp');
    // And an older step's code is no better than a replay.
    const older = codeAt(user.secret, clock.now(), -1);
    if (older !== code) {
      await expectProblem(await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: older }), 401, 'invalid-otp');
    }
    clock.advance(STEP_MS);
    expect(
      (await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: codeAt(user.secret, clock.now()) })).status,
    ).toBe(200);
  });

  test('a code typed as the app shows it, with a space, works', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const code = codeAt(user.secret, clock.now());
    const spaced = `${code.slice(0, 3)} ${code.slice(3)}`;
    expect((await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: spaced })).status).toBe(200);
  });

  test('two logins racing with one code: exactly one gets tokens', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const code = codeAt(user.secret, clock.now());
    const tokens = await Promise.all([mfaTokenOf(app, user.email), mfaTokenOf(app, user.email)]);
    const results = await Promise.all(tokens.map((t) => mfaOtp(app, t, { otp: code })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  test('the code confirming the enrolment cannot log in within its window', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const res = await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: codeAt(user.secret, user.confirmedAt) });
    await expectProblem(res, 401, 'invalid-otp');
  });
});

describe('the mfa_token', () => {
  test('is single use', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const mfaToken = await mfaTokenOf(app, user.email);
    expect((await mfaOtp(app, mfaToken, { otp: codeAt(user.secret, clock.now()) })).status).toBe(200);
    clock.advance(STEP_MS);
    const again = await mfaOtp(app, mfaToken, { otp: codeAt(user.secret, clock.now()) });
    const body = await expectProblem(again, 400, 'invalid-mfa-token');
    expect(body).toMatchObject({ error: 'invalid_grant' });
  });

  test('lives 5 minutes', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    const early = await mfaTokenOf(app, user.email);
    const late = await mfaTokenOf(app, user.email);
    clock.advance(5 * MINUTE_MS - 1000);
    expect((await mfaOtp(app, early, { otp: codeAt(user.secret, clock.now()) })).status).toBe(200);
    clock.advance(1000);
    await expectProblem(
      await mfaOtp(app, late, { otp: codeAt(user.secret, clock.now(), 1) }),
      400,
      'invalid-mfa-token',
    );
  });

  test('works only from the client address it was issued to', async () => {
    const { app, clock } = await clockedApp(Date.now(), { TRUST_PROXY: '1' });
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const here = { 'X-Forwarded-For': '203.0.113.5' };
    const mfaToken = await mfaTokenOf(app, user.email, here);
    const code = codeAt(user.secret, clock.now());
    const elsewhere = await mfaOtp(app, mfaToken, { otp: code }, { 'X-Forwarded-For': '198.51.100.7' });
    await expectProblem(elsewhere, 400, 'invalid-mfa-token');
    expect((await mfaOtp(app, mfaToken, { otp: code }, here)).status).toBe(200);
  });

  test("finishes only its own user's login: another user's code is a wrong code", async () => {
    const { app, clock } = await clockedApp();
    const victim = await totpUser(app, () => clock.now());
    const attacker = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const victimToken = await mfaTokenOf(app, victim.email);
    // The attacker's own, valid code against the victim's mfa_token.
    await expectProblem(
      await mfaOtp(app, victimToken, { otp: codeAt(attacker.secret, clock.now()) }),
      401,
      'invalid-otp',
    );
    // And the attacker's mfa_token with the victim's code: tokens, if any, would be the attacker's own.
    const attackerToken = await mfaTokenOf(app, attacker.email);
    await expectProblem(
      await mfaOtp(app, attackerToken, { otp: codeAt(victim.secret, clock.now()) }),
      401,
      'invalid-otp',
    );
    const own = await mfaOtp(app, victimToken, { otp: codeAt(victim.secret, clock.now()) });
    expect(decodeJwt((await json<TokenBody>(own)).access_token).payload.sub).toBe(String(victim.id));
  });

  test('5 wrong codes end it: the right code is then refused too', async () => {
    const { app, deps, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const mfaToken = await mfaTokenOf(app, user.email);
    const right = codeAt(user.secret, clock.now());
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) await expectProblem(await mfaOtp(app, mfaToken, { otp: wrong }), 401, 'invalid-otp');
    await expectProblem(await mfaOtp(app, mfaToken, { otp: right }), 400, 'invalid-mfa-token');
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.filter((e) => e.event === 'mfa_failed')).toHaveLength(5);
  });

  test('parallel guesses with one mfa_token get 5 checks between them, no more', async () => {
    const { app, clock } = await clockedApp();
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const mfaToken = await mfaTokenOf(app, user.email);
    const right = codeAt(user.secret, clock.now());
    const guesses = Array.from({ length: 30 }, (_, i) => String(i).padStart(6, '0')).filter((g) => g !== right);
    const results = await Promise.all(guesses.map((otp) => mfaOtp(app, mfaToken, { otp })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 400)).toHaveLength(guesses.length - 5);
  });

  test('each wrong code counts toward the account lockout (429 after RATE_LIMIT_LOGIN_FAILURES)', async () => {
    const { app, clock } = await clockedApp(Date.now(), { RATE_LIMIT_LOGIN_FAILURES: '3' });
    const user = await totpUser(app, () => clock.now());
    clock.advance(STEP_MS);
    const mfaToken = await mfaTokenOf(app, user.email);
    const right = codeAt(user.secret, clock.now());
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 3; i++) await expectProblem(await mfaOtp(app, mfaToken, { otp: wrong }), 401, 'invalid-otp');
    const locked = await mfaOtp(app, mfaToken, { otp: right });
    await expectProblem(locked, 429, 'rate-limited');
    expect(Number(locked.headers.get('Retry-After'))).toBeGreaterThan(0);
    // The password grant of that account, from that address, is locked too.
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: user.email, password: user.password }),
    });
    await expectProblem(res, 429, 'rate-limited');
  });

  test('an unknown or malformed mfa_token is 400 invalid_grant; a missing code is 422', async () => {
    const { app } = await clockedApp();
    await expectProblem(await mfaOtp(app, 'x'.repeat(43), { otp: '123456' }), 400, 'invalid-mfa-token');
    const missing = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'mfa_otp', mfa_token: 'x' }),
    });
    expect(await expectProblem(missing, 422, 'validation')).toMatchObject({ error: 'invalid_request' });
  });
});
