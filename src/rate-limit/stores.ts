import { and, eq, gt, lt, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { isDatabaseUnavailable } from '../db/errors';
import { rateLimits as rateLimitsTable } from '../db/schema';
import type { Clock } from '../lib/clock';
import { DescribedError, describeError, type Logger } from '../lib/logger';
import { type Limiter, type RateLimitName, type RateLimitSpec, type RateLimits, rateLimitSpecs } from './limits';

export interface RateLimitStore {
  rateLimits: RateLimits;
  /** Releases the store's connection (Redis); the database belongs to the caller. */
  close(): Promise<void>;
}

// A hung store must not hang logins: past this a command fails and the in-memory fallback answers.
const REDIS_COMMAND_TIMEOUT_MS = 1_000;
const REDIS_CONNECT_TIMEOUT_MS = 3_000;
const SWEEP_INTERVAL_MS = 5 * 60_000;
const FALLBACK_WARNING_INTERVAL_MS = 60_000; // one warning a minute while a store is down, not one per request
// The memory store expires each counter with a timer, and a timer longer than 2^31 ms (24.8 days) fires at once:
// in memory a longer window (a known address, 30 days by default) lasts 24 days, or until the process ends.
const MAX_MEMORY_WINDOW_SECONDS = 24 * 24 * 60 * 60;
const inMemory = (spec: RateLimitSpec): RateLimitSpec => ({
  ...spec,
  duration: Math.min(spec.duration, MAX_MEMORY_WINDOW_SECONDS),
});

/**
 * Builds the limits on the configured store:
 * - `memory` (default): per instance. Each counter expires with its window (a timer deletes it), so memory
 *   is bounded by the keys seen in one window, and the per-IP limits bound how many keys one client makes.
 * - `postgres`: the app's own database, table `rate_limits` (migration 0002), one atomic upsert per attempt;
 *   shared by every instance on one PostgreSQL. On PGlite it works too but only persists the counters
 *   across restarts, since a PGlite directory has one process.
 * - `redis`: REDIS_URL, shared by every instance; a Redis that cannot be reached at start is a start-up error.
 * While a shared store is unreachable, each limiter falls back to this instance's memory (insuranceLimiter)
 * with a warning: limits stay on, only per instance. Failing closed would make Redis a single point of
 * failure for every login; failing open would lift the brute-force limits exactly when an attacker can
 * overload the store.
 */
export async function createRateLimitStore(
  config: Config,
  {
    db,
    logger,
    clock,
    sweep = true,
  }: { db: Database; logger: Logger; clock: Clock /** delete expired counters every 5 min */; sweep?: boolean },
): Promise<RateLimitStore> {
  const specs = Object.entries(rateLimitSpecs(config)) as [RateLimitName, RateLimitSpec][];
  const build = (make: (name: RateLimitName, options: RateLimitSpec) => RateLimits[RateLimitName]) =>
    Object.fromEntries(specs.map(([name, options]) => [name, make(name, options)])) as RateLimits;

  if (config.RATE_LIMIT_STORE === 'memory') {
    return { rateLimits: build((_, options) => new RateLimiterMemory(inMemory(options))), close: async () => {} };
  }

  let lastWarning = Number.NEGATIVE_INFINITY;
  const fallback = (name: RateLimitName, options: RateLimitSpec) =>
    new MemoryFallback(inMemory(options), () => {
      const now = clock.now().getTime();
      if (now - lastWarning < FALLBACK_WARNING_INTERVAL_MS) return;
      lastWarning = now;
      logger.warn('rate-limit store unavailable; using this instance’s in-memory limits', {
        store: config.RATE_LIMIT_STORE,
        limit: name,
      });
    });

  if (config.RATE_LIMIT_STORE === 'postgres') {
    const rateLimits = build((name, options) => new PostgresLimiter(db, clock, options, fallback(name, options)));
    if (!sweep) return { rateLimits, close: async () => {} };
    // One sweep of expired rows serves every limiter: they share the table.
    const timer = setInterval(() => void deleteExpiredRateLimits({ db, clock }).catch(() => {}), SWEEP_INTERVAL_MS);
    (timer as { unref?: () => void }).unref?.();
    return { rateLimits, close: async () => clearInterval(timer) };
  }

  const redis = await connectRedis(config.REDIS_URL);
  const rateLimits = build(
    (name, options) =>
      new RateLimiterRedis({
        ...options,
        storeClient: redis,
        // Straight to the fallback while disconnected, instead of queueing commands until Redis returns.
        rejectIfRedisNotReady: true,
        insuranceLimiter: fallback(name, options),
      }),
  );
  return {
    rateLimits,
    close: async () => {
      redis.disconnect();
    },
  };
}

/** Connects and pings once, so a wrong or unreachable REDIS_URL stops the start with one clear line. */
async function connectRedis(url: string): Promise<Redis> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
  });
  // Errors after start are reconnected by ioredis and handled per request (fallback); without a listener
  // each would be printed as an unhandled 'error' event.
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new DescribedError(
      `RATE_LIMIT_STORE=redis: cannot reach REDIS_URL ${redactUrl(url)} (${describeError(error)})`,
    );
  }
  return redis;
}

const redactUrl = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');

/** The per-instance fallback of a shared store; calls `onUse` whenever it has to answer instead. */
class MemoryFallback extends RateLimiterMemory {
  constructor(
    options: RateLimitSpec,
    private readonly onUse: () => void,
  ) {
    super(options);
  }

  override consume(...args: Parameters<RateLimiterMemory['consume']>) {
    this.onUse();
    return super.consume(...args);
  }

  override delete(...args: Parameters<RateLimiterMemory['delete']>) {
    this.onUse();
    return super.delete(...args);
  }

  override get(...args: Parameters<RateLimiterMemory['get']>) {
    this.onUse();
    return super.get(...args);
  }

  override reward(...args: Parameters<RateLimiterMemory['reward']>) {
    this.onUse();
    return super.reward(...args);
  }
}

/**
 * A limiter on the `rate_limits` table: one atomic upsert per attempt (a counter whose window has passed
 * starts again at this attempt), so instances sharing the database share the count. rate-limiter-flexible's
 * own RateLimiterDrizzle loads drizzle-orm through a computed dynamic import that no bundle can follow
 * (Workers, the single binary), so this small one imports it statically. Times come from the injected clock,
 * so the window is the same one every other part of the service sees. Only an unreachable database sends a
 * call to the in-memory fallback: any other error is a bug (a key too long for the index was one, before
 * limits.ts hashed long keys) and is thrown, not hidden behind per-instance limits.
 */
class PostgresLimiter implements Limiter {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly spec: RateLimitSpec,
    private readonly fallback: Limiter,
  ) {}

  private key(key: string | number): string {
    return `${this.spec.keyPrefix}:${key}`;
  }

  private result(row: { points: number; expire: Date | null }, now: Date, isFirst: boolean): RateLimiterRes {
    return new RateLimiterRes(
      Math.max(this.spec.points - row.points, 0),
      row.expire ? Math.max(row.expire.getTime() - now.getTime(), 0) : -1,
      row.points,
      isFirst,
    );
  }

  /** Runs `query`, or `fallback` while the database is unreachable. */
  private async orFallback<T>(query: () => Promise<T>, fallback: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (error) {
      if (isDatabaseUnavailable(error)) return fallback();
      throw error;
    }
  }

  async consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    const now = this.clock.now();
    const expire = new Date(now.getTime() + this.spec.duration * 1000);
    const expired = sql`${rateLimitsTable.expire} <= ${now.toISOString()}::timestamptz`;
    const row = await this.orFallback(
      async () => {
        const [upserted] = await this.db
          .insert(rateLimitsTable)
          .values({ key: this.key(key), points, expire })
          .onConflictDoUpdate({
            target: rateLimitsTable.key,
            set: {
              points: sql`case when ${expired} then ${points} else ${rateLimitsTable.points} + ${points} end`,
              expire: sql`case when ${expired} then ${expire.toISOString()}::timestamptz else ${rateLimitsTable.expire} end`,
            },
          })
          .returning({ points: rateLimitsTable.points, expire: rateLimitsTable.expire });
        return upserted;
      },
      async () => undefined,
    );
    if (!row) return this.fallback.consume(key, points);
    const result = this.result(row, now, row.points === points);
    if (row.points > this.spec.points) throw result; // rate-limiter-flexible rejects with the result when over
    return result;
  }

  /** Gives points back within the current window (never below zero); a counter whose window ended stays ended. */
  async reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    const now = this.clock.now();
    const row = await this.orFallback(
      async () => {
        const [updated] = await this.db
          .update(rateLimitsTable)
          .set({ points: sql`greatest(${rateLimitsTable.points} - ${points}, 0)` })
          .where(and(eq(rateLimitsTable.key, this.key(key)), gt(rateLimitsTable.expire, now)))
          .returning({ points: rateLimitsTable.points, expire: rateLimitsTable.expire });
        return updated ?? null;
      },
      async () => undefined,
    );
    if (row === undefined) return this.fallback.reward(key, points);
    return row ? this.result(row, now, false) : new RateLimiterRes(this.spec.points, 0, 0, false);
  }

  async get(key: string | number): Promise<RateLimiterRes | null> {
    const now = this.clock.now();
    const row = await this.orFallback(
      async () => {
        const [found] = await this.db
          .select({ points: rateLimitsTable.points, expire: rateLimitsTable.expire })
          .from(rateLimitsTable)
          .where(and(eq(rateLimitsTable.key, this.key(key)), gt(rateLimitsTable.expire, now)))
          .limit(1);
        return found ?? null;
      },
      async () => undefined,
    );
    if (row === undefined) return this.fallback.get(key);
    return row ? this.result(row, now, false) : null;
  }

  async delete(key: string | number): Promise<boolean> {
    return this.orFallback(
      async () => {
        const deleted = await this.db
          .delete(rateLimitsTable)
          .where(eq(rateLimitsTable.key, this.key(key)))
          .returning({ key: rateLimitsTable.key });
        return deleted.length > 0;
      },
      () => this.fallback.delete(key),
    );
  }
}

/** Deletes counters whose window has passed (they would restart at the next attempt anyway); returns how many. */
export async function deleteExpiredRateLimits({ db, clock }: { db: Database; clock: Clock }): Promise<number> {
  const deleted = await db
    .delete(rateLimitsTable)
    .where(lt(rateLimitsTable.expire, clock.now()))
    .returning({ key: rateLimitsTable.key });
  return deleted.length;
}
