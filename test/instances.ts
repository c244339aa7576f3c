/**
 * Instances of the service in this test process, each assembled as src/runtimes/bootstrap.ts assembles a
 * server (its own view, its own listener, its own key ring), on a database the test names: for tests of
 * what crosses instances (revocation, keys) and of each instance's listener (through a TCP proxy).
 */

import { scratchDatabase } from '../scripts/lib/scratch-database';
import { type AccessBus, startAccessBus } from '../src/access/listener';
import { createApp } from '../src/app';
import type { DatabaseHandle } from '../src/db/database';
import { accessSink, buildDeps, createInstance } from '../src/deps';
import { readAssetFromNodeModules } from '../src/docs/read-node-modules';
import { createLogger } from '../src/lib/logger';
import { createPrometheusMetrics } from '../src/observability/prometheus';
import { createRateLimitStore } from '../src/rate-limit/stores';
import { ensureSigningKey } from '../src/services/keys';
import { createTestClock, ownDatabase, POSTGRES_ADMIN_URL, type TestClock, testConfig, testHasher } from './helpers';

export interface TestInstance {
  app: ReturnType<typeof createApp>;
  deps: ReturnType<typeof buildDeps>;
  clock: TestClock;
  bus: AccessBus;
  close(): Promise<void>;
}

/** An instance on `database`, listening on `listenUrl` (DATABASE_LISTEN_URL) when given. */
export async function startInstance(
  database: DatabaseHandle,
  {
    env = {},
    clock = createTestClock(),
    listenUrl,
  }: { env?: Record<string, string>; clock?: TestClock; listenUrl?: string } = {},
): Promise<TestInstance> {
  const config = testConfig(env);
  const logger = createLogger(config.LOG_LEVEL);
  const instance = createInstance(config, { hasher: testHasher(), clock, logger });
  const { db } = database;
  // As openDatabase does with DATABASE_LISTEN_URL: session work goes there.
  const listening = listenUrl && database.driver === 'postgres' ? { ...database, sessionUrl: listenUrl } : database;
  const bus = await startAccessBus(config, listening, { sink: accessSink(instance, db), logger });
  await ensureSigningKey({ ...instance, db, access: bus });
  const store = await createRateLimitStore(config, { db, logger, clock, sweep: false });
  const deps = buildDeps(instance, {
    db,
    access: bus,
    rateLimits: store.rateLimits,
    readAsset: readAssetFromNodeModules,
    metrics: createPrometheusMetrics(),
    poolStats: database.stats,
  });
  return {
    app: createApp(deps),
    deps,
    clock,
    bus,
    close: async () => {
      await bus.stop();
      await store.close();
    },
  };
}

/** A database of the test's own, migrated, of the kind this run tests (ownDatabase), as one handle. */
export async function isolatedDatabase(
  prefix: string,
): Promise<DatabaseHandle & { url?: string; drop(): Promise<void> }> {
  const own = await ownDatabase(prefix);
  return Object.assign(own.handle, {
    url: own.url,
    drop: async () => {
      await own.handle.close();
      await own.drop();
    },
  });
}

/** A fresh PostgreSQL database even on a PGlite run (PostgreSQL runs wherever this suite runs). */
export async function isolatedPostgresDatabase(
  prefix: string,
): Promise<DatabaseHandle & { url: string; drop(): Promise<void> }> {
  const scratch = await scratchDatabase(prefix, { adminUrl: POSTGRES_ADMIN_URL, migrate: 'in-process' });
  const handle = await scratch.open();
  return Object.assign(handle, {
    url: scratch.url as string,
    drop: async () => {
      await handle.close();
      await scratch.drop();
    },
  });
}
