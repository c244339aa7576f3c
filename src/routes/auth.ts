import { createRoute } from '@hono/zod-openapi';
import { requireAuthToEnrol } from '../middleware/auth';
import { limitByClientIp } from '../middleware/rate-limit';
import { BEARER_SECURITY, jsonBody, NO_STORE } from '../schemas/common';
import { BAD_BODY, problemResponses, UNAUTHENTICATED_ENROLLING, UNAVAILABLE } from '../schemas/problem';
import { LogoutQuerySchema } from '../schemas/session';
import { NEW_USER_EXAMPLE, toUserPublic, UserPublicSchema, UserRegisterSchema } from '../schemas/user';
import { logout } from '../services/auth';
import { createUser } from '../services/users';
import { createRouter } from './router';

export const registerRoute = createRoute({
  method: 'post',
  path: '/register',
  operationId: 'register',
  tags: ['auth'],
  summary: 'Create an account',
  description:
    'Registers a user with role `user` (a `role` in the body is ignored). The email is trimmed and lower-cased.',
  middleware: [limitByClientIp('registerPerIp')] as const,
  request: { body: jsonBody(UserRegisterSchema) },
  responses: {
    201: {
      description: 'The new user',
      content: { 'application/json': { schema: UserPublicSchema, example: NEW_USER_EXAMPLE } },
    },
    ...problemResponses(...BAD_BODY, 'email-taken', 'rate-limited', 'overloaded', ...UNAVAILABLE),
  },
});

export const logoutRoute = createRoute({
  method: 'post',
  path: '/logout',
  operationId: 'logout',
  tags: ['auth'],
  summary: 'End this session, or every session with ?all=true',
  description: 'The access token used and its refresh-token family stop working at once.',
  middleware: [requireAuthToEnrol] as const,
  security: BEARER_SECURITY,
  request: { query: LogoutQuerySchema },
  responses: {
    204: { description: 'Logged out' },
    ...problemResponses(...UNAUTHENTICATED_ENROLLING, ...UNAVAILABLE),
  },
});

export const authRoutes = createRouter()
  .openapi(registerRoute, async (c) => {
    const { email, password } = c.req.valid('json');
    const user = await createUser(c.var.ctx, { email, password, meta: c.var.meta });
    return c.json(toUserPublic(user), 201, NO_STORE);
  })
  .openapi(logoutRoute, async (c) => {
    const { ctx, user, claims, meta } = c.var;
    await logout(ctx, { userId: user.id, sessionId: claims.sid, all: c.req.valid('query').all === 'true', meta });
    return c.body(null, 204);
  });
