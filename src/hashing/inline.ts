/**
 * bcryptjs in the request, asynchronously, for runtimes without threads (Workers): other requests of the
 * isolate interleave with a hash. `$2b$` hashes that Bun, Node, Deno and passlib verify (passwords ≤ 72 bytes).
 */
import bcrypt from 'bcryptjs';
import { isBcryptHash } from './bcrypt';
import type { PasswordHasher } from './hasher';

export function createInlineHasher(cost: number): PasswordHasher {
  return {
    hash: (password) => bcrypt.hash(password, cost),
    verify: async (password, hash) => {
      if (!isBcryptHash(hash)) return false; // garbage never reaches bcryptjs
      return bcrypt.compare(password, hash).catch(() => false);
    },
  };
}
