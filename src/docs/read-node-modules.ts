import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { ReadAsset } from './assets';

const require = createRequire(import.meta.url);

/** Docs assets from node_modules, for runtimes with a filesystem (Bun, Node, Deno). */
export const readAssetFromNodeModules: ReadAsset = async (module) => {
  try {
    return await readFile(require.resolve(module), 'utf8');
  } catch {
    return null;
  }
};
