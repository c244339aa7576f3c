import type { AppDeps } from '../deps';
import { observeHasher } from '../hashing/observed';
import { type AttemptTracker, createAttemptTracker } from '../rate-limit/lockout';
import type { HashCosts } from './passwords';
import { type AuthLookup, createAuthLookup } from './sessions';

/**
 * What every service call receives first: the app's dependencies and the state the services share, built
 * once per app by createApp (never module-level, so two apps on two databases never share a cache).
 * Services take `(ctx, input)` with named fields, and ask only for the parts of ctx they use.
 */
export interface ServiceContext extends AppDeps {
  /** The bearer check's database read, prepared on this app's database (when the view cannot answer). */
  authLookup: AuthLookup;
  /** Password attempts in flight on this app, per account (rate-limit/lockout.ts). */
  attempts: AttemptTracker;
  /** What every failed password check costs (services/passwords.ts). */
  hashCosts: HashCosts;
}

export function createServiceContext(deps: AppDeps): ServiceContext {
  return {
    ...deps,
    hasher: observeHasher(deps.hasher, deps),
    authLookup: createAuthLookup(deps.db),
    attempts: createAttemptTracker(),
    hashCosts: { highest: deps.config.BCRYPT_COST },
  };
}
