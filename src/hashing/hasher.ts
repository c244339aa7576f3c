/**
 * Password hashing is injected so every runtime can bring its own bcrypt:
 * Bun uses Bun.password, Node/Deno/Workers a portable bcrypt. Hashes are `$2a$`/`$2b$`
 * bcrypt strings, interchangeable between runtimes for passwords up to 72 UTF-8 bytes.
 */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
}
