import { z } from '@hono/zod-openapi';
import { ROLES } from '../db/schema';
import { checkPasswordPolicy } from '../lib/password-policy';

export const MAX_EMAIL_LENGTH = 254; // RFC 5321 §4.5.3.1.3 path limit, less the angle brackets
export const MIN_PASSWORD_CHARS = 8; // NIST SP 800-63B §3.1.1.2
export const MAX_PASSWORD_BYTES = 72; // bcrypt ignores every byte past the 72nd

// C0 controls and DEL: never part of a typed email or password, often a smuggling attempt (NUL truncation).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/** Trimmed and lower-cased before validation, storage and lookup, so `A@B.c ` and `a@b.c` are one account. */
export const EmailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(MAX_EMAIL_LENGTH, `Email must be at most ${MAX_EMAIL_LENGTH} characters`)
  .refine((s) => !CONTROL_CHARACTERS.test(s), 'Email must not contain control characters')
  .pipe(z.email('Invalid email address'))
  .openapi({ example: 'ada@example.com', format: 'email' });

export const PasswordSchema = z
  .string()
  .refine((s) => !CONTROL_CHARACTERS.test(s), 'Password must not contain NUL or other control characters')
  .refine((s) => [...s].length >= MIN_PASSWORD_CHARS, `Password must be at least ${MIN_PASSWORD_CHARS} characters`)
  .refine(
    (s) => utf8Length(s) <= MAX_PASSWORD_BYTES,
    `Password must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8 (the bcrypt limit); use a shorter passphrase`,
  )
  .openapi({
    example: 'correct horse battery staple',
    minLength: MIN_PASSWORD_CHARS,
    description:
      `${MIN_PASSWORD_CHARS} characters to ${MAX_PASSWORD_BYTES} UTF-8 bytes, no control characters. A new password ` +
      "is also refused (422) when it is a common password or contains the email's local part.",
  });

export const UserRegisterSchema = z
  .object({ email: EmailSchema, password: PasswordSchema })
  .superRefine(
    async ({ email, password }, ctx) => {
      // `email` is undefined here when it failed its own type check; the password is still screened.
      const reason = await checkPasswordPolicy(password, typeof email === 'string' ? email : '');
      if (reason) ctx.addIssue({ code: 'custom', path: ['password'], message: reason });
    },
    // The blocklist is checked only for a password that passed its own rules (one reason at a time), and
    // not at all when the body is no object; zod runs object refinements despite field issues otherwise.
    { when: ({ issues }) => !issues.some((issue) => !issue.path?.length || issue.path[0] === 'password') },
  )
  .openapi('UserRegister');

export const UserPublicSchema = z
  .object({
    id: z.number().int().openapi({ example: 1 }),
    email: z.string().openapi({ example: 'ada@example.com' }),
    role: z.enum(ROLES).openapi({ example: 'user' }),
    disabled: z.boolean().openapi({ example: false }),
    created_at: z.string().openapi({ format: 'date-time', example: '2026-01-01T12:00:00.000Z' }),
    last_login_time: z.string().nullable().openapi({ format: 'date-time', example: '2026-01-02T08:30:00.000Z' }),
  })
  .openapi('UserPublic');

export type UserPublic = z.infer<typeof UserPublicSchema>;

export const WelcomeSchema = z
  .object({ message: z.string().openapi({ example: 'Welcome, ada@example.com!' }) })
  .openapi('Welcome');

export const PasswordChangeSchema = z
  .object({
    current_password: z.string().max(1024).openapi({ example: 'correct horse battery staple' }),
    new_password: PasswordSchema,
  })
  .openapi('PasswordChange');

export const UserUpdateSchema = z
  .object({
    role: z.enum(ROLES).optional().openapi({ example: 'admin' }),
    disabled: z
      .boolean()
      .optional()
      .openapi({ description: 'A disabled user cannot log in; their tokens stop working' }),
  })
  .openapi('UserUpdate');

export const UsersPublicSchema = z
  .object({ items: z.array(UserPublicSchema), total: z.number().int().openapi({ example: 1 }) })
  .openapi('UsersPublic');

export const UserIdParamSchema = z.object({
  id: z.coerce
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1)
    .openapi({ param: { name: 'id', in: 'path' }, example: 1 }),
});

/** limit/offset paging, shared by every list; unknown query parameters are ignored. */
export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0).openapi({ example: 0 }),
});
