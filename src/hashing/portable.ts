/**
 * bcrypt for Node and Deno: bcryptjs (pure JavaScript) on the shared worker pool (pool.ts).
 */
import { createHashPool, type HashPool, type HashPoolOptions } from './pool';

// Written as a path from src/hashing/ or dist/runtimes/ alike: under Deno this module runs as the source
// (src/hashing/portable.ts), under Node it is bundled into dist/runtimes/node.js, and the worker is built
// beside it to dist/hashing/portable-worker.js (package.json `build:node`, `--root src`).
const WORKER_URL = new URL(
  `../hashing/portable-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`,
  import.meta.url,
);

export const createPortableHasher = (options: HashPoolOptions): HashPool => createHashPool(WORKER_URL, options);
