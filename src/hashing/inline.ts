/**
 * bcryptjs in the request, asynchronously, for runtimes without threads (Workers): other requests of the
 * isolate interleave with a hash. `$2b$` hashes that Bun, Node, Deno and passlib verify (passwords ≤ 72 bytes).
 * There is no queue to bound here (each request hashes on its own, and the platform bounds its CPU time), but a
 * request that has been answered or whose client has gone does not start one.
 */
import bcrypt from 'bcryptjs';
import { isBcryptHash } from './bcrypt';
import type { PasswordHasher } from './hasher';

export function createInlineHasher(cost: number): PasswordHasher {
  return {
    hash: async (password, options) => {
      options?.signal?.throwIfAborted();
      return bcrypt.hash(password, cost);
    },
    verify: async (password, hash, options) => {
      if (!isBcryptHash(hash)) return false; // garbage never reaches bcryptjs
      options?.signal?.throwIfAborted();
      return bcrypt.compare(password, hash).catch(() => false);
    },
  };
}
