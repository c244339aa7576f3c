import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { AppError } from '../lib/problems';
import { authenticateBearer } from '../services/auth';
import { isIntrospectionClient } from '../services/oauth';
import type { Role } from '../services/users';

// RFC 6750 §2.1: "Bearer", one space, a token68. Anything else (Basic, a bare token, two tokens) is refused.
// The scheme is case-insensitive (RFC 7235 §2.1), and FastAPI clients often send `bearer` copied from token_type.
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * Accepts a request only with a valid access token whose session is live and whose user exists and is
 * enabled; puts the user on `c.var.user`. Every failure is the same 401 with the RFC 6750 challenge;
 * only "no token at all" gets the plain `Bearer` challenge, as §3.1 asks.
 */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  if (header === undefined) throw new AppError('not-authenticated');
  await authenticate(c, header);
  await next();
});

/** Like requireAuth when an Authorization header is sent (a bad token is still a 401); without one, anonymous. */
export const optionalAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  if (header !== undefined) await authenticate(c, header);
  await next();
});

async function authenticate(c: Context<AppEnv>, header: string): Promise<void> {
  const token = BEARER.exec(header)?.[1];
  const authenticated = token === undefined ? null : await authenticateBearer(c.var.ctx, token);
  if (!authenticated) throw new AppError('invalid-access-token');
  c.set('user', authenticated.user);
  c.set('claims', authenticated.claims);
}

/**
 * POST /introspect: the configured client's HTTP Basic credentials, or an admin's bearer token (API.md).
 * Before the body is read, like every credential check: whoever has none learns nothing about the body.
 */
export const requireIntrospectionClient = createMiddleware<AppEnv>(async (c, next) => {
  const { ctx } = c.var;
  const header = c.req.header('Authorization');
  if (!isIntrospectionClient(ctx.config, header)) {
    const token = BEARER.exec(header ?? '')?.[1];
    const caller = token === undefined ? null : await authenticateBearer(ctx, token);
    if (caller?.user.role !== 'admin') throw new AppError('invalid-client');
  }
  await next();
});

/** After requireAuth: the role is read from the database on this request, so a demotion applies at once. */
export const requireRole = (role: Role) =>
  createMiddleware<AppEnv>(async (c, next) => {
    if (c.var.user.role !== role) throw new AppError('forbidden', { detail: `This needs the ${role} role` });
    await next();
  });
