/**
 * The password rules, in one place. NIST SP 800-63B §3.1.1.2: no composition rules, but a length range, no
 * control characters, and a new password is compared against a list of commonly used passwords and against
 * context-specific words (here, the email's local part).
 */
import { z } from 'zod';
import { AppError } from './problems';
import { CONTROL_CHARACTERS, utf8Length } from './text';

export const MIN_PASSWORD_CHARS = 8; // NIST SP 800-63B §3.1.1.2
export const MAX_PASSWORD_BYTES = 72; // bcrypt ignores every byte past the 72nd

export const TOO_COMMON = 'Password is too common; choose another';
export const CONTAINS_EMAIL_NAME = 'Password must not contain your email name';

/** Shorter local parts ("al", "jo") occur in too many honest passwords to refuse them. */
export const MIN_EMAIL_NAME_CHARS = 3;

/** The rules a password must meet by itself, before the list and the email are consulted. */
export const PasswordRule = z
  .string()
  .refine((s) => !CONTROL_CHARACTERS.test(s), 'Password must not contain NUL or other control characters')
  .refine((s) => [...s].length >= MIN_PASSWORD_CHARS, `Password must be at least ${MIN_PASSWORD_CHARS} characters`)
  .refine(
    (s) => utf8Length(s) <= MAX_PASSWORD_BYTES,
    `Password must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8 (the bcrypt limit); use a shorter passphrase`,
  );

/**
 * Whether a password offered at login could be anyone's: longer ones could only "match" through bcrypt's
 * silent truncation, and no account has one (nor a NUL, which bcryptjs and Bun treat differently).
 */
export const isAcceptablePassword = (password: string): boolean =>
  utf8Length(password) <= MAX_PASSWORD_BYTES && !password.includes('\0');

let commonPasswords: Promise<ReadonlySet<string>> | undefined;

/**
 * The ~49k most common passwords of @zxcvbn-ts/language-common (a maintained list, lower-case like the
 * lookups). Loaded on first use, not at import: decompressing it costs about 20 ms and 13-15 MB of RSS
 * (66 MB → 83 MB for a Bun server on PostgreSQL), which an instance that only logs people in should not
 * pay. A dynamic import, not a file read, so every runtime (and a Workers bundle) gets it.
 */
export function loadCommonPasswords(): Promise<ReadonlySet<string>> {
  // Only the password list: the package's index also decompresses word lists and keyboard graphs we never use.
  commonPasswords ??= import('@zxcvbn-ts/language-common/dist/passwords.json.mjs').then(
    ({ default: passwords }: { default: string[] }) => new Set(passwords.map((p) => p.toLowerCase())),
    (error: unknown) => {
      commonPasswords = undefined; // a failed load is retried by the next request, not cached as a rejection
      throw error;
    },
  );
  return commonPasswords;
}

/** The parts of an email's local part a password must not contain: `ada.l+work@…` gives `ada.l+work` and `ada.l`. */
function emailNames(email: string): string[] {
  const at = email.lastIndexOf('@');
  if (at <= 0) return [];
  const local = email.slice(0, at).toLowerCase();
  const names = new Set([local, local.split('+')[0] ?? '']);
  return [...names].filter((name) => [...name].length >= MIN_EMAIL_NAME_CHARS);
}

/**
 * Why this password may not be set for this email, or null when it may. Case-insensitive on both checks:
 * `Password1` is as common as `password1`, and `ADA2024!` contains `ada`.
 */
export async function checkPasswordPolicy(password: string, email: string): Promise<string | null> {
  const folded = password.toLowerCase();
  if ((await loadCommonPasswords()).has(folded)) return TOO_COMMON;
  if (emailNames(email).some((name) => folded.includes(name))) return CONTAINS_EMAIL_NAME;
  return null;
}

/**
 * The policy as a 422 shaped like every other validation problem, for checks that need more than the
 * request body (a password change needs the caller's email). `field` is the body member the password came in.
 */
export async function assertPasswordPolicy(password: string, email: string, field: string): Promise<void> {
  const reason = await checkPasswordPolicy(password, email);
  if (reason) {
    throw new AppError('validation', {
      detail: `${field}: ${reason}`,
      errors: [{ pointer: `#/${field}`, detail: reason }],
    });
  }
}
