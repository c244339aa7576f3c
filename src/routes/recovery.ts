import { createRoute } from '@hono/zod-openapi';
import { AppError } from '../lib/problems';
import { optionalAuth, requireAuth, requireStepUp } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, jsonBody, NO_STORE } from '../schemas/common';
import { BAD_BODY, problemResponses, STEP_UP, UNAUTHENTICATED, UNAVAILABLE } from '../schemas/problem';
import {
  AcceptedSchema,
  EmailChangeSchema,
  EmailVerifySchema,
  PasswordForgotSchema,
  PasswordResetSchema,
  VerificationResendSchema,
} from '../schemas/recovery';
import {
  requestEmailChange,
  requestPasswordReset,
  resendVerification,
  resetPassword,
  verifyEmail,
} from '../services/recovery';
import { createRouter } from './router';

const accepted = (description: string) => ({
  description,
  content: { 'application/json': { schema: AcceptedSchema } },
});

/** The one answer of each mail-sending request, whatever the address: it must not tell whether it has an account. */
const FORGOT_ACCEPTED = { detail: 'If an account has this address, a link to reset its password is on its way' };
const RESEND_ACCEPTED = { detail: 'If this address has an unverified account, a new link is on its way' };
const CHANGE_ACCEPTED = { detail: 'A confirmation link is on its way to the new address; it applies once used' };

export const forgotPasswordRoute = createRoute({
  method: 'post',
  path: '/password/forgot',
  operationId: 'forgotPassword',
  tags: ['recovery'],
  summary: 'Mail a password-reset link',
  description:
    'The same 202, body and timing for an unknown, a disabled and a known address: the answer tells nobody ' +
    'whether the address has an account. The link works once, for `PASSWORD_RESET_EXPIRE_MINUTES` (30). ' +
    'Limited to 3 an hour per address, and `RATE_LIMIT_RECOVERY_PER_IP` an hour per client IP.',
  middleware: [limitByClientIp('recoveryPerIp')] as const,
  request: { body: jsonBody(PasswordForgotSchema) },
  responses: {
    202: accepted('Accepted; a link goes out if the address has an enabled account'),
    ...problemResponses(...BAD_BODY, 'rate-limited', ...UNAVAILABLE),
  },
});

export const resetPasswordRoute = createRoute({
  method: 'post',
  path: '/password/reset',
  operationId: 'resetPassword',
  tags: ['recovery'],
  summary: 'Set a new password with the token of a reset link',
  description:
    'Spends the token, sets the password and ends every session of the account (on every instance); a ' +
    '"your password was changed" notice is mailed. An unknown, expired or used token is one answer: 400.',
  request: { body: jsonBody(PasswordResetSchema) },
  responses: {
    204: { description: 'The password is changed; log in with it' },
    ...problemResponses(...BAD_BODY, 'invalid-token', ...UNAVAILABLE),
  },
});

export const verifyEmailRoute = createRoute({
  method: 'post',
  path: '/email/verify',
  operationId: 'verifyEmail',
  tags: ['recovery'],
  summary: 'Confirm an address with the token of a verification or address-change link',
  description:
    'A verification link marks the address verified (`email_verified`); an address-change link moves the ' +
    'account to the new address, or answers 409 when another account has it by now.',
  request: { body: jsonBody(EmailVerifySchema) },
  responses: {
    204: { description: 'Verified (or moved)' },
    ...problemResponses(...BAD_BODY, 'invalid-token', 'email-taken', ...UNAVAILABLE),
  },
});

export const resendVerificationRoute = createRoute({
  method: 'post',
  path: '/email/verify/resend',
  operationId: 'resendVerification',
  tags: ['recovery'],
  summary: 'Mail a new verification link',
  description:
    "With a bearer token, to the caller's address; without one, to `email` (so a user locked out by " +
    '`EMAIL_VERIFICATION=required` can ask), with the same answer for every address. Earlier links stay ' +
    'valid until they expire. Limited like /password/forgot.',
  middleware: [limitByClientIp('recoveryPerIp'), optionalAuth] as const,
  security: [{}, ...BEARER_SECURITY],
  request: { body: { required: false, content: { 'application/json': { schema: VerificationResendSchema } } } },
  responses: {
    202: accepted('Accepted; a link goes out if the address has an unverified, enabled account'),
    ...problemResponses(...BAD_BODY, 'rate-limited', 'invalid-access-token', ...UNAVAILABLE),
  },
});

export const changeEmailRoute = createRoute({
  method: 'put',
  path: '/users/me/email',
  operationId: 'changeEmail',
  tags: ['users'],
  summary: 'Move the account to a new address',
  description:
    'Needs the current password. Mails a confirmation link to the new address and a notice to the current ' +
    'one; the address changes only when the link is used (POST /email/verify), which answers 409 if another ' +
    'account has the address, so this request never reveals that. A user with a second factor needs a token ' +
    'of a login with it (else 401 `insufficient-user-authentication`, RFC 9470).',
  middleware: [requireAuth, requireStepUp] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(EmailChangeSchema) },
  responses: {
    202: accepted('Accepted; confirm with the link mailed to the new address'),
    ...problemResponses(...BAD_BODY, 'wrong-password', 'rate-limited', ...UNAUTHENTICATED, ...STEP_UP, ...UNAVAILABLE),
  },
});

export const recoveryRoutes = createRouter()
  .openapi(forgotPasswordRoute, async (c) => {
    await requestPasswordReset(c.var.ctx, { email: c.req.valid('json').email, meta: c.var.meta });
    return c.json(FORGOT_ACCEPTED, 202, NO_STORE);
  })
  .openapi(resetPasswordRoute, async (c) => {
    const { token, new_password } = c.req.valid('json');
    await resetPassword(c.var.ctx, { token, newPassword: new_password, meta: c.var.meta });
    return c.body(null, 204);
  })
  .openapi(verifyEmailRoute, async (c) => {
    await verifyEmail(c.var.ctx, { token: c.req.valid('json').token, meta: c.var.meta });
    return c.body(null, 204);
  })
  .openapi(resendVerificationRoute, async (c) => {
    const { ctx, meta } = c.var;
    const user = c.get('user') as typeof c.var.user | undefined;
    const email = (c.req.valid('json') as { email?: string } | undefined)?.email;
    if (user) await resendVerification(ctx, { user, meta });
    else if (email !== undefined) await resendVerification(ctx, { email, meta });
    else {
      const detail = 'Field is required without a bearer token';
      throw new AppError('validation', { detail: `email: ${detail}`, errors: [{ pointer: '#/email', detail }] });
    }
    return c.json(RESEND_ACCEPTED, 202, NO_STORE);
  })
  .openapi(changeEmailRoute, async (c) => {
    const { new_email, current_password } = c.req.valid('json');
    const { ctx, user, meta } = c.var;
    await requestEmailChange(ctx, { user, newEmail: new_email, currentPassword: current_password, meta });
    return c.json(CHANGE_ACCEPTED, 202, NO_STORE);
  });
