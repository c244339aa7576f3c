import { z } from '@hono/zod-openapi';
import { EmailRule } from '../lib/email';
import { checkPasswordPolicy, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordRule } from '../lib/password-policy';
import { MAX_USER_ID, ROLES, type User } from '../services/users';

export const EmailSchema = EmailRule.openapi({ example: 'ada@example.com', format: 'email' });

export const PasswordSchema = PasswordRule.openapi({
  example: 'correct horse battery staple',
  minLength: MIN_PASSWORD_CHARS,
  description:
    `${MIN_PASSWORD_CHARS} characters to ${MAX_PASSWORD_BYTES} UTF-8 bytes, no control characters. A new password ` +
    "is also refused (422) when it is a common password or contains the email's local part.",
});

/** An object schema with `email` and `password`, plus the password policy (the blocklist and the email's name). */
const withPasswordPolicy = <S extends z.ZodObject<{ email: typeof EmailSchema; password: typeof PasswordSchema }>>(
  schema: S,
) =>
  schema.superRefine(
    async ({ email, password }, ctx) => {
      // `email` is undefined here when it failed its own type check; the password is still screened.
      const reason = await checkPasswordPolicy(password, typeof email === 'string' ? email : '');
      if (reason) ctx.addIssue({ code: 'custom', path: ['password'], message: reason });
    },
    // The blocklist is checked only for a password that passed its own rules (one reason at a time), and
    // not at all when the body is no object; zod runs object refinements despite field issues otherwise.
    { when: ({ issues }) => !issues.some((issue) => !issue.path?.length || issue.path[0] === 'password') },
  );

/** A new account's email and password, with the whole password policy: the one schema register and the CLI use. */
export const UserRegisterSchema = withPasswordPolicy(
  z.object({ email: EmailSchema, password: PasswordSchema }),
).openapi('UserRegister');

/** POST /bootstrap/admin: the first admin's account, and the token that proves access to the data directory. */
export const AdminBootstrapSchema = withPasswordPolicy(
  z.object({
    token: z.string().max(256).openapi({
      description: 'The `token` of `admin-bootstrap.json` in the data directory (`PGLITE_DIR`)',
      example: 'ZmlsZS1pbi10aGUtZGF0YS1kaXJlY3Rvcnk',
    }),
    email: EmailSchema,
    password: PasswordSchema,
  }),
).openapi('AdminBootstrap');

export const UserPublicSchema = z
  .object({
    id: z.number().int().openapi({ example: 1 }),
    email: z.string().openapi({ example: 'ada@example.com' }),
    role: z.enum(ROLES).openapi({ example: 'user' }),
    disabled: z.boolean().openapi({ example: false }),
    email_verified: z.boolean().openapi({
      example: true,
      description: 'The user followed a link mailed to this address (or an operator vouched)',
    }),
    created_at: z.string().openapi({ format: 'date-time', example: '2026-01-01T12:00:00.000Z' }),
    last_login_time: z.string().nullable().openapi({ format: 'date-time', example: '2026-01-02T08:30:00.000Z' }),
  })
  .openapi('UserPublic');

export type UserPublic = z.infer<typeof UserPublicSchema>;

/** A user as registration returns it: nobody has logged in yet. */
export const NEW_USER_EXAMPLE: UserPublic = {
  id: 1,
  email: 'ada@example.com',
  role: 'user',
  disabled: false,
  email_verified: false,
  created_at: '2026-01-01T12:00:00.000Z',
  last_login_time: null,
};

/** The public shape of a user: never a hash or a secret. */
export const toUserPublic = (user: User): UserPublic => ({
  id: user.id,
  email: user.email,
  role: user.role,
  disabled: user.disabled,
  email_verified: user.emailVerifiedAt !== null,
  created_at: user.createdAt.toISOString(),
  last_login_time: user.lastLoginTime?.toISOString() ?? null,
});

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

/** A user id in a path or query: a positive integer that fits users.id. */
export const UserIdSchema = z.coerce.number().int().positive().max(MAX_USER_ID);

export const UserIdParamSchema = z.object({
  id: UserIdSchema.openapi({ param: { name: 'id', in: 'path' }, example: 1 }),
});

/** limit/offset paging, shared by every list; unknown query parameters are ignored. */
export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0).openapi({ example: 0 }),
});
