import type { Context } from 'hono';
import type { Config } from './config';
import type { Database } from './db/database';
import type { ReadAsset } from './docs/assets';
import type { PasswordHasher } from './hashing/hasher';
import { type Clock, systemClock } from './lib/clock';
import { createLogger, type Logger } from './lib/logger';
import type { RateLimits } from './rate-limit/limits';
import { type AccessTokens, createAccessTokens } from './services/tokens';

/**
 * Everything the app needs from its runtime, composed of small interfaces each defined in its own room.
 * createApp never reaches for globals, env or the filesystem; `buildDeps` below assembles this for every
 * entry (and the tests).
 */
export interface AppDeps {
  config: Config;
  db: Database;
  clock: Clock;
  logger: Logger;
  hasher: PasswordHasher;
  /** Issues and verifies access tokens with the configured key, imported once. */
  tokens: AccessTokens;
  /** Brute-force limits on the configured store. */
  rateLimits: RateLimits;
  /** Reads the /docs and /redoc assets; each runtime knows where its files are. */
  readAsset: ReadAsset;
  /** The peer address of the request's connection, where the runtime exposes it. */
  remoteAddress?: (c: Context) => string | undefined;
  /** Wakes this instance's mail sender after a request queued mail (absent where no sender runs: Workers). */
  mailQueued?: () => void;
}

/** What one process (or one Workers isolate) builds once and every request shares. */
export interface Instance<H extends PasswordHasher = PasswordHasher> {
  config: Config;
  logger: Logger;
  clock: Clock;
  hasher: H;
  tokens: AppDeps['tokens'];
}

export function createInstance<H extends PasswordHasher>(
  config: Config,
  {
    hasher,
    clock = systemClock,
    logger = createLogger(config.LOG_LEVEL),
  }: { hasher: H; clock?: Clock; logger?: Logger },
): Instance<H> {
  return { config, logger, clock, hasher, tokens: createAccessTokens({ config, clock }) };
}

/** The one assembly of the app's dependencies: an instance's shared parts, on one database. */
export function buildDeps(
  instance: Instance,
  parts: {
    db: Database;
    rateLimits: RateLimits;
    readAsset: ReadAsset;
    remoteAddress?: AppDeps['remoteAddress'];
    mailQueued?: AppDeps['mailQueued'];
  },
): AppDeps {
  const { config, logger, clock, hasher, tokens } = instance;
  return { config, logger, clock, hasher, tokens, ...parts };
}
