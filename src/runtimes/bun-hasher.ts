/**
 * bcrypt for Bun: `Bun.password`'s synchronous bcrypt on the shared worker pool (hash-pool.ts), never its
 * async API, which would queue the hashes in front of WebCrypto's HMACs.
 */
import { createHashPool, type HashPool, type HashPoolOptions } from './hash-pool';

const WORKER_URL = new URL('./bun-hash-worker.ts', import.meta.url);

export const createBunHasher = (options: HashPoolOptions): HashPool => createHashPool(WORKER_URL, options);
