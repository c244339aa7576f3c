import type { Context } from 'hono';
import type { AccessMessage } from './access/changes';
import type { AccessChanges, AccessSink } from './access/listener';
import { AccessView } from './access/view';
import type { Config } from './config';
import type { Database } from './db/database';
import type { User } from './db/schema';
import type { ReadAsset } from './docs/assets';
import type { PasswordHasher } from './hashing/hasher';
import type { HashPool, HashPoolStats } from './hashing/pool';
import { type Clock, systemClock } from './lib/clock';
import { createLogger, type Logger } from './lib/logger';
import { type Metrics, noMetrics, type PoolStats } from './lib/metrics';
import { noTracer, type Tracer } from './lib/tracing';
import type { RateLimits } from './rate-limit/limits';
import type { AdminBootstrap } from './services/admin-bootstrap';
import { createKeyRing, type KeyRing } from './services/keys';
import { type AccessTokenClaims, type AccessTokens, createAccessTokens } from './services/tokens';

export type AppView = AccessView<User, AccessTokenClaims>;

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
  /** Issues and verifies access tokens with the key ring's keys. */
  tokens: AccessTokens;
  /** The signing keys: the active one, the published ones, and which are revoked. */
  keys: KeyRing;
  /** The instance's live view of users, sessions and verified tokens (access/view.ts). */
  view: AppView;
  /** Where the services say they changed access, so this instance applies it before answering. */
  access: AccessChanges;
  /** Brute-force limits on the configured store. */
  rateLimits: RateLimits;
  /** Reads the /docs and /redoc assets; each runtime knows where its files are. */
  readAsset: ReadAsset;
  /** The peer address of the request's connection, where the runtime exposes it. */
  remoteAddress?: (c: Context) => string | undefined;
  /** The one-time path to the first admin, open while a service on the embedded database has none. */
  adminBootstrap?: AdminBootstrap;
  /** Wakes this instance's mail sender after a request queued mail (absent where no sender runs: Workers). */
  mailQueued?: () => void;
  /** What /metrics reports (lib/metrics.ts): a registry of this app's own, or noMetrics where none is kept. */
  metrics: Metrics;
  /** Spans of requests, queries and hashes (lib/tracing.ts): noTracer unless tracing is on. */
  tracer: Tracer;
  /** The hash pool's queue, where the hasher has one (not the inline hasher of Workers). */
  hashPoolStats?: () => HashPoolStats;
  /** What passes through the database pool now (db/observed.ts). */
  poolStats?: () => PoolStats;
}

/** What one process (or one Workers isolate) builds once and every request shares. */
export interface Instance<H extends PasswordHasher = PasswordHasher> {
  config: Config;
  logger: Logger;
  clock: Clock;
  hasher: H;
  keys: KeyRing;
  tokens: AccessTokens;
  view: AppView;
}

export function createInstance<H extends PasswordHasher>(
  config: Config,
  {
    hasher,
    clock = systemClock,
    logger = createLogger(config.LOG_LEVEL),
  }: { hasher: H; clock?: Clock; logger?: Logger },
): Instance<H> {
  const keys = createKeyRing({ config, clock, logger });
  const view: AppView = new AccessView(config.ACCESS_VIEW_MAX_ENTRIES, () => clock.now().getTime());
  return { config, logger, clock, hasher, keys, tokens: createAccessTokens({ config, clock, keys }), view };
}

/** The one assembly of the app's dependencies: an instance's shared parts, on one database. */
export function buildDeps(
  instance: Instance,
  parts: {
    db: Database;
    rateLimits: RateLimits;
    access: AccessChanges;
    readAsset: ReadAsset;
    remoteAddress?: AppDeps['remoteAddress'];
    adminBootstrap?: AppDeps['adminBootstrap'];
    mailQueued?: AppDeps['mailQueued'];
    metrics?: Metrics;
    tracer?: Tracer;
    poolStats?: AppDeps['poolStats'];
  },
): AppDeps {
  const { config, logger, clock, hasher, keys, tokens, view } = instance;
  return {
    config,
    logger,
    clock,
    hasher,
    keys,
    tokens,
    view,
    hashPoolStats: isHashPool(hasher) ? () => hasher.stats() : undefined,
    ...parts,
    metrics: parts.metrics ?? noMetrics,
    tracer: parts.tracer ?? noTracer,
  };
}

const isHashPool = (hasher: PasswordHasher): hasher is HashPool => typeof (hasher as HashPool).stats === 'function';

/**
 * What an instance does with an access change it hears of: the view forgets what it names; the key ring
 * forgets a revoked key at once and reloads on any key change.
 */
export function accessSink({ view, keys, logger }: Instance, db: Database): AccessSink {
  return {
    apply(message: AccessMessage) {
      view.apply(message);
      const { change } = message;
      if (change.kind === 'key') keys.forget(change.kid);
      if (change.kind === 'key' || change.kind === 'keys') {
        keys.reload(db).catch(() => logger.warn('could not reload the signing keys; the next change retries'));
      }
    },
    setHealthy: (healthy) => view.setHealthy(healthy),
  };
}
