import { createRoute } from '@hono/zod-openapi';
import { AppError } from '../lib/problems';
import { requireAuth } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, NO_STORE } from '../schemas/common';
import { BAD_BODY, problemResponses, UNAUTHENTICATED, UNAVAILABLE } from '../schemas/problem';
import { LogoutQuerySchema } from '../schemas/session';
import { TokenRequestSchema, TokenSchema, toTokenResponse } from '../schemas/token';
import { toUserPublic, UserPublicSchema, UserRegisterSchema } from '../schemas/user';
import { loginWithPassword, logout, refreshTokens } from '../services/auth';
import { createUser } from '../services/users';
import { createRouter } from './router';

export const registerRoute = createRoute({
  method: 'post',
  path: '/register',
  tags: ['auth'],
  summary: 'Create an account',
  description:
    'Registers a user with role `user` (a `role` in the body is ignored). The email is trimmed and lower-cased.',
  middleware: [limitByClientIp('registerPerIp')] as const,
  request: { body: { required: true, content: { 'application/json': { schema: UserRegisterSchema } } } },
  responses: {
    201: { description: 'The new user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(...BAD_BODY, 'email-taken', 'rate-limited', 'overloaded', ...UNAVAILABLE),
  },
});

export const tokenRoute = createRoute({
  method: 'post',
  path: '/token',
  tags: ['auth'],
  summary: 'Log in, or refresh a token pair (OAuth2)',
  description:
    'Password grant (RFC 6749 §4.3): `username` (the email) and `password`, urlencoded or multipart; sets ' +
    '`last_login_time` and starts a session. The 401 is identical for an unknown email and a wrong password.\n\n' +
    'Refresh grant (§6): `grant_type=refresh_token` and `refresh_token`; the token is spent and a new pair ' +
    'returned. Presenting a spent refresh token ends its whole session (RFC 9700 §4.14.2).\n\n' +
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
      'rate-limited',
      'overloaded',
      ...UNAVAILABLE,
    ),
  },
});

export const logoutRoute = createRoute({
  method: 'post',
  path: '/logout',
  tags: ['auth'],
  summary: 'End this session, or every session with ?all=true',
  description: 'The access token used and its refresh-token family stop working at once.',
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  request: { query: LogoutQuerySchema },
  responses: { 204: { description: 'Logged out' }, ...problemResponses(...UNAUTHENTICATED, ...UNAVAILABLE) },
});

export const authRoutes = createRouter()
  .openapi(registerRoute, async (c) => {
    const { email, password } = c.req.valid('json');
    const user = await createUser(c.var.ctx, { email, password, meta: c.var.meta });
    return c.json(toUserPublic(user), 201, NO_STORE);
  })
  .openapi(tokenRoute, async (c) => {
    const form = c.req.valid('form');
    const { ctx, meta } = c.var;
    if (form.grant_type === 'refresh_token') {
      const pair = await refreshTokens(ctx, { refreshToken: form.refresh_token ?? '', meta });
      return c.json(toTokenResponse(pair), 200, NO_STORE);
    }
    if (form.grant_type !== undefined && form.grant_type !== 'password') throw new AppError('unsupported-grant-type');
    const pair = await loginWithPassword(ctx, { username: form.username ?? '', password: form.password ?? '', meta });
    return c.json(toTokenResponse(pair), 200, NO_STORE);
  })
  .openapi(logoutRoute, async (c) => {
    const { ctx, user, claims, meta } = c.var;
    await logout(ctx, { userId: user.id, sessionId: claims.sid, all: c.req.valid('query').all === 'true', meta });
    return c.body(null, 204);
  });
