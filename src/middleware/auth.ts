import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../deps';
import { BEARER_CHALLENGE, unauthorized } from '../lib/errors';
import { verifyAccessToken } from '../services/tokens';
import { findUserById } from '../services/users';

// RFC 6750 §2.1: "Bearer", one space, a token68. Anything else (Basic, a bare token, two tokens) is refused.
// The scheme is case-insensitive (RFC 7235 §2.1), and FastAPI clients often send `bearer` copied from token_type.
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * Accepts a request only with a valid access token of an existing, enabled user, whom it puts on
 * `c.var.user`. Every failure is the same 401 with the RFC 6750 challenge; only "no token at all"
 * gets the plain `Bearer` challenge, as §3.1 asks.
 */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  if (header === undefined) throw unauthorized('Not authenticated', BEARER_CHALLENGE);
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) throw unauthorized('Could not validate credentials');

  const deps = c.var.deps;
  const claims = await verifyAccessToken(deps, token);
  if (!claims) throw unauthorized('Could not validate credentials');
  const user = await findUserById(deps, Number(claims.sub));
  if (!user || user.disabled) throw unauthorized('Could not validate credentials');

  c.set('user', user);
  c.set('claims', claims);
  await next();
});
