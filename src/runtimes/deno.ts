/**
 * The Deno entry: `bun run start:deno` (or `deno task start`). Deno runs these TypeScript sources as they
 * are, with npm packages from ./node_modules (deno.json: nodeModulesDir "manual", sloppy imports for the
 * extensionless relative imports). Same configuration, databases and migrations as the Bun entry;
 * bcrypt is bcryptjs on a pool of worker threads; graceful shutdown on SIGTERM/SIGINT.
 */
import { ConfigError } from '../config';
import { bootstrap, listeningUrl } from './bootstrap';
import { createPortableHasher } from './portable-hasher';
import { readAssetFromNodeModules } from './read-asset-fs';

// The part of the Deno namespace this entry uses; the project's type-check runs with Bun's types only.
interface DenoServeInfo {
  remoteAddr: { hostname: string; port: number };
}
interface DenoHttpServer {
  addr: { hostname: string; port: number };
  shutdown(): Promise<void>;
}
declare const Deno: {
  version: { deno: string };
  env: { toObject(): Record<string, string> };
  serve(
    options: { hostname: string; port: number; onListen?: (addr: unknown) => void },
    handler: (request: Request, info: DenoServeInfo) => Response | Promise<Response>,
  ): DenoHttpServer;
  addSignalListener(signal: 'SIGTERM' | 'SIGINT', handler: () => void): void;
  exit(code: number): never;
};

const SHUTDOWN_GRACE_MS = 15_000; // in-flight requests get this long to finish after SIGTERM

async function main() {
  let service: Awaited<ReturnType<typeof bootstrap>>;
  try {
    service = await bootstrap(Deno.env.toObject(), {
      createHasher: (cost) => createPortableHasher({ cost }),
      readAsset: readAssetFromNodeModules,
      // app.fetch(request, info) below makes the serve info the context's env.
      remoteAddress: (c) => (c.env as DenoServeInfo | undefined)?.remoteAddr?.hostname,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    Deno.exit(1);
  }
  const { app, config, logger, database } = service;

  // Deno exits on an unhandled rejection. A stray one (say, from a connection dropped while idle) is a bug
  // to log and fix, not a reason to take down every request in flight.
  globalThis.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    const { reason } = event as Event & { reason?: unknown };
    logger.error('unhandled rejection', { error: reason instanceof Error ? reason.name : typeof reason });
  });

  const server = Deno.serve({ hostname: config.HOST, port: config.PORT, onListen: () => {} }, (request, info) =>
    app.fetch(request, info),
  );
  logger.info('listening', {
    url: listeningUrl(config.HOST, server.addr.port),
    database: database.driver,
    rateLimitStore: config.RATE_LIMIT_STORE,
    runtime: `deno ${Deno.version.deno}`,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    const timer = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      Deno.exit(1);
    }, SHUTDOWN_GRACE_MS);
    await server.shutdown(); // stops accepting, resolves once in-flight requests have finished
    await service.close();
    clearTimeout(timer);
    logger.info('stopped');
    Deno.exit(0);
  };
  Deno.addSignalListener('SIGTERM', () => void shutdown('SIGTERM'));
  Deno.addSignalListener('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
});
