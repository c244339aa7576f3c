/** The caller's second factor (API.md "Second factor"): TOTP enrolment, its recovery codes, the summary. */
import { createRoute } from '@hono/zod-openapi';
import { requireAuth, requireAuthToEnrol, requireStepUp } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, jsonBody, NO_STORE } from '../schemas/common';
import {
  MfaSummarySchema,
  RecoveryCodesSchema,
  SecondFactorProofSchema,
  TotpConfirmSchema,
  TotpEnrolmentSchema,
  TotpEnrolSchema,
  toMfaSummary,
} from '../schemas/mfa';
import {
  BAD_BODY,
  problemResponses,
  STEP_UP,
  UNAUTHENTICATED,
  UNAUTHENTICATED_ENROLLING,
  UNAVAILABLE,
} from '../schemas/problem';
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  disableTotp,
  getMfaSummary,
  regenerateRecoveryCodes,
} from '../services/mfa';
import { createRouter } from './router';

// Each of these checks a password or a code like a login: the same per-address request limit as POST /token.
const LIMITED = limitByClientIp('loginPerIp');
const ATTEMPT_PROBLEMS = ['rate-limited', 'overloaded', ...UNAVAILABLE] as const;

/** What a route that takes the password and a code (SecondFactorProofSchema) after a step-up can answer. */
const PROOF_PROBLEMS = [
  ...BAD_BODY,
  'wrong-password',
  'wrong-code',
  ...UNAUTHENTICATED,
  ...STEP_UP,
  'mfa-not-enabled',
  ...ATTEMPT_PROBLEMS,
] as const;

export const getMfaRoute = createRoute({
  method: 'get',
  path: '/users/me/mfa',
  operationId: 'getMfa',
  tags: ['mfa'],
  summary: "The caller's second factors",
  middleware: [requireAuthToEnrol] as const,
  security: BEARER_SECURITY,
  responses: {
    200: {
      description: 'TOTP, passkeys, recovery codes left',
      content: { 'application/json': { schema: MfaSummarySchema } },
    },
    ...problemResponses(...UNAUTHENTICATED_ENROLLING, ...UNAVAILABLE),
  },
});

export const enrolTotpRoute = createRoute({
  method: 'post',
  path: '/users/me/mfa/totp',
  operationId: 'enrolTotp',
  tags: ['mfa'],
  summary: 'Start a TOTP enrolment',
  description:
    'Needs the current password (checked like a login: a wrong one counts toward the lockout). Answers a new ' +
    'secret as base32, as an `otpauth://` URI and as an SVG QR code to scan; it is pending until ' +
    '`POST /users/me/mfa/totp/confirm` sends a first code (a new enrolment replaces a pending one). 409 when ' +
    'TOTP is enabled already.',
  middleware: [requireAuthToEnrol, LIMITED] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(TotpEnrolSchema) },
  responses: {
    200: { description: 'The pending secret', content: { 'application/json': { schema: TotpEnrolmentSchema } } },
    ...problemResponses(
      ...BAD_BODY,
      'wrong-password',
      ...UNAUTHENTICATED_ENROLLING,
      'mfa-already-enabled',
      ...ATTEMPT_PROBLEMS,
    ),
  },
});

export const confirmTotpRoute = createRoute({
  method: 'post',
  path: '/users/me/mfa/totp/confirm',
  operationId: 'confirmTotp',
  tags: ['mfa'],
  summary: 'Confirm the TOTP enrolment with a first code',
  description:
    'Enables the pending factor and answers ten recovery codes, shown this once (only hashes are kept). From ' +
    'now on the password grant answers 403 `mfa-required`; this session keeps its `amr`, so log in again ' +
    'with a code to get one that carries `otp`. A wrong code is a 400 and counts toward the lockout.',
  middleware: [requireAuthToEnrol, LIMITED] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(TotpConfirmSchema) },
  responses: {
    200: {
      description: 'Enabled; the recovery codes',
      content: { 'application/json': { schema: RecoveryCodesSchema } },
    },
    ...problemResponses(
      ...BAD_BODY,
      'wrong-code',
      ...UNAUTHENTICATED_ENROLLING,
      'mfa-not-enabled',
      ...ATTEMPT_PROBLEMS,
    ),
  },
});

export const disableTotpRoute = createRoute({
  method: 'delete',
  path: '/users/me/mfa/totp',
  operationId: 'disableTotp',
  tags: ['mfa'],
  summary: 'Disable TOTP',
  description:
    'Needs the current password and a code (a TOTP code, or a recovery code when the phone is lost), and a ' +
    'token of a login with the second factor (else 401 `insufficient-user-authentication`). The recovery ' +
    'codes go with it.',
  middleware: [requireAuth, requireStepUp, LIMITED] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(SecondFactorProofSchema) },
  responses: {
    204: { description: 'Disabled' },
    ...problemResponses(...PROOF_PROBLEMS),
  },
});

export const regenerateRecoveryCodesRoute = createRoute({
  method: 'post',
  path: '/users/me/mfa/recovery-codes',
  operationId: 'regenerateRecoveryCodes',
  tags: ['mfa'],
  summary: 'Replace the recovery codes',
  description:
    'Ten new codes, shown once; every earlier code stops working. Needs the current password, a code and a ' +
    'token of a login with the second factor, like disabling TOTP.',
  middleware: [requireAuth, requireStepUp, LIMITED] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(SecondFactorProofSchema) },
  responses: {
    200: { description: 'The new recovery codes', content: { 'application/json': { schema: RecoveryCodesSchema } } },
    ...problemResponses(...PROOF_PROBLEMS),
  },
});

export const mfaRoutes = createRouter()
  .openapi(getMfaRoute, async (c) => {
    return c.json(toMfaSummary(await getMfaSummary(c.var.ctx, { userId: c.var.user.id })), 200, NO_STORE);
  })
  .openapi(enrolTotpRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    const { current_password } = c.req.valid('json');
    const enrolment = await beginTotpEnrolment(ctx, { user, currentPassword: current_password, meta });
    return c.json(
      { secret: enrolment.secret, otpauth_uri: enrolment.otpauthUri, qr_svg: enrolment.qrSvg },
      200,
      NO_STORE,
    );
  })
  .openapi(confirmTotpRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    const recoveryCodes = await confirmTotpEnrolment(ctx, { user, code: c.req.valid('json').code, meta });
    return c.json({ recovery_codes: recoveryCodes }, 200, NO_STORE);
  })
  .openapi(disableTotpRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    const { current_password, code } = c.req.valid('json');
    await disableTotp(ctx, { user, currentPassword: current_password, code, meta });
    return c.body(null, 204);
  })
  .openapi(regenerateRecoveryCodesRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    const { current_password, code } = c.req.valid('json');
    const recoveryCodes = await regenerateRecoveryCodes(ctx, { user, currentPassword: current_password, code, meta });
    return c.json({ recovery_codes: recoveryCodes }, 200, NO_STORE);
  });
