import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../deps';
import { AppError, BEARER_CHALLENGE } from '../lib/errors';
import { defaultHook } from '../lib/validation';
import { problemResponses } from '../schemas/problem';
import { TokenRequestSchema, TokenSchema } from '../schemas/token';
import { UserPublicSchema, UserRegisterSchema } from '../schemas/user';
import { issueAccessToken } from '../services/tokens';
import { authenticate, createUser, recordLogin, toPublicUser } from '../services/users';

const NO_STORE = { 'Cache-Control': 'no-store' }; // RFC 6749 §5.1: token responses must not be cached

export const registerRoute = createRoute({
  method: 'post',
  path: '/register',
  tags: ['auth'],
  summary: 'Create an account',
  description: 'Registers a user with role `user`. The email is trimmed and lower-cased.',
  request: { body: { required: true, content: { 'application/json': { schema: UserRegisterSchema } } } },
  responses: {
    201: { description: 'The new user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(400, 409, 413, 415, 422, 503),
  },
});

export const loginRoute = createRoute({
  method: 'post',
  path: '/token',
  tags: ['auth'],
  summary: 'Log in (OAuth2 password grant)',
  description:
    'RFC 6749 §4.3: form fields `username` (the email) and `password`, urlencoded or multipart. ' +
    'Sets `last_login_time`. The 401 is identical for an unknown email and a wrong password.',
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
    200: { description: 'A bearer token', content: { 'application/json': { schema: TokenSchema } } },
    ...problemResponses(400, 401, 413, 415, 422, 503),
  },
});

export const authRoutes = new OpenAPIHono<AppEnv>({ defaultHook })
  .openapi(registerRoute, async (c) => {
    const user = await createUser(c.var.deps, c.req.valid('json'));
    return c.json(toPublicUser(user), 201, NO_STORE);
  })
  .openapi(loginRoute, async (c) => {
    const deps = c.var.deps;
    const form = c.req.valid('form');
    if (form.grant_type !== undefined && form.grant_type !== 'password') {
      throw new AppError(400, 'grant_type must be "password"', { type: '/problems/unsupported-grant-type' });
    }
    const user = await authenticate(deps, form.username, form.password);
    if (!user) {
      throw new AppError(401, 'Incorrect email or password', { headers: { 'WWW-Authenticate': BEARER_CHALLENGE } });
    }
    await recordLogin(deps, user.id, deps.clock.now());
    const { token, expiresIn } = await issueAccessToken(deps, user);
    return c.json({ access_token: token, token_type: 'bearer' as const, expires_in: expiresIn }, 200, NO_STORE);
  });
