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
import { SessionIdParamSchema, SessionsPublicSchema, toSessionPublic } from '../schemas/session';
import { PasswordChangeSchema, toUserPublic, UserPublicSchema, WelcomeSchema } from '../schemas/user';
import { endSession } from '../services/auth';
import { listLiveSessions } from '../services/sessions';
import { changePassword } from '../services/users';
import { createRouter } from './router';

export const getMeRoute = createRoute({
  method: 'get',
  path: '/users/me',
  operationId: 'getMe',
  tags: ['users'],
  summary: 'The authenticated user',
  middleware: [requireAuthToEnrol] as const,
  security: BEARER_SECURITY,
  responses: {
    200: { description: 'The caller', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(...UNAUTHENTICATED_ENROLLING, ...UNAVAILABLE),
  },
});

export const welcomeRoute = createRoute({
  method: 'get',
  path: '/welcome',
  operationId: 'getWelcome',
  tags: ['users'],
  summary: 'A greeting for the authenticated user',
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  responses: {
    200: { description: 'A greeting naming the caller', content: { 'application/json': { schema: WelcomeSchema } } },
    ...problemResponses(...UNAUTHENTICATED, ...UNAVAILABLE),
  },
});

export const changePasswordRoute = createRoute({
  method: 'put',
  path: '/users/me/password',
  operationId: 'changePassword',
  tags: ['users'],
  summary: 'Change the password',
  description:
    'Needs the current password. Every session and token issued before, this one included, stops working. ' +
    'A wrong current password counts like a failed login (the same per-account and per-address limits: 429 ' +
    'with `Retry-After`) and is audited as `password_change_failed`. A user with a second factor needs a token ' +
    'of a login with it (else 401 `insufficient-user-authentication`, RFC 9470).',
  middleware: [requireAuth, requireStepUp, limitByClientIp('loginPerIp')] as const,
  security: BEARER_SECURITY,
  request: { body: jsonBody(PasswordChangeSchema) },
  responses: {
    204: { description: 'Changed; log in again' },
    ...problemResponses(
      ...BAD_BODY,
      'wrong-password',
      ...UNAUTHENTICATED,
      ...STEP_UP,
      'rate-limited',
      'overloaded',
      ...UNAVAILABLE,
    ),
  },
});

export const listSessionsRoute = createRoute({
  method: 'get',
  path: '/users/me/sessions',
  operationId: 'listSessions',
  tags: ['users'],
  summary: "The caller's live sessions (refresh-token families)",
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  responses: {
    200: { description: 'Most recently used first', content: { 'application/json': { schema: SessionsPublicSchema } } },
    ...problemResponses(...UNAUTHENTICATED, ...UNAVAILABLE),
  },
});

export const deleteSessionRoute = createRoute({
  method: 'delete',
  path: '/users/me/sessions/{id}',
  operationId: 'deleteSession',
  tags: ['users'],
  summary: 'End one of your sessions',
  description: "The session's refresh token and access tokens stop working at once.",
  middleware: [requireAuth] as const,
  security: BEARER_SECURITY,
  request: { params: SessionIdParamSchema },
  responses: {
    204: { description: 'Ended' },
    ...problemResponses(...UNAUTHENTICATED, 'not-found', 'validation', ...UNAVAILABLE),
  },
});

export const userRoutes = createRouter()
  .openapi(getMeRoute, (c) => c.json(toUserPublic(c.var.user), 200, NO_STORE))
  .openapi(welcomeRoute, (c) => c.json({ message: `Welcome, ${c.var.user.email}!` }, 200, NO_STORE))
  .openapi(changePasswordRoute, async (c) => {
    const { current_password, new_password } = c.req.valid('json');
    const { ctx, user, meta } = c.var;
    await changePassword(ctx, { user, currentPassword: current_password, newPassword: new_password, meta });
    return c.body(null, 204);
  })
  .openapi(listSessionsRoute, async (c) => {
    const { ctx, user, claims } = c.var;
    const live = await listLiveSessions(ctx, { userId: user.id });
    return c.json(
      live.map((session) => toSessionPublic(session, claims.sid)),
      200,
      NO_STORE,
    );
  })
  .openapi(deleteSessionRoute, async (c) => {
    const { ctx, user, meta } = c.var;
    await endSession(ctx, { userId: user.id, sessionId: c.req.valid('param').id, meta });
    return c.body(null, 204);
  });
