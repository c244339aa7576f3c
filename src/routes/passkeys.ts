/**
 * Passkeys (API.md "Second factor"): registration while logged in, passwordless login, removal. The
 * ceremonies' options and responses are WebAuthn's JSON forms, as @simplewebauthn/browser and
 * `PublicKeyCredential.toJSON()` make them.
 */
import { createRoute } from '@hono/zod-openapi';
import { requireAuth, requireAuthToEnrol, requireStepUp } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, jsonBody, NO_STORE } from '../schemas/common';
import {
  BAD_BODY,
  problemResponses,
  STEP_UP,
  UNAUTHENTICATED,
  UNAUTHENTICATED_ENROLLING,
  UNAVAILABLE,
} from '../schemas/problem';
import { TokenSchema, toTokenResponse } from '../schemas/token';
import {
  AuthenticationResponseSchema,
  CreationOptionsSchema,
  PasskeyCreatedSchema,
  PasskeyIdParamSchema,
  PasskeyLoginRequestSchema,
  PasskeyRegistrationRequestSchema,
  RegistrationResponseSchema,
  RequestOptionsSchema,
  toPasskeyCreated,
} from '../schemas/webauthn';
import { loginWithPasskey } from '../services/auth';
import { passkeyLoginOptions, passkeyRegistrationOptions, registerPasskey, removePasskey } from '../services/passkeys';
import { createRouter } from './router';

const CEREMONY_NOTE =
  'The challenge is single use and expires after 5 minutes; it is kept in the database, so any instance may ' +
  'verify it.';

export const registrationOptionsRoute = createRoute({
  method: 'post',
  path: '/webauthn/register/options',
  operationId: 'passkeyRegistrationOptions',
  tags: ['passkeys'],
  summary: 'Begin registering a passkey',
  description:
    'Options for `navigator.credentials.create()`: your passkeys are excluded, user verification is required, ' +
    `a discoverable credential preferred. ${CEREMONY_NOTE} A passkey is a second factor: a user who has one ` +
    'needs a token of a login with it (else 401 `insufficient-user-authentication`); an admin who still has to ' +
    'enrol one under MFA_REQUIRED_FOR_ADMINS may.',
  middleware: [requireAuthToEnrol, requireStepUp] as const,
  security: BEARER_SECURITY,
  request: { body: { required: false, content: { 'application/json': { schema: PasskeyRegistrationRequestSchema } } } },
  responses: {
    200: { description: 'The creation options', content: { 'application/json': { schema: CreationOptionsSchema } } },
    ...problemResponses(...BAD_BODY, ...UNAUTHENTICATED_ENROLLING, ...STEP_UP, ...UNAVAILABLE),
  },
});

export const registrationVerifyRoute = createRoute({
  method: 'post',
  path: '/webauthn/register/verify',
  operationId: 'passkeyRegistrationVerify',
  tags: ['passkeys'],
  summary: 'Finish registering a passkey',
  description:
    "The authenticator's answer to the options of `POST /webauthn/register/options`, from the same user. 400 for " +
    'any failure: no such challenge of yours, wrong origin or RP id, no user verification, a bad attestation, ' +
    'a passkey registered already.',
  middleware: [requireAuthToEnrol, requireStepUp] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(RegistrationResponseSchema) },
  responses: {
    201: { description: 'Registered', content: { 'application/json': { schema: PasskeyCreatedSchema } } },
    ...problemResponses(...BAD_BODY, 'passkey-rejected', ...UNAUTHENTICATED_ENROLLING, ...STEP_UP, ...UNAVAILABLE),
  },
});

export const loginOptionsRoute = createRoute({
  method: 'post',
  path: '/webauthn/login/options',
  operationId: 'passkeyLoginOptions',
  tags: ['passkeys'],
  summary: 'Begin a passkey login',
  description:
    'Options for `navigator.credentials.get()`. Without `email`, any discoverable passkey of this service; with ' +
    "it, that account's passkeys (an email without any gets a made-up one, so the answer tells nothing about " +
    `the account). User verification is required. ${CEREMONY_NOTE} Rate limited like \`POST /token\`.`,
  middleware: [limitByClientIp('loginPerIp')] as const,
  request: { body: { required: false, content: { 'application/json': { schema: PasskeyLoginRequestSchema } } } },
  responses: {
    200: { description: 'The request options', content: { 'application/json': { schema: RequestOptionsSchema } } },
    ...problemResponses(...BAD_BODY, 'rate-limited', ...UNAVAILABLE),
  },
});

export const loginVerifyRoute = createRoute({
  method: 'post',
  path: '/webauthn/login/verify',
  operationId: 'passkeyLoginVerify',
  tags: ['passkeys'],
  summary: 'Log in with a passkey',
  description:
    "The authenticator's answer to the options of `POST /webauthn/login/options`. 200: a token pair like the " +
    'password grant\'s, its session\'s `amr` `["webauthn"]`. 401, the same for every failure: an unknown or ' +
    'removed passkey, a disabled user, a bad signature, no user verification, a spent or expired challenge, a ' +
    'sign counter that did not increase (audited as `passkey_counter_rollback`: the key may have been copied). ' +
    'Rate limited like `POST /token`.',
  middleware: [limitByClientIp('loginPerIp')] as const,
  request: { body: jsonBody(AuthenticationResponseSchema) },
  responses: {
    200: { description: 'A token pair', content: { 'application/json': { schema: TokenSchema } } },
    ...problemResponses(
      ...BAD_BODY,
      'passkey-login-failed',
      'email-unverified',
      'rate-limited',
      'no-signing-key',
      ...UNAVAILABLE,
    ),
  },
});

export const deletePasskeyRoute = createRoute({
  method: 'delete',
  path: '/users/me/passkeys/{id}',
  operationId: 'deletePasskey',
  tags: ['passkeys'],
  summary: 'Remove one of your passkeys',
  description:
    'It can no longer log in. Sessions it started go on (end them at `/users/me/sessions`). Needs a token of a ' +
    'login with the second factor (else 401 `insufficient-user-authentication`).',
  middleware: [requireAuth, requireStepUp] as const,
  security: BEARER_SECURITY,
  request: { params: PasskeyIdParamSchema },
  responses: {
    204: { description: 'Removed' },
    ...problemResponses(...UNAUTHENTICATED, ...STEP_UP, 'not-found', 'validation', ...UNAVAILABLE),
  },
});

export const passkeyRoutes = createRouter()
  .openapi(registrationOptionsRoute, async (c) => {
    const { name } = c.req.valid('json') ?? {};
    return c.json(await passkeyRegistrationOptions(c.var.ctx, { user: c.var.user, name }), 200, NO_STORE);
  })
  .openapi(registrationVerifyRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    const passkey = await registerPasskey(ctx, { user, response: c.req.valid('json'), meta });
    return c.json(toPasskeyCreated(passkey), 201, NO_STORE);
  })
  .openapi(loginOptionsRoute, async (c) => {
    const { email } = c.req.valid('json') ?? {};
    return c.json(await passkeyLoginOptions(c.var.ctx, { email }), 200, NO_STORE);
  })
  .openapi(loginVerifyRoute, async (c) => {
    const pair = await loginWithPasskey(c.var.ctx, { response: c.req.valid('json'), meta: c.var.meta });
    return c.json(toTokenResponse(pair), 200, NO_STORE);
  })
  .openapi(deletePasskeyRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    await removePasskey(ctx, { userId: user.id, passkeyId: c.req.valid('param').id, meta });
    return c.body(null, 204);
  });
