import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../deps';
import { defaultHook } from '../lib/validation';
import { requireAuth } from '../middleware/auth';
import { problemResponses } from '../schemas/problem';
import { UserPublicSchema, WelcomeSchema } from '../schemas/user';
import { toPublicUser } from '../services/users';

const NO_STORE = { 'Cache-Control': 'no-store' }; // personal data: never in a shared cache
// Typed up front: an inline array literal of two differently-keyed objects makes zod-openapi infer this
// router's schema as `{ [path: string]: ... }`, which leaves `hc<AppType>` with no typed routes at all.
const BEARER_SECURITY: Record<string, string[]>[] = [{ Bearer: [] }, { OAuth2Password: [] }];

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

export const userRoutes = new OpenAPIHono<AppEnv>({ defaultHook })
  .openapi(getMeRoute, (c) => c.json(toPublicUser(c.var.user), 200, NO_STORE))
  .openapi(welcomeRoute, (c) => c.json({ message: `Welcome, ${c.var.user.email}!` }, 200, NO_STORE));
