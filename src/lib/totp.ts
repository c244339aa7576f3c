/**
 * TOTP (RFC 6238) as authenticator apps compute it: HMAC-SHA-1, 6 digits, 30-second steps, with `otpauth`.
 * Every function takes the time it is asked about, so the service checks codes against its injected clock.
 */
import { Secret, TOTP } from 'otpauth';

export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** Codes of the step before and after the current one are accepted too: clocks drift, people type slowly. */
export const TOTP_WINDOW_STEPS = 1;
/** 160 bits, the length RFC 4226 §4 recommends for the shared secret (HMAC-SHA-1's output size). */
export const TOTP_SECRET_BYTES = 20;

type Bytes = Uint8Array<ArrayBuffer>;

// A copy: otpauth takes a whole ArrayBuffer, and a view may be a window on a larger one.
const asSecret = (secret: Bytes) => new Secret({ buffer: secret.slice().buffer });

export const randomTotpSecret = (): Bytes => crypto.getRandomValues(new Uint8Array(TOTP_SECRET_BYTES));

/** RFC 4648 base32, as authenticator apps take a secret typed in by hand. */
export const toBase32 = (secret: Bytes): string => asSecret(secret).base32;

/** The time step `at` falls in (RFC 6238 §4.2: T = floor(unix time / X)). */
export const totpStep = (at: Date): number => Math.floor(at.getTime() / 1000 / TOTP_PERIOD_SECONDS);

/** The code of the step `at` falls in. `digits` exists for RFC 6238's 8-digit test vectors. */
export function totpCode(secret: Bytes, at: Date, digits = TOTP_DIGITS): string {
  return TOTP.generate({
    secret: asSecret(secret),
    algorithm: 'SHA1',
    digits,
    period: TOTP_PERIOD_SECONDS,
    timestamp: at.getTime(),
  });
}

/**
 * The time step whose code `code` is, within TOTP_WINDOW_STEPS of `at`; null for any other code. The
 * comparison is constant-time (otpauth). Which steps were used already is the caller's to check.
 */
export function matchTotp(secret: Bytes, code: string, at: Date): number | null {
  const delta = TOTP.validate({
    token: code,
    secret: asSecret(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    timestamp: at.getTime(),
    window: TOTP_WINDOW_STEPS,
  });
  return delta === null ? null : totpStep(at) + delta;
}

/** The `otpauth://totp/…` URI (Key Uri Format) an authenticator app scans: issuer, account, secret. */
export function totpUri(secret: Bytes, { issuer, account }: { issuer: string; account: string }): string {
  return new TOTP({
    issuer,
    label: account,
    secret: asSecret(secret),
    algorithm: 'SHA1',
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
  }).toString();
}
