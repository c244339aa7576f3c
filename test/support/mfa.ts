/**
 * The second factor's flows as a client drives them (API.md "Second factor"): enrol and confirm TOTP with
 * codes computed from the enrolment's secret by otpauth, the password grant's 403 and grant_type=mfa_otp.
 * Codes are computed at the time `at` names: the injected clock in-process, real time against a server.
 */
import { expect } from 'bun:test';
import { Secret, TOTP } from 'otpauth';
import {
  bearer,
  decodeJwt,
  expectProblem,
  json,
  loginSession,
  postJson,
  registerUser,
  TEST_PASSWORD,
  type TestApp,
  type TokenBody,
} from '../helpers';

const STEP_MS = 30_000;

/** The 6-digit code of `secret` (base32) at `at`, `steps` steps away. */
export function codeAt(secret: string, at: Date, steps = 0): string {
  return TOTP.generate({
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    timestamp: at.getTime() + steps * STEP_MS,
  });
}

export const stepOf = (at: Date) => Math.floor(at.getTime() / STEP_MS);

export function enrol(app: TestApp, token: string, password = TEST_PASSWORD) {
  return postJson(app, '/users/me/mfa/totp', { current_password: password }, bearer(token));
}

export function confirm(app: TestApp, token: string, code: string) {
  return postJson(app, '/users/me/mfa/totp/confirm', { code }, bearer(token));
}

export interface TotpUser {
  id: number;
  email: string;
  password: string;
  secret: string;
  recoveryCodes: string[];
  /** The enrolling session's access token (amr ["pwd"]). */
  token: string;
  /** When the confirming code was made: its step is spent. */
  confirmedAt: Date;
}

/** A new user with TOTP enabled (enrolled and confirmed at `now()`). */
export async function totpUser(app: TestApp, now: () => Date, email?: string): Promise<TotpUser> {
  const registered = await registerUser(app, email);
  const { token } = await loginSession(app, registered.email);
  const enrolled = await enrol(app, token);
  expect(enrolled.status).toBe(200);
  const { secret } = await json<{ secret: string }>(enrolled);
  const confirmedAt = now();
  const confirmed = await confirm(app, token, codeAt(secret, confirmedAt));
  expect(confirmed.status).toBe(200);
  const { recovery_codes } = await json<{ recovery_codes: string[] }>(confirmed);
  return {
    id: registered.user.id,
    email: registered.email,
    password: TEST_PASSWORD,
    secret,
    recoveryCodes: recovery_codes,
    token,
    confirmedAt,
  };
}

/** The password grant of a user with a second factor: asserts the 403 and returns its mfa_token. */
export async function mfaTokenOf(app: TestApp, email: string, headers: Record<string, string> = {}) {
  const res = await app.request('/token', {
    method: 'POST',
    headers,
    body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
  });
  const body = (await expectProblem(res, 403, 'mfa-required')) as unknown as { mfa_token: string; error: string };
  expect(body.error).toBe('mfa_required');
  expect(body.mfa_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return body.mfa_token;
}

export function mfaOtp(
  app: TestApp,
  mfaToken: string,
  proof: { otp: string } | { recovery_code: string },
  headers: Record<string, string> = {},
) {
  return app.request('/token', {
    method: 'POST',
    headers,
    body: new URLSearchParams({ grant_type: 'mfa_otp', mfa_token: mfaToken, ...proof }),
  });
}

/** A finished second-factor login: the token pair, its amr checked. */
export async function loginWithOtp(app: TestApp, user: Pick<TotpUser, 'email' | 'secret'>, at: Date) {
  const res = await mfaOtp(app, await mfaTokenOf(app, user.email), { otp: codeAt(user.secret, at) });
  expect(res.status).toBe(200);
  const pair = await json<TokenBody>(res);
  expect(decodeJwt(pair.access_token).payload.amr).toEqual(['pwd', 'otp']);
  return { token: pair.access_token, refreshToken: pair.refresh_token };
}
