/**
 * Password hashing is injected so every runtime can bring its own bcrypt:
 * Bun uses Bun.password, Node/Deno/Workers a portable bcrypt. Hashes are `$2a$`/`$2b$`
 * bcrypt strings, interchangeable between runtimes for passwords up to 72 UTF-8 bytes.
 */
export interface PasswordHasher {
  hash(password: string, options?: HashOptions): Promise<string>;
  verify(password: string, hash: string, options?: HashOptions): Promise<boolean>;
}

/**
 * What a request tells the hasher about its job, so a pool can refuse work it cannot finish in time
 * (pool.ts) and drop work nobody waits for. Every field is optional: the CLI passes none.
 */
export interface HashOptions {
  /** Aborted once the request has been answered or its client has gone: the job is dropped, the caller rejected. */
  signal?: AbortSignal;
  /** When the result stops being useful, in `performance.now()` milliseconds (the request's timeout). */
  deadline?: number;
  /** Who the job is for (a client address, an account): each may hold only a small share of the queue. */
  owners?: readonly string[];
  /** Served before the others: a client that has proven itself before (an address the account logged in from). */
  preferred?: boolean;
}
