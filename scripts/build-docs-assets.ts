/**
 * Copies exactly the files /docs and /redoc load (src/docs/assets.ts) into one folder, each under its
 * package path (`swagger-ui-dist/swagger-ui.css`), for runtimes without node_modules: the Workers static
 * assets (`[assets]` in wrangler.toml) and the single binary (embedded with `--asset`).
 * `bun scripts/build-docs-assets.ts [outDir]`, default dist/docs-assets.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DOCS_ASSETS } from '../src/docs/assets';

export const DOCS_ASSETS_DIR = resolve(import.meta.dir, '../dist/docs-assets');

export async function buildDocsAssets(outDir = DOCS_ASSETS_DIR): Promise<string[]> {
  await rm(outDir, { recursive: true, force: true });
  const written: string[] = [];
  for (const { module } of Object.values(DOCS_ASSETS)) {
    const target = join(outDir, module);
    await mkdir(dirname(target), { recursive: true });
    await Bun.write(target, Bun.file(Bun.resolveSync(module, import.meta.dir)));
    written.push(module);
  }
  return written;
}

if (import.meta.main) {
  const outDir = resolve(process.argv[2] ?? DOCS_ASSETS_DIR);
  const written = await buildDocsAssets(outDir);
  console.log(`docs assets in ${outDir}: ${written.join(', ')}`);
}
