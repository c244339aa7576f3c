/**
 * The TOTP flow end to end as a client drives it, on real time, black-box: also against the servers of every
 * runtime (scripts/test-runtimes.ts). Enrol, confirm, the password grant's 403, grant_type=mfa_otp, refresh,
 * a recovery code, disabling. Codes come from the enrolment's secret (otpauth); the confirmation spends the
 * current step, so the login uses the next step's code, which the ±1 window accepts: no waiting.
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import {
  bearer,
  createTestApp,
  decodeJwt,
  expectProblem,
  json,
  login,
  refresh,
  TEST_PASSWORD,
  type TokenBody,
} from './helpers';
import { codeAt, mfaOtp, mfaTokenOf, stepOf, totpUser } from './support/mfa';

setDefaultTimeout(60_000);

test('enrol, confirm, log in with a code and with a recovery code, refresh keeps amr, disable', async () => {
  const { app } = await createTestApp();
  const now = () => new Date();
  const user = await totpUser(app, now);
  expect(user.recoveryCodes).toHaveLength(10);

  // The password alone no longer logs in.
  const mfaToken = await mfaTokenOf(app, user.email);
  await expectProblem(await mfaOtp(app, mfaToken, { otp: codeAt(user.secret, now(), 5) }), 401, 'invalid-otp');
  // The confirmation spent its step: take the next one's code while still in that step.
  const steps = stepOf(now()) === stepOf(user.confirmedAt) ? 1 : 0;
  const res = await mfaOtp(app, mfaToken, { otp: codeAt(user.secret, now(), steps) });
  expect(res.status).toBe(200);
  const pair = await json<TokenBody>(res);
  expect(decodeJwt(pair.access_token).payload.amr).toEqual(['pwd', 'otp']);
  expect((await app.request('/users/me', { headers: bearer(pair.access_token) })).status).toBe(200);
  const refreshed = await json<TokenBody>(await refresh(app, pair.refresh_token));
  expect(decodeJwt(refreshed.access_token).payload.amr).toEqual(['pwd', 'otp']);
  await expectProblem(await mfaOtp(app, mfaToken, { otp: codeAt(user.secret, now(), 1) }), 400, 'invalid-mfa-token');

  const [first, second] = user.recoveryCodes as [string, string];
  const recovered = await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: first });
  expect(recovered.status).toBe(200);
  await expectProblem(
    await mfaOtp(app, await mfaTokenOf(app, user.email), { recovery_code: first }),
    401,
    'invalid-otp',
  );
  const summary = await json<{ totp: { enabled: boolean }; recovery_codes_left: number }>(
    await app.request('/users/me/mfa', { headers: bearer(refreshed.access_token) }),
  );
  expect(summary).toMatchObject({ totp: { enabled: true }, recovery_codes_left: 9 });

  const disabled = await app.request('/users/me/mfa/totp', {
    method: 'DELETE',
    headers: { 'Content-Type': 'application/json', ...bearer(refreshed.access_token) },
    body: JSON.stringify({ current_password: TEST_PASSWORD, code: second }),
  });
  expect(disabled.status).toBe(204);
  expect((await login(app, user.email, TEST_PASSWORD)).status).toBe(200);
});
