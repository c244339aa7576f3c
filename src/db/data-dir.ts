/**
 * Files the service keeps in its data directory (PGLITE_DIR) beside the embedded database: the one-time
 * token for the first admin (read by the CLI while the service holds the directory) and the development
 * signing key. Each is private to the service's OS user (mode 0600): whoever can read them can read the
 * database files beside them anyway.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ADMIN_BOOTSTRAP_FILE = 'admin-bootstrap.json';
export const DEV_SECRET_KEY_FILE = 'dev-secret-key';
const PRIVATE = 0o600;

/** What a running service on PGlite tells the CLI so that `create-admin` can reach it. */
export interface AdminBootstrapFile {
  /** Where the CLI reaches the service from this machine (loopback when it listens on every interface). */
  url: string;
  token: string;
  pid: number;
}

/** Writes a file only the service's user can read, replacing any earlier one; returns its path. */
function writePrivateFile(dir: string, name: string, content: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(resolve(dir), name);
  // Removed first: `mode` applies only when the file is created, and an old file may have looser bits.
  rmSync(path, { force: true });
  writeFileSync(path, content, { mode: PRIVATE, flag: 'wx' });
  chmodSync(path, PRIVATE); // the umask may have taken bits away from `mode`, never added: this is exact
  return path;
}

export const adminBootstrapPath = (dir: string) => join(resolve(dir), ADMIN_BOOTSTRAP_FILE);

export function writeAdminBootstrapFile(dir: string, file: AdminBootstrapFile): string {
  return writePrivateFile(dir, ADMIN_BOOTSTRAP_FILE, `${JSON.stringify(file)}\n`);
}

/** The running service's bootstrap, or null when it offers none (an admin exists, or it is not running). */
export function readAdminBootstrapFile(dir: string): AdminBootstrapFile | null {
  try {
    const file = JSON.parse(readFileSync(adminBootstrapPath(dir), 'utf8')) as Partial<AdminBootstrapFile>;
    if (typeof file.url !== 'string' || typeof file.token !== 'string' || typeof file.pid !== 'number') return null;
    return { url: file.url, token: file.token, pid: file.pid };
  } catch {
    return null; // absent or unreadable: either way there is nothing to use
  }
}

export function removeAdminBootstrapFile(dir: string): void {
  rmSync(adminBootstrapPath(dir), { force: true });
}

/**
 * The development signing key: read from the data directory, or made by `generate` and saved there on the
 * first start, so tokens survive a restart (and every `bun run dev` reload).
 */
export function loadOrCreateDevSecretKey(dir: string, generate: () => string): { key: string; path: string } {
  const path = join(resolve(dir), DEV_SECRET_KEY_FILE);
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (key.length > 0) return { key, path };
  }
  const key = generate();
  writePrivateFile(dir, DEV_SECRET_KEY_FILE, `${key}\n`);
  return { key, path };
}
