import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../deps';
import { AppError } from '../lib/errors';
import { requestMeta } from '../lib/request-meta';
import { defaultHook } from '../lib/validation';
import { requireAuth } from '../middleware/auth';
import { BEARER_SECURITY, NO_STORE } from '../schemas/common';
import { problemResponses } from '../schemas/problem';
import { SessionIdParamSchema, SessionPublicSchema } from '../schemas/session';
import { PasswordChangeSchema, UserPublicSchema, WelcomeSchema } from '../schemas/user';
import { recordAudit } from '../services/audit';
import { listLiveSessions, revokeSession } from '../services/sessions';
import { changePassword, toPublicUser } from '../services/users';

export const getMeRoute = createRoute({
  method: 'get',
  path: '/users/me',
  tags: ['users'],
  summary: 'The authenticated user',
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  responses: {
    200: { description: 'The caller', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(401, 503),
  },
});

export const welcomeRoute = createRoute({
  method: 'get',
  path: '/welcome',
  tags: ['users'],
  summary: 'A greeting for the authenticated user',
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  responses: {
    200: { description: 'A greeting naming the caller', content: { 'application/json': { schema: WelcomeSchema } } },
    ...problemResponses(401, 503),
  },
});

export const changePasswordRoute = createRoute({
  method: 'put',
  path: '/users/me/password',
  tags: ['users'],
  summary: 'Change the password',
  description: 'Needs the current password. Every session and token issued before, this one included, stops working.',
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  request: { body: { required: true, content: { 'application/json': { schema: PasswordChangeSchema } } } },
  responses: {
    204: { description: 'Changed; log in again' },
    ...problemResponses(400, 401, 413, 415, 422, 503),
  },
});

export const listSessionsRoute = createRoute({
  method: 'get',
  path: '/users/me/sessions',
  tags: ['users'],
  summary: "The caller's live sessions (refresh-token families)",
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  responses: {
    200: {
      description: 'Most recently used first',
      content: { 'application/json': { schema: SessionPublicSchema.array().openapi('SessionsPublic') } },
    },
    ...problemResponses(401, 503),
  },
});

export const deleteSessionRoute = createRoute({
  method: 'delete',
  path: '/users/me/sessions/{id}',
  tags: ['users'],
  summary: 'End one of your sessions',
  description: "The session's refresh token and access tokens stop working at once.",
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  request: { params: SessionIdParamSchema },
  responses: { 204: { description: 'Ended' }, ...problemResponses(401, 404, 422, 503) },
});

export const userRoutes = new OpenAPIHono<AppEnv>({ defaultHook })
  .openapi(getMeRoute, (c) => c.json(toPublicUser(c.var.user), 200, NO_STORE))
  .openapi(welcomeRoute, (c) => c.json({ message: `Welcome, ${c.var.user.email}!` }, 200, NO_STORE))
  .openapi(changePasswordRoute, async (c) => {
    await changePassword(c.var.deps, c.var.user, c.req.valid('json'), requestMeta(c));
    return c.body(null, 204);
  })
  .openapi(listSessionsRoute, async (c) => {
    const { deps, user, claims } = c.var;
    const live = await listLiveSessions(deps.db, user.id, deps.clock.now());
    const body = live.map((session) => ({
      id: session.id,
      created_at: session.createdAt.toISOString(),
      last_used_at: session.lastUsedAt.toISOString(),
      user_agent: session.userAgent,
      ip: session.ip,
      current: session.id === claims.sid,
    }));
    return c.json(body, 200, NO_STORE);
  })
  .openapi(deleteSessionRoute, async (c) => {
    const { deps, user } = c.var;
    const { id } = c.req.valid('param');
    const ended = await deps.db.transaction(async (tx) => {
      if (!(await revokeSession(tx, user.id, id, deps.clock.now()))) return false;
      await recordAudit(tx, requestMeta(c), 'session_revoked', {
        userId: user.id,
        actorId: user.id,
        details: { session_id: id },
      });
      return true;
    });
    // Someone else's session answers exactly like a missing one: ids of other users' sessions are not confirmed.
    if (!ended) throw new AppError(404, 'No such session', { type: '/problems/not-found' });
    return c.body(null, 204);
  });
