/**
 * What a `bun build --compile` binary (scripts/build-binary.ts) carries inside itself: the migrations and
 * the docs assets, embedded with `--asset` under the binary's virtual root (`/$bunfs/root/drizzle`,
 * `/$bunfs/root/docs-assets/<package path>`). PGlite finds its own WASM there too (embedded the same way).
 * Outside a binary this is null and the entry uses ./drizzle and node_modules.
 */
import { join } from 'node:path';
import type { ReadAsset } from '../lib/docs-assets';

export interface StandaloneFiles {
  migrationsFolder: string;
  readAsset: ReadAsset;
}

export function standaloneFiles(): StandaloneFiles | null {
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
