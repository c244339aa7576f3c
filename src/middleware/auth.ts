import { createMiddleware } from 'hono/factory';
import type { Role } from '../db/schema';
import type { AppEnv } from '../deps';
import { AppError, BEARER_CHALLENGE, unauthorized } from '../lib/errors';
import { findAuthenticatedUser } from '../services/sessions';
import { verifyAccessToken } from '../services/tokens';

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
  if (header === undefined) throw unauthorized('Not authenticated', BEARER_CHALLENGE);
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) throw unauthorized('Could not validate credentials');

  const deps = c.var.deps;
  const claims = await verifyAccessToken(deps, token);
  if (!claims) throw unauthorized('Could not validate credentials');
  const user = await findAuthenticatedUser(deps.db, Number(claims.sub), claims.sid, deps.clock.now());
  if (!user) throw unauthorized('Could not validate credentials');

  c.set('user', user);
  c.set('claims', claims);
  await next();
});

/** After requireAuth: the role is read from the database on this request, so a demotion applies at once. */
export const requireRole = (role: Role) =>
  createMiddleware<AppEnv>(async (c, next) => {
    if (c.var.user.role !== role)
      throw new AppError(403, `This needs the ${role} role`, { type: '/problems/forbidden' });
    await next();
  });
