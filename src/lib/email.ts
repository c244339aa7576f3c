import { z } from 'zod';
import { CONTROL_CHARACTERS } from './text';

export const MAX_EMAIL_LENGTH = 254; // RFC 5321 §4.5.3.1.3 path limit, less the angle brackets

/** Trimmed and lower-cased before validation, storage and lookup, so `A@B.c ` and `a@b.c` are one account. */
export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

/** An email as the service accepts one: normalized, at most 254 characters, no control characters, RFC-valid. */
export const EmailRule = z
  .string()
  .overwrite(normalizeEmail)
  .max(MAX_EMAIL_LENGTH, `Email must be at most ${MAX_EMAIL_LENGTH} characters`)
  .refine((s) => !CONTROL_CHARACTERS.test(s), 'Email must not contain control characters')
  .pipe(z.email('Invalid email address'));

/** Whether `text`, as typed, is an email the service would accept (after normalizing). */
export const isEmail = (text: string): boolean => EmailRule.safeParse(text).success;
