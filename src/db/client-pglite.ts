import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { DescribedError, describeError } from '../lib/logger';
import type { Database, DatabaseHandle } from './database';
import * as schema from './schema';

const LOCK_FILE = '.hono-postgres-auth.lock';
const heldDirs = new Set<string>();

export class DataDirLockedError extends DescribedError {
  override name = 'DataDirLockedError';
}

/**
 * Opens the embedded database. With a directory it persists there, guarded by a lock file:
 * PGlite has no cross-process lock, and two processes on one directory silently lose writes.
 * Without one (tests) it lives in memory.
 */
export async function createPgliteDb(dataDir?: string): Promise<DatabaseHandle> {
  const release = dataDir === undefined ? () => {} : acquireDirLock(resolve(dataDir));
  let client: PGlite;
  try {
    client = dataDir === undefined ? new PGlite() : new PGlite(resolve(dataDir));
    await client.waitReady;
  } catch (error) {
    release();
    throw error;
  }
  const handle = pgliteHandle(client);
  return {
    ...handle,
    close: async () => {
      try {
        await handle.close();
      } finally {
        release();
      }
    },
  };
}

/** A PGlite client as the app uses one: Drizzle over it, the client itself for LISTEN, and how to close it. */
export function pgliteHandle(client: PGlite): Extract<DatabaseHandle, { driver: 'pglite' }> {
  const db = drizzle({ client, schema, casing: 'snake_case' }) as unknown as Database;
  return { db, driver: 'pglite', client, close: () => client.close() };
}

function acquireDirLock(dir: string): () => void {
  if (heldDirs.has(dir)) throw new DataDirLockedError(`PGLITE_DIR ${dir} is already open in this process`);
  mkdirSync(dir, { recursive: true });
  const lockPath = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw new DataDirLockedError(`PGLITE_DIR ${dir}: cannot take the lock ${lockPath} (${describeError(error)})`);
      }
      const holder = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
      // Our own pid with no open handle means a restart by exec (e.g. `bun --watch`): the lock is stale.
      if (holder !== process.pid && isAlive(holder)) {
        throw new DataDirLockedError(
          `PGLITE_DIR ${dir} is in use by process ${holder}; stop it, or set PGLITE_DIR or DATABASE_URL`,
        );
      }
      unlinkSync(lockPath);
    }
  }
  heldDirs.add(dir);
  const release = () => {
    if (!heldDirs.delete(dir)) return;
    process.off('exit', release);
    try {
      unlinkSync(lockPath);
    } catch {
      // Already gone; nothing to release.
    }
  };
  process.on('exit', release);
  return release;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
