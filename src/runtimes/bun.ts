/**
 * The Bun entry: `bun run start`. Reads the environment, opens PostgreSQL (DATABASE_URL) or the
 * embedded PGlite, applies pending migrations, serves the app, and shuts down gracefully.
 */
import { getConnInfo } from 'hono/bun';
import { createApp } from '../app';
import { ConfigError, parseConfig } from '../config';
import { runMigrations } from '../db/migrate';
import { systemClock } from '../deps';
import { createLogger } from '../lib/logger';
import { createBunHasher } from './bun-hasher';
import { openDatabase } from './open-database';
import { createRateLimitStore } from './rate-limit-store';
import { readAssetFromNodeModules } from './read-asset-fs';
import { standaloneFiles } from './standalone';

const SHUTDOWN_GRACE_MS = 15_000; // in-flight requests get this long to finish after SIGTERM

async function main() {
  let parsed: ReturnType<typeof parseConfig>;
  try {
    parsed = parseConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
  const { config, generatedSecret } = parsed;
  const logger = createLogger(config.LOG_LEVEL);
  if (generatedSecret) {
    logger.warn('SECRET_KEY is not set: using a random key, so tokens will not survive a restart');
  }

  // Bun exits on an unhandled rejection. A stray one (say, from a connection dropped while idle) is a bug
  // to log and fix, not a reason to take down every request in flight.
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason instanceof Error ? reason.name : typeof reason });
  });

  const database = await openDatabase(config);
  const embedded = standaloneFiles(); // migrations and docs assets inside a `bun run build:binary` executable
  await runMigrations(database, embedded?.migrationsFolder);
  const rateLimitStore = await createRateLimitStore(config, { db: database.db, logger });
  const hasher = createBunHasher({ cost: config.BCRYPT_COST });
  const app = createApp({
    db: database.db,
    hasher,
    config,
    clock: systemClock,
    logger,
    readAsset: embedded?.readAsset ?? readAssetFromNodeModules,
    rateLimits: rateLimitStore.rateLimits,
    remoteAddress: (c) => getConnInfo(c).remote.address,
  });

  const server = Bun.serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT });
  logger.info('listening', {
    url: server.url.href,
    database: database.driver,
    rateLimitStore: config.RATE_LIMIT_STORE,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    await server.stop(); // stops accepting, resolves once in-flight requests have finished
    hasher.close();
    await rateLimitStore.close();
    await database.close();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
