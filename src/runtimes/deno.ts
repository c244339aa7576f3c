/**
 * The Deno entry: `bun run start:deno` (or `deno task start`). Deno runs these TypeScript sources as they
 * are, with npm packages from ./node_modules (deno.json: nodeModulesDir "manual", sloppy imports for the
 * extensionless relative imports). Same configuration, databases and migrations as the Bun entry;
 * bcrypt is bcryptjs on a pool of worker threads; graceful shutdown on SIGTERM/SIGINT.
 */

import { readAssetFromNodeModules } from '../docs/read-node-modules';
import { createPortableHasher } from '../hashing/portable';
import { listeningUrl, runServer } from './bootstrap';

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

await runServer({
  env: Deno.env.toObject(),
  parts: {
    createHasher: (cost) => createPortableHasher({ cost }),
    readAsset: readAssetFromNodeModules,
    // app.fetch(request, info) below makes the serve info the context's env.
    remoteAddress: (c) => (c.env as DenoServeInfo | undefined)?.remoteAddr?.hostname,
  },
  async listen({ app, config }) {
    const server = Deno.serve({ hostname: config.HOST, port: config.PORT, onListen: () => {} }, (request, info) =>
      app.fetch(request, info),
    );
    // shutdown() stops accepting and resolves once in-flight requests have finished.
    return { url: listeningUrl(config.HOST, server.addr.port), stop: () => server.shutdown() };
  },
  onSignal: (signal, handler) => Deno.addSignalListener(signal, handler),
  onUnhandledRejection: (handler) =>
    globalThis.addEventListener('unhandledrejection', (event) => {
      event.preventDefault();
      handler((event as Event & { reason?: unknown }).reason);
    }),
  exit: (code) => Deno.exit(code),
  describe: { runtime: `deno ${Deno.version.deno}` },
});
