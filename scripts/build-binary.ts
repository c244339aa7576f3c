/**
 * `bun run build:binary`: one self-contained executable, dist/hono-postgres-auth, that needs neither Bun
 * nor node_modules nor the sources. Besides the bundled code it embeds, under its virtual root:
 * - the bcrypt worker (a second entrypoint: src/hashing/bun.ts starts it by URL),
 * - drizzle/ (the migrations, applied at start; src/runtimes/bun.ts points the migrator there),
 * - docs-assets/ (exactly the files of src/docs/assets.ts, for /docs and /redoc),
 * - PGlite's WASM and data files, which PGlite looks for next to its own (bundled) module.
 */
import { rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { buildDocsAssets } from './build-docs-assets';

const ROOT = resolve(import.meta.dir, '..');
export const BINARY_PATH = join(ROOT, 'dist/hono-postgres-auth');
const STAGED_DOCS_ASSETS = join(ROOT, 'dist/binary/docs-assets');
const PGLITE_FILES = ['pglite.wasm', 'pglite.data', 'initdb.wasm'];

export async function buildBinary(outfile = BINARY_PATH): Promise<string> {
  await buildDocsAssets(STAGED_DOCS_ASSETS);
  const pgliteDist = join(ROOT, 'node_modules/@electric-sql/pglite/dist');
  // A directory asset keeps its own name under the root; a file asset is placed by its basename.
  const assets = [join(ROOT, 'drizzle'), STAGED_DOCS_ASSETS, ...PGLITE_FILES.map((file) => join(pgliteDist, file))];
  const result = await Bun.build({
    entrypoints: [join(ROOT, 'src/runtimes/bun.ts'), join(ROOT, 'src/hashing/bun-worker.ts')],
    compile: {
      outfile,
      assets,
      // A bunfig.toml or tsconfig.json in the directory it runs from has nothing to say to the binary.
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
    minify: true,
  });
  if (!result.success) throw new AggregateError(result.logs, 'bun build --compile failed');
  await rm(join(ROOT, 'dist/binary'), { recursive: true, force: true });
  return outfile;
}

if (import.meta.main) {
  console.log(`built ${relative(ROOT, await buildBinary())}`);
}
