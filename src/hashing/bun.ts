/**
 * bcrypt for Bun: `Bun.password`'s synchronous bcrypt on the shared worker pool (pool.ts), never its
 * async API, which would queue the hashes in front of WebCrypto's HMACs.
 */
import { createHashPool, type HashPool, type HashPoolOptions } from './pool';

// In a `bun build --compile` binary the bundle is one module at the virtual root and the worker, a second
// entrypoint, keeps its path below src/ (scripts/build-binary.ts); from the sources it sits beside this file.
const WORKER_URL = new URL(Bun.isStandaloneExecutable ? './hashing/bun-worker.ts' : './bun-worker.ts', import.meta.url);

export const createBunHasher = (options: HashPoolOptions): HashPool => createHashPool(WORKER_URL, options);
