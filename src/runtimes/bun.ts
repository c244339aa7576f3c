/**
 * The Bun entry: `bun run start` (and the single binary). Reads the environment, opens PostgreSQL
 * (DATABASE_URL) or the embedded PGlite, applies pending migrations, serves the app, and shuts down
 * gracefully.
 */
import { getConnInfo } from 'hono/bun';
import { ConfigError } from '../config';
import { bootstrap } from './bootstrap';
import { createBunHasher } from './bun-hasher';
import { readAssetFromNodeModules } from './read-asset-fs';
import { standaloneFiles } from './standalone';

const SHUTDOWN_GRACE_MS = 15_000; // in-flight requests get this long to finish after SIGTERM

async function main() {
  const embedded = standaloneFiles(); // migrations and docs assets inside a `bun run build:binary` executable
  let service: Awaited<ReturnType<typeof bootstrap>>;
  try {
    service = await bootstrap(process.env, {
      createHasher: (cost) => createBunHasher({ cost }),
      readAsset: embedded?.readAsset ?? readAssetFromNodeModules,
      remoteAddress: (c) => getConnInfo(c).remote.address,
      migrationsFolder: embedded?.migrationsFolder,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
  const { app, config, logger, database } = service;

  // Bun exits on an unhandled rejection. A stray one (say, from a connection dropped while idle) is a bug
  // to log and fix, not a reason to take down every request in flight.
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason instanceof Error ? reason.name : typeof reason });
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
    await service.close();
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
