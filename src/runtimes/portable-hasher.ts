/**
 * bcrypt for Node and Deno: bcryptjs (pure JavaScript) on the shared worker pool (hash-pool.ts).
 */
import { createHashPool, type HashPool, type HashPoolOptions } from './hash-pool';

// Next to this module: the .ts source under Deno, dist/runtimes/portable-hash-worker.js in the Node build.
const WORKER_URL = new URL(`./portable-hash-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);

export const createPortableHasher = (options: HashPoolOptions): HashPool => createHashPool(WORKER_URL, options);
