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
import { readAssetFromNodeModules } from '../docs/read-node-modules';
import { createPortableHasher } from '../hashing/portable';
import { listeningUrl, runServer } from './bootstrap';

await runServer({
  env: process.env,
  parts: {
    createHasher: (cost) => createPortableHasher({ cost }),
    readAsset: readAssetFromNodeModules,
    remoteAddress: (c) => getConnInfo(c).remote.address,
  },
  async listen({ app, config }) {
    const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const started = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () => resolve(started));
      started.once('error', reject);
    });
    const { port } = server.address() as AddressInfo;
    return {
      url: listeningUrl(config.HOST, port),
      // close() stops accepting and, since Node 19, drops idle keep-alive connections; it calls back once
      // in-flight requests have finished.
      stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },
  onSignal: (signal, handler) => process.on(signal, handler),
  onUnhandledRejection: (handler) => process.on('unhandledRejection', handler),
  exit: (code) => process.exit(code),
  describe: { runtime: `node ${process.version}` },
});
