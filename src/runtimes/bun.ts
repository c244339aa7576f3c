/**
 * The Bun entry: `bun run start` (and the single binary). PostgreSQL (DATABASE_URL) or the embedded
 * PGlite, pending migrations applied, Bun.serve, graceful shutdown. `cli <command>` runs the operator CLI
 * instead (so the binary carries it), `--help` and `--version` answer and exit.
 */
import { join } from 'node:path';
import { getConnInfo } from 'hono/bun';
import packageJson from '../../package.json' with { type: 'json' };
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
/** How this entry is run, for help texts: the binary by the path it was started with, else from the sources. */
const program = Bun.isStandaloneExecutable ? process.argv0 : 'bun src/runtimes/bun.ts';
const cli = Bun.isStandaloneExecutable ? `${program} cli` : 'bun run cli';

const HELP = `usage: ${program}                  serve the API (configuration from the environment and .env)
       ${program} cli <command>    the operator CLI: migrate, status, create-admin, … (\`${program} cli help\`)
       ${program} --version

Settings: .env.example lists every variable; the README's Configuration section explains each.`;

const [command, ...args] = process.argv.slice(2);
if (command === 'cli') {
  const { runCli } = await import('../cli/main');
  const migrateCommand = Bun.isStandaloneExecutable ? `${cli} migrate` : 'bun run db:migrate';
  process.exit(
    await runCli(args, {
      program: cli,
      migrateCommand,
      migrationsFolder: embedded?.migrationsFolder,
      env: process.env,
    }),
  );
}
if (command === '--help' || command === '-h') {
  console.log(HELP);
  process.exit(0);
}
if (command === '--version' || command === '-v') {
  console.log(`${packageJson.name} ${packageJson.version} (bun ${Bun.version})`);
  process.exit(0);
}
if (command !== undefined) {
  console.error(`unknown argument: ${command}\n\n${HELP}`);
  process.exit(2);
}

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
  cli,
});
