import { z } from '@hono/zod-openapi';
import type { TokenPair } from '../services/auth';

const MAX_FORM_FIELD_LENGTH = 1024;

/** RFC 6749 Appendix A.1: client_id is printable ASCII; ours are names like `hono-postgres-auth`. */
export const ClientIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x20-\x7e]+$/, 'client_id must be printable ASCII');
export const GRANT_TYPES = ['password', 'refresh_token', 'mfa_otp'] as const;

const required = (ctx: z.core.$RefinementCtx, field: string) =>
  ctx.addIssue({ code: 'custom', path: [field], message: 'Field is required' });

/**
 * RFC 6749 token request: §4.3 password grant (`username` = the email, `password`; `grant_type` may be
 * omitted, as OAuth2PasswordRequestForm allows), §6 refresh (`grant_type=refresh_token`, `refresh_token`), or
 * the second step of a login with a second factor (`grant_type=mfa_otp`, `mfa_token`, and `otp` or
 * `recovery_code`).
 */
export const TokenRequestSchema = z
  .object({
    grant_type: z
      .string()
      .max(64)
      .optional()
      .openapi({ enum: [...GRANT_TYPES], example: 'password' }),
    username: z
      .string()
      .max(MAX_FORM_FIELD_LENGTH)
      // Found by fuzzing: the username is looked up and written to the audit log, and PostgreSQL text and jsonb
      // cannot hold NUL, so `username=%00` was a 500. No email contains one; refuse it as the contract says.
      .refine((s) => !s.includes('\0'), 'Username must not contain NUL')
      .optional()
      .openapi({ description: 'The account email (password grant)', example: 'ada@example.com' }),
    password: z
      .string()
      .max(MAX_FORM_FIELD_LENGTH)
      .optional()
      .openapi({ description: 'Password grant', example: 'correct horse battery staple' }),
    refresh_token: z
      .string()
      .max(MAX_FORM_FIELD_LENGTH)
      .optional()
      .openapi({ description: 'Refresh grant: the refresh token from the last response' }),
    mfa_token: z
      .string()
      .max(MAX_FORM_FIELD_LENGTH)
      .optional()
      .openapi({ description: "mfa_otp grant: the `mfa_token` of the password grant's 403 `mfa-required`" }),
    otp: z
      .string()
      .max(64)
      .optional()
      .openapi({ description: 'mfa_otp grant: the 6-digit code of the authenticator app', example: '123456' }),
    recovery_code: z
      .string()
      .max(64)
      .optional()
      .openapi({ description: 'mfa_otp grant, instead of `otp`: an unused recovery code', example: 'abcde-fghij' }),
    scope: z.string().max(MAX_FORM_FIELD_LENGTH).optional(),
    client_id: ClientIdSchema.optional().openapi({
      description: 'The OAuth client asking (RFC 6749 §2.3.1); the token carries it. Public clients send no secret.',
    }),
  })
  .superRefine((form, ctx) => {
    if (form.grant_type === undefined || form.grant_type === 'password') {
      if (form.username === undefined) required(ctx, 'username');
      if (form.password === undefined) required(ctx, 'password');
    } else if (form.grant_type === 'refresh_token' && form.refresh_token === undefined) {
      required(ctx, 'refresh_token');
    } else if (form.grant_type === 'mfa_otp') {
      if (form.mfa_token === undefined) required(ctx, 'mfa_token');
      if ((form.otp === undefined) === (form.recovery_code === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['otp'], message: 'Send exactly one of otp and recovery_code' });
      }
    }
  })
  .openapi('TokenRequest');

export const TokenSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal('bearer'),
    expires_in: z.number().int().openapi({ description: 'Seconds until the access token expires', example: 1800 }),
    refresh_token: z.string().openapi({
      description:
        'Single use: exchange it with grant_type=refresh_token for a new pair. Reusing a spent one ends the session.',
    }),
  })
  .openapi('Token');

/** RFC 6749 §5.1: the token response a grant answers with. */
export const toTokenResponse = (pair: TokenPair): z.infer<typeof TokenSchema> => ({
  access_token: pair.accessToken,
  token_type: 'bearer',
  expires_in: pair.expiresIn,
  refresh_token: pair.refreshToken,
});
