/**
 * Instances of the service in this test process, each assembled as src/runtimes/bootstrap.ts assembles a
 * server (its own view, its own listener, its own key ring), on a database the test names: for tests of
 * what crosses instances (revocation, keys) and of each instance's listener (through a TCP proxy).
 */

import { type AccessBus, startAccessBus } from '../src/access/listener';
import { createApp } from '../src/app';
import type { DatabaseHandle } from '../src/db/database';
import { runMigrations } from '../src/db/migrate';
import { accessSink, buildDeps, createInstance } from '../src/deps';
import { readAssetFromNodeModules } from '../src/docs/read-node-modules';
import { createLogger } from '../src/lib/logger';
import { createRateLimitStore } from '../src/rate-limit/stores';
import { ensureSigningKey } from '../src/services/keys';
import { createTestClock, TEST_DATABASE_URL, type TestClock, testConfig, testHasher } from './helpers';

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
  const config = testConfig({ ...env, ...(listenUrl ? { DATABASE_LISTEN_URL: listenUrl } : {}) });
  const logger = createLogger(config.LOG_LEVEL);
  const instance = createInstance(config, { hasher: testHasher(), clock, logger });
  const { db } = database;
  const bus = await startAccessBus(config, database, { sink: accessSink(instance, db), logger });
  await ensureSigningKey({ ...instance, db, access: bus });
  const store = await createRateLimitStore(config, { db, logger, clock, sweep: false });
  const deps = buildDeps(instance, {
    db,
    access: bus,
    rateLimits: store.rateLimits,
    readAsset: readAssetFromNodeModules,
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

/**
 * A database of the test's own, migrated: a fresh PostgreSQL database when the suite runs on PostgreSQL
 * (TEST_DATABASE_URL), else an in-memory PGlite (≈2 s and ≈200 MB: one per test file at most).
 */
export async function isolatedDatabase(tag: string): Promise<DatabaseHandle & { url?: string; drop(): Promise<void> }> {
  if (TEST_DATABASE_URL) return isolatedPostgresDatabase(tag);
  const { createPgliteDb } = await import('../src/db/client-pglite');
  const handle = await createPgliteDb();
  await runMigrations(handle);
  return { ...handle, drop: () => handle.close() };
}

/** A fresh PostgreSQL database even on a PGlite run (PostgreSQL runs wherever this suite runs). */
export async function isolatedPostgresDatabase(
  tag: string,
): Promise<DatabaseHandle & { url: string; drop(): Promise<void> }> {
  const { createPostgresClient, createPostgresDb } = await import('../src/db/client-postgres');
  const adminUrl = TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `hpa_test_${tag}_${process.pid}_${Date.now().toString(36)}`;
  const admin = createPostgresClient(adminUrl, 1);
  await admin.unsafe(`create database "${name}"`);
  const url = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).href;
  const handle = createPostgresDb(url);
  await runMigrations(handle);
  return {
    ...handle,
    url,
    drop: async () => {
      await handle.close();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}
