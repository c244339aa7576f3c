import type { RequestMeta } from './lib/request-meta';
import type { ServiceContext } from './services/context';
import type { AccessTokenClaims } from './services/tokens';
import type { User } from './services/users';

/** The Hono bindings of every route and middleware: what `c.var` holds. */
export interface AppEnv {
  Variables: {
    /** The service context of this app, passed to every service call. */
    ctx: ServiceContext;
    requestId: string;
    /** The request's abort signal and deadline (`performance.now()` ms), from middleware/deadline.ts. */
    deadline: { signal: AbortSignal; at: number };
    /** The client address and user agent, computed once per request (middleware/request-meta.ts). */
    meta: RequestMeta;
    /** Set by requireAuth. */
    user: User;
    claims: AccessTokenClaims;
  };
}
