/**
 * The Bun entry: `bun run start` (and the single binary). PostgreSQL (DATABASE_URL) or the embedded
 * PGlite, pending migrations applied, Bun.serve, graceful shutdown.
 */
import { join } from 'node:path';
import { getConnInfo } from 'hono/bun';
import type { ReadAsset } from '../docs/assets';
import { readAssetFromNodeModules } from '../docs/read-node-modules';
import { createBunHasher } from '../hashing/bun';
import { runServer } from './bootstrap';

/**
 * What a `bun build --compile` binary (scripts/build-binary.ts) carries inside itself: the migrations and
 * the docs assets, embedded with `--asset` under the binary's virtual root (`/$bunfs/root/drizzle`,
 * `/$bunfs/root/docs-assets/<package path>`). PGlite finds its own WASM there too (embedded the same way).
 * Outside a binary this is null and the entry uses ./drizzle and node_modules.
 */
function embeddedFiles(): { migrationsFolder: string; readAsset: ReadAsset } | null {
  if (!Bun.isStandaloneExecutable) return null;
  // import.meta.dir is the binary's virtual root: the bundle is one module there, whatever the source layout.
  const root = import.meta.dir;
  return {
    migrationsFolder: join(root, 'drizzle'),
    readAsset: async (module) => {
      const file = Bun.file(join(root, 'docs-assets', module));
      return (await file.exists()) ? file.text() : null;
    },
  };
}

const embedded = embeddedFiles();

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
