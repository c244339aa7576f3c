import type { Context } from 'hono';
import type { Config } from './config';
import type { Database } from './db/database';
import type { User } from './db/schema';
import type { ReadAsset } from './docs/assets';
import type { PasswordHasher } from './hashing/hasher';
import type { Logger } from './lib/logger';
import type { RateLimits } from './middleware/rate-limit';
import type { AccessTokenClaims } from './services/tokens';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Everything the app needs from its runtime. createApp never reaches for globals, env or the filesystem. */
export interface AppDeps {
  db: Database;
  hasher: PasswordHasher;
  config: Config;
  clock: Clock;
  logger: Logger;
  /** Reads the /docs and /redoc assets; each runtime knows where its files are. */
  readAsset: ReadAsset;
  /** Brute-force limits on /token and /register; the runtime builds them on the configured store. */
  rateLimits: RateLimits;
  /** The peer address of the request's connection, where the runtime exposes it. */
  remoteAddress?: (c: Context) => string | undefined;
}

export interface AppEnv {
  Variables: {
    deps: AppDeps;
    requestId: string;
    user: User;
    claims: AccessTokenClaims;
  };
}
