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

/** A sorted list of lines, searched without splitting it. */
export interface LineSet {
  has(line: string): boolean;
}

/**
 * Binary search over a string of sorted lines: each probe finds the line around the midpoint and compares
 * it whole. `lo` is always the start of a line and `hi` the start of one (or the end), so every probe lands
 * inside [lo, hi) and the range shrinks each time: about 17 probes for 49k lines.
 */
export function sortedLines(text: string): LineSet {
  return {
    has(word) {
      let lo = 0;
      let hi = text.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const start = mid === 0 ? 0 : text.lastIndexOf('\n', mid - 1) + 1;
        const newline = text.indexOf('\n', start);
        const end = newline === -1 ? text.length : newline;
        const line = text.slice(start, end);
        if (line === word) return true;
        if (line < word) lo = end + 1;
        else hi = start;
      }
      return false;
    },
  };
}

let commonPasswords: Promise<LineSet> | undefined;

/**
 * The ~49k most common passwords of @zxcvbn-ts/language-common (a maintained list), lower-case like the
 * lookups, as one sorted string (common-passwords.ts, generated): about 1 MB of memory where the package's
 * array in a Set took some 15 MB. Loaded on first use, not at import, so an instance that only logs people
 * in never pays even that; a dynamic import, not a file read, so every runtime (and a Workers bundle) gets it.
 */
export function loadCommonPasswords(): Promise<LineSet> {
  commonPasswords ??= import('./common-passwords').then(
    ({ default: list }: { default: string }) => sortedLines(list),
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
