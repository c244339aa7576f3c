/**
 * The Bun entry: `bun run start` (and the single binary). PostgreSQL (DATABASE_URL) or the embedded
 * PGlite, pending migrations applied, Bun.serve, graceful shutdown.
 */
import { getConnInfo } from 'hono/bun';
import { runServer } from './bootstrap';
import { createBunHasher } from './bun-hasher';
import { readAssetFromNodeModules } from './read-asset-fs';
import { standaloneFiles } from './standalone';

const embedded = standaloneFiles(); // migrations and docs assets inside a `bun run build:binary` executable

await runServer({
  env: process.env,
  parts: {
    createHasher: (cost) => createBunHasher({ cost }),
    readAsset: embedded?.readAsset ?? readAssetFromNodeModules,
    remoteAddress: (c) => getConnInfo(c).remote.address,
    migrationsFolder: embedded?.migrationsFolder,
  },
  async listen({ app, config }) {
    const server = Bun.serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT });
    return { url: server.url.href, stop: () => server.stop() };
  },
  onSignal: (signal, handler) => process.on(signal, handler),
  onUnhandledRejection: (handler) => process.on('unhandledRejection', handler),
  exit: (code) => process.exit(code),
});
