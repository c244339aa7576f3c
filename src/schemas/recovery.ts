import { z } from '@hono/zod-openapi';
import { EmailSchema, PasswordSchema } from './user';

// A link token is 43 characters; anything up to this length is looked up (and fails as invalid-token), so a
// mistyped link is a 400 saying the link is bad, not a 422 about a field the user never saw.
const MAX_TOKEN_CHARS = 200;

const TokenField = z
  .string()
  .max(MAX_TOKEN_CHARS)
  .openapi({ description: 'The `token` parameter of the link in the mail', example: 'kR3v…43 characters…Yw' });

export const PasswordForgotSchema = z.object({ email: EmailSchema }).openapi('PasswordForgot');

export const PasswordResetSchema = z
  .object({ token: TokenField, new_password: PasswordSchema })
  .openapi('PasswordReset');

export const EmailVerifySchema = z.object({ token: TokenField }).openapi('EmailVerify');

export const VerificationResendSchema = z
  .object({ email: EmailSchema.optional() })
  .openapi('VerificationResend', { description: 'Without a bearer token, the address to send a new link to' });

export const EmailChangeSchema = z
  .object({
    new_email: EmailSchema,
    current_password: z.string().max(1024).openapi({ example: 'correct horse battery staple' }),
  })
  .openapi('EmailChange');

export const AcceptedSchema = z
  .object({ detail: z.string().openapi({ example: 'If an account has this address, a message is on its way' }) })
  .openapi('Accepted');
