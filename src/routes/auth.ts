import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { User } from '../db/schema';
import type { AppEnv } from '../deps';
import { AppError, BEARER_CHALLENGE } from '../lib/errors';
import { requestMeta } from '../lib/request-meta';
import { defaultHook } from '../lib/validation';
import { requireAuth } from '../middleware/auth';
import { clearLoginFailures, countLoginAttempt, limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, NO_STORE } from '../schemas/common';
import { problemResponses } from '../schemas/problem';
import { LogoutQuerySchema } from '../schemas/session';
import { TokenRequestSchema, TokenSchema } from '../schemas/token';
import { UserPublicSchema, UserRegisterSchema } from '../schemas/user';
import { recordAudit } from '../services/audit';
import { revokeAllSessions, revokeSession, rotateRefreshToken, startSession } from '../services/sessions';
import { issueAccessToken } from '../services/tokens';
import { authenticate, createUser, normalizeEmail, recordLogin, toPublicUser } from '../services/users';

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
    ...problemResponses(400, 409, 413, 415, 422, 429, 503),
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
    'Rate limited per client IP, and per account after repeated failed logins from any IP (429 with ' +
    '`Retry-After`; a successful login resets the account count).',
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
    ...problemResponses(400, 401, 413, 415, 422, 429, 503),
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
  responses: { 204: { description: 'Logged out' }, ...problemResponses(401, 503) },
});

async function issueTokenPair(c: Context<AppEnv>, user: User, sessionId: string, refreshToken: string) {
  const { token, expiresIn } = await issueAccessToken(c.var.deps, user, sessionId);
  return c.json(
    { access_token: token, token_type: 'bearer' as const, expires_in: expiresIn, refresh_token: refreshToken },
    200,
    NO_STORE,
  );
}

export const authRoutes = new OpenAPIHono<AppEnv>({ defaultHook })
  .openapi(registerRoute, async (c) => {
    const user = await createUser(c.var.deps, c.req.valid('json'), requestMeta(c));
    return c.json(toPublicUser(user), 201, NO_STORE);
  })
  .openapi(tokenRoute, async (c) => {
    const deps = c.var.deps;
    const form = c.req.valid('form');
    const meta = requestMeta(c);
    if (form.grant_type === 'refresh_token') {
      const { user, session, refreshToken } = await rotateRefreshToken(deps, form.refresh_token ?? '', meta);
      return issueTokenPair(c, user, session.id, refreshToken);
    }
    if (form.grant_type !== undefined && form.grant_type !== 'password') {
      throw new AppError(400, 'grant_type must be "password" or "refresh_token"', {
        type: '/problems/unsupported-grant-type',
      });
    }
    const email = form.username ?? '';
    await countLoginAttempt(deps, email); // 429 for a locked account, before any hashing
    const authentication = await authenticate(deps, email, form.password ?? '');
    if (authentication.user === null) {
      // The attempted email is kept (never the password) so an admin can see who is being targeted; for a
      // known email the event is also filed under that user, so GET /audit?user_id shows attacks on them.
      await recordAudit(deps.db, meta, 'login_failed', {
        userId: authentication.accountId,
        details: { email: normalizeEmail(email).slice(0, 254) },
      });
      throw new AppError(401, 'Incorrect email or password', { headers: { 'WWW-Authenticate': BEARER_CHALLENGE } });
    }
    const { user } = authentication;
    await clearLoginFailures(deps, email);
    const { session, refreshToken } = await deps.db.transaction(async (tx) => {
      await recordLogin(tx, user.id, deps.clock.now());
      await recordAudit(tx, meta, 'login_succeeded', { userId: user.id });
      return startSession(tx, deps, user.id, meta);
    });
    return issueTokenPair(c, user, session.id, refreshToken);
  })
  .openapi(logoutRoute, async (c) => {
    const { deps, user, claims } = c.var;
    const all = c.req.valid('query').all === 'true';
    const now = deps.clock.now();
    await deps.db.transaction(async (tx) => {
      if (all) await revokeAllSessions(tx, user.id, now);
      else await revokeSession(tx, user.id, claims.sid, now);
      await recordAudit(tx, requestMeta(c), 'logout', { userId: user.id, actorId: user.id, details: { all } });
    });
    return c.body(null, 204);
  });
