/**
 * The Node entry (Node 20+): `bun run start:node`, which builds dist/runtimes/node.js and runs it with
 * `node`. Same configuration, databases and migrations as the Bun entry; bcrypt is bcryptjs on a pool
 * of worker threads; graceful shutdown on SIGTERM/SIGINT.
 *
 * The build keeps this file's depth (dist/runtimes/ mirrors src/runtimes/), so the migrator finds
 * ./drizzle at `../../drizzle` from the built file exactly as from the source.
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { ConfigError } from '../config';
import { bootstrap, listeningUrl } from './bootstrap';
import { createPortableHasher } from './portable-hasher';
import { readAssetFromNodeModules } from './read-asset-fs';

const SHUTDOWN_GRACE_MS = 15_000; // in-flight requests get this long to finish after SIGTERM

async function main() {
  let service: Awaited<ReturnType<typeof bootstrap>>;
  try {
    service = await bootstrap(process.env, {
      createHasher: (cost) => createPortableHasher({ cost }),
      readAsset: readAssetFromNodeModules,
      remoteAddress: (c) => getConnInfo(c).remote.address,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
  const { app, config, logger, database } = service;

  // Node exits on an unhandled rejection. A stray one (say, from a connection dropped while idle) is a bug
  // to log and fix, not a reason to take down every request in flight.
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled rejection', { error: reason instanceof Error ? reason.name : typeof reason });
  });

  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () => resolve(started));
    started.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  logger.info('listening', {
    url: listeningUrl(config.HOST, port),
    database: database.driver,
    rateLimitStore: config.RATE_LIMIT_STORE,
    runtime: `node ${process.version}`,
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
    // close() stops accepting and, since Node 19, drops idle keep-alive connections; it calls back once
    // in-flight requests have finished.
    await new Promise<void>((resolve) => server.close(() => resolve()));
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
