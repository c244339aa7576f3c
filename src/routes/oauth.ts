/**
 * The OAuth 2.0 endpoints: the token endpoint itself (RFC 6749), revocation (RFC 7009), introspection
 * (RFC 7662), and what other services need to verify our tokens alone: the JWKS and the server metadata
 * (RFC 8414). Their errors are problem+json with RFC 6749 §5.2's `error` member as well.
 */
import { createRoute } from '@hono/zod-openapi';
import { AppError } from '../lib/problems';
import { requireIntrospectionClient } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, NO_STORE } from '../schemas/common';
import {
  IntrospectionRequestSchema,
  IntrospectionSchema,
  JwksSchema,
  MetadataSchema,
  RevocationRequestSchema,
} from '../schemas/oauth';
import { BAD_BODY, problemResponses, UNAVAILABLE } from '../schemas/problem';
import { TokenRequestSchema, TokenSchema, toTokenResponse } from '../schemas/token';
import { loginWithPassword, loginWithSecondFactor, refreshTokens } from '../services/auth';
import { authorizationServerMetadata, introspectToken, revokeToken } from '../services/oauth';
import { createOAuthRouter } from './router';

export const tokenRoute = createRoute({
  method: 'post',
  path: '/token',
  operationId: 'token',
  tags: ['auth'],
  summary: 'Log in, or refresh a token pair (OAuth2)',
  description:
    'Password grant (RFC 6749 §4.3): `username` (the email) and `password`, urlencoded or multipart; sets ' +
    '`last_login_time` and starts a session. The 401 is identical for an unknown email and a wrong password.\n\n' +
    'Refresh grant (§6): `grant_type=refresh_token` and `refresh_token`; the token is spent and a new pair ' +
    'returned. Presenting a spent refresh token ends its whole session (RFC 9700 §4.14.2).\n\n' +
    'A user with a second factor gets 403 `mfa-required` with an `mfa_token` (single use, 5 minutes, only from ' +
    'the same client address) from the password grant; `grant_type=mfa_otp` with `mfa_token` and `otp` (or ' +
    '`recovery_code`) finishes the login, with `amr: ["pwd","otp"]`. A wrong code is a 401 and counts like a ' +
    'wrong password; the fifth ends the `mfa_token`.\n\n' +
    'Rate limited per client IP, per account and client IP after repeated failed logins, and per account for ' +
    'addresses it has never logged in from (429 with `Retry-After`, the real wait). 503 `overloaded` with ' +
    '`Retry-After` when the password checks ahead would not finish before the request times out.',
  middleware: [limitByClientIp('loginPerIp')] as const,
  request: {
    body: {
      required: true,
      content: {
        'application/x-www-form-urlencoded': { schema: TokenRequestSchema },
        'multipart/form-data': { schema: TokenRequestSchema },
      },
    },
  },
  responses: {
    200: { description: 'A token pair', content: { 'application/json': { schema: TokenSchema } } },
    ...problemResponses(
      ...BAD_BODY,
      'unsupported-grant-type',
      'invalid-credentials',
      'invalid-refresh-token',
      'email-unverified',
      'mfa-required',
      'invalid-mfa-token',
      'invalid-otp',
      'rate-limited',
      'overloaded',
      ...UNAVAILABLE,
    ),
  },
});

export const revokeRoute = createRoute({
  method: 'post',
  path: '/revoke',
  operationId: 'revokeToken',
  tags: ['oauth'],
  summary: 'Revoke a token (RFC 7009)',
  description:
    'The token is the credential: a refresh or access token of ours ends its whole session, at once on every ' +
    'instance. The answer is 200 for any token, known or not, so it reveals nothing about tokens.',
  request: {
    body: {
      required: true,
      content: {
        'application/x-www-form-urlencoded': { schema: RevocationRequestSchema },
        'multipart/form-data': { schema: RevocationRequestSchema },
      },
    },
  },
  responses: {
    200: { description: 'Revoked, or nothing to revoke' },
    ...problemResponses(...BAD_BODY, 'invalid-request', ...UNAVAILABLE),
  },
});

export const introspectRoute = createRoute({
  method: 'post',
  path: '/introspect',
  operationId: 'introspectToken',
  tags: ['oauth'],
  summary: 'Whether a token is live now (RFC 7662)',
  description:
    'For resource servers that must know now (a resource server verifying from the JWKS honours revocation only ' +
    "at the token's expiry). Authenticate with HTTP Basic `INTROSPECTION_CLIENT_ID:INTROSPECTION_CLIENT_SECRET`, " +
    'or an admin bearer token. Decided from the database. Anything not live is `{active: false}`.',
  // An admin's bearer token; the Basic client credentials are described above rather than declared as a scheme,
  // so /docs keeps one login in its Authorize dialog.
  middleware: [requireIntrospectionClient] as const,
  security: BEARER_SECURITY,
  request: {
    body: {
      required: true,
      content: {
        'application/x-www-form-urlencoded': { schema: IntrospectionRequestSchema },
        'multipart/form-data': { schema: IntrospectionRequestSchema },
      },
    },
  },
  responses: {
    200: {
      description: 'The token, or active: false',
      content: { 'application/json': { schema: IntrospectionSchema } },
    },
    ...problemResponses(...BAD_BODY, 'invalid-client', ...UNAVAILABLE),
  },
});

export const jwksRoute = createRoute({
  method: 'get',
  path: '/.well-known/jwks.json',
  operationId: 'getJwks',
  tags: ['oauth'],
  summary: 'The public keys that verify access tokens (RFC 7517)',
  description:
    'A key is published before it signs (for `JWKS_MAX_AGE_SECONDS`) and stays until the last token it signed has ' +
    'expired. Empty under HS256.',
  responses: { 200: { description: 'The JWK Set', content: { 'application/json': { schema: JwksSchema } } } },
});

export const metadataRoute = createRoute({
  method: 'get',
  path: '/.well-known/oauth-authorization-server',
  operationId: 'getAuthorizationServerMetadata',
  tags: ['oauth'],
  summary: 'Authorization server metadata (RFC 8414)',
  responses: { 200: { description: 'The metadata', content: { 'application/json': { schema: MetadataSchema } } } },
});

export const oauthRoutes = createOAuthRouter()
  .openapi(tokenRoute, async (c) => {
    const form = c.req.valid('form');
    const { ctx, meta } = c.var;
    if (form.grant_type === 'refresh_token') {
      const pair = await refreshTokens(ctx, { refreshToken: form.refresh_token ?? '', meta });
      return c.json(toTokenResponse(pair), 200, NO_STORE);
    }
    if (form.grant_type === 'mfa_otp') {
      const pair = await loginWithSecondFactor(ctx, {
        mfaToken: form.mfa_token ?? '',
        ...(form.otp === undefined
          ? { code: form.recovery_code ?? '', method: 'recovery' as const }
          : { code: form.otp, method: 'totp' as const }),
        meta,
      });
      return c.json(toTokenResponse(pair), 200, NO_STORE);
    }
    if (form.grant_type !== undefined && form.grant_type !== 'password') throw new AppError('unsupported-grant-type');
    const pair = await loginWithPassword(ctx, {
      username: form.username ?? '',
      password: form.password ?? '',
      clientId: form.client_id,
      meta,
    });
    return c.json(toTokenResponse(pair), 200, NO_STORE);
  })
  .openapi(revokeRoute, async (c) => {
    const { token, token_type_hint: hint } = c.req.valid('form');
    if (!token) throw new AppError('invalid-request', { detail: 'token is required (RFC 7009 §2.1)' });
    await revokeToken(c.var.ctx, { token, hint, meta: c.var.meta });
    return c.body(null, 200, NO_STORE);
  })
  .openapi(introspectRoute, async (c) => {
    const { token, token_type_hint: hint } = c.req.valid('form');
    if (!token) throw new AppError('invalid-request', { detail: 'token is required (RFC 7662 §2.1)' });
    return c.json(await introspectToken(c.var.ctx, { token, hint }), 200, NO_STORE);
  })
  .openapi(jwksRoute, (c) => {
    const { keys, config } = c.var.ctx;
    return c.json({ keys: keys.jwks() }, 200, {
      'Cache-Control': `public, max-age=${config.JWKS_MAX_AGE_SECONDS}`,
    });
  })
  .openapi(metadataRoute, (c) => {
    const { config } = c.var.ctx;
    return c.json(authorizationServerMetadata(config, config.PUBLIC_URL ?? new URL(c.req.url).origin), 200);
  });
