import type { AppDeps } from '../deps';
import { type AuthLookup, createAuthLookup } from './sessions';

/**
 * What every service call receives first: the app's dependencies and the state the services share, built
 * once per app by createApp (never module-level, so two apps on two databases never share a cache).
 * Services take `(ctx, input)` with named fields, and ask only for the parts of ctx they use.
 */
export interface ServiceContext extends AppDeps {
  /** The bearer check's database read, prepared on this app's database (when the view cannot answer). */
  authLookup: AuthLookup;
  /** A real bcrypt hash at the configured cost, so an unknown email costs one verify like a known one. */
  dummyHash(): Promise<string>;
}

export function createServiceContext(deps: AppDeps): ServiceContext {
  let dummy: Promise<string> | undefined;
  return {
    ...deps,
    authLookup: createAuthLookup(deps.db),
    dummyHash() {
      dummy ??= deps.hasher.hash(crypto.randomUUID()).catch((error: unknown) => {
        dummy = undefined; // a hasher that failed once (shutting down, a worker died) is asked again next time
        throw error;
      });
      return dummy;
    },
  };
}
