import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { AppError } from '../lib/problems';
import { authenticateBearer } from '../services/auth';
import { isEnrolmentPending, needsStepUp } from '../services/mfa';
import { isIntrospectionClient } from '../services/oauth';
import type { Role } from '../services/users';

// RFC 6750 §2.1: "Bearer", one space, a token68. Anything else (Basic, a bare token, two tokens) is refused.
// The scheme is case-insensitive (RFC 7235 §2.1), and FastAPI clients often send `bearer` copied from token_type.
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * Accepts a request only with a valid access token whose session is live and whose user exists and is
 * enabled; puts the user on `c.var.user`. Every failure is the same 401 with the RFC 6750 challenge;
 * only "no token at all" gets the plain `Bearer` challenge, as §3.1 asks. Under MFA_REQUIRED_FOR_ADMINS an
 * admin whose token carries no second factor is refused (403 `mfa-enrolment-required`): only the routes
 * that take requireAuthToEnrol let them in.
 */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  await authenticate(c, c.req.header('Authorization'), { enrolling: false });
  await next();
});

/**
 * requireAuth that also lets in an admin who still has to enrol a second factor: for enrolling one, reading
 * who they are and logging out, and nothing else.
 */
export const requireAuthToEnrol = createMiddleware<AppEnv>(async (c, next) => {
  await authenticate(c, c.req.header('Authorization'), { enrolling: true });
  await next();
});

/** Like requireAuth when an Authorization header is sent (a bad token is still a 401); without one, anonymous. */
export const optionalAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  if (header !== undefined) await authenticate(c, header, { enrolling: false });
  await next();
});

async function authenticate(
  c: Context<AppEnv>,
  header: string | undefined,
  { enrolling }: { enrolling: boolean },
): Promise<void> {
  if (header === undefined) throw new AppError('not-authenticated');
  const token = BEARER.exec(header)?.[1];
  const authenticated = token === undefined ? null : await authenticateBearer(c.var.ctx, token);
  if (!authenticated) throw new AppError('invalid-access-token');
  const { user, claims } = authenticated;
  if (!enrolling && isEnrolmentPending(c.var.ctx.config, user, claims.amr)) {
    throw new AppError('mfa-enrolment-required');
  }
  c.set('user', user);
  c.set('claims', claims);
}

/**
 * After requireAuth, on sensitive actions (a new password or address, the second factor itself, an admin's
 * changes to users): a user with a second factor needs a token that used it, else 401 with RFC 9470's
 * `insufficient_user_authentication` challenge, so the client logs in again with the factor.
 */
export const requireStepUp = createMiddleware<AppEnv>(async (c, next) => {
  const { ctx, user, claims } = c.var;
  if (await needsStepUp(ctx, { user, amr: claims.amr })) throw new AppError('insufficient-user-authentication');
  await next();
});

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
    if (caller?.user.role !== 'admin' || isEnrolmentPending(ctx.config, caller.user, caller.claims.amr)) {
      throw new AppError('invalid-client');
    }
  }
  await next();
});

/** After requireAuth: the role is read from the database on this request, so a demotion applies at once. */
export const requireRole = (role: Role) =>
  createMiddleware<AppEnv>(async (c, next) => {
    if (c.var.user.role !== role) throw new AppError('forbidden', { detail: `This needs the ${role} role` });
    await next();
  });
