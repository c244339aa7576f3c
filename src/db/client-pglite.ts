import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { DescribedError, describeError } from '../lib/logger';
import type { Tracer } from '../lib/tracing';
import type { Database, DatabaseHandle } from './database';
import { createQueryObserver, observePglite } from './observed';
import * as schema from './schema';

/** The lock file inside a data directory (a backup of the directory carries its taker's). */
export const LOCK_FILE = '.hono-postgres-auth.lock';
const HEARTBEAT_MS = 2_000; // the holder touches its lock file this often…
const STALE_MS = 30_000; // …and a lock untouched this long has no holder (PGlite's first start blocks for ~5 s)
const heldDirs = new Set<string>();

export class DataDirLockedError extends DescribedError {
  override name = 'DataDirLockedError';
}

/**
 * Opens the embedded database. With a directory it persists there, guarded by a lock file:
 * PGlite has no cross-process lock, and two processes on one directory silently lose writes.
 * Without one (tests) it lives in memory.
 */
export async function createPgliteDb(dataDir?: string, options: { tracer?: Tracer } = {}): Promise<DatabaseHandle> {
  const release = dataDir === undefined ? () => {} : await acquireDirLock(resolve(dataDir));
  let client: PGlite;
  try {
    client = dataDir === undefined ? new PGlite() : new PGlite(resolve(dataDir));
    await client.waitReady;
  } catch (error) {
    release();
    throw error;
  }
  const handle = pgliteHandle(client, options);
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
export function pgliteHandle(
  client: PGlite,
  { tracer }: { tracer?: Tracer } = {},
): Extract<DatabaseHandle, { driver: 'pglite' }> {
  const observer = createQueryObserver(1, tracer);
  const db = drizzle({ client: observePglite(client, observer), schema, casing: 'snake_case' }) as unknown as Database;
  return { db, driver: 'pglite', client, stats: observer.stats, close: () => client.close() };
}

/** What a lock file says about its holder. */
interface LockRecord {
  /** Random per acquisition: tells this holder from any other, whatever their pids. */
  instance: string;
  pid: number;
  host: string;
  /** The kernel's boot id: equal only on the same machine since the same boot. */
  bootId: string | null;
  /** The holder's pid namespace (`pid:[4026531836]`): pids compare only within one. */
  pidNamespace: string | null;
  startedAt: string;
}

const readOptional = (read: () => string): string | null => {
  try {
    return read().trim() || null;
  } catch {
    return null; // not Linux, or /proc is hidden: only the heartbeat can tell then
  }
};

function whoAmI(): Omit<LockRecord, 'instance' | 'startedAt'> {
  return {
    pid: process.pid,
    host: hostname(),
    bootId: readOptional(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidNamespace: readOptional(() => readlinkSync('/proc/self/ns/pid')),
  };
}

export interface DirLockTimings {
  heartbeatMs?: number;
  staleMs?: number;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Takes the data directory's lock, or throws DataDirLockedError naming its holder. The lock is a file the
 * holder keeps touching (a heartbeat, every 2 s); it says who holds it: a random instance id, the pid, the
 * host, the kernel's boot id and the pid namespace. Whether a holder is gone is decided only when it can be
 * known:
 * - same boot and same pid namespace: the pid is checked (a pid is unique within a namespace, so the holder
 *   is gone when no process has it, or when it is this very process: an exec'd restart, `bun --watch`);
 * - anywhere else (another container, whose pid 1 is not ours, another machine on a shared volume, a system
 *   without /proc): its heartbeat is watched; a heartbeat that moves means a live holder and a refusal at
 *   once; one that stays still for 30 s means none.
 * So two containers on one volume cannot both open it, which "pid equals mine means stale" allowed (every
 * container's main process is pid 1), and a crash never blocks the directory for longer than 30 s.
 * Returns the release, which also runs at exit.
 */
export async function acquireDirLock(dir: string, timings: DirLockTimings = {}): Promise<() => void> {
  const { heartbeatMs = HEARTBEAT_MS, staleMs = STALE_MS } = timings;
  if (heldDirs.has(dir)) throw new DataDirLockedError(`PGLITE_DIR ${dir} is already open in this process`);
  mkdirSync(dir, { recursive: true });
  const lockPath = join(dir, LOCK_FILE);
  const mine: LockRecord = { ...whoAmI(), instance: crypto.randomUUID(), startedAt: new Date().toISOString() };
  const text = `${JSON.stringify(mine)}\n`;

  let tookOver = false;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, text);
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) {
        throw new DataDirLockedError(`PGLITE_DIR ${dir}: cannot take the lock ${lockPath} (${describeError(error)})`);
      }
    }
    const held = readOptional(() => readFileSync(lockPath, 'utf8'));
    if (held === null) continue; // released meanwhile
    const verdict = await judge(lockPath, held, { heartbeatMs, staleMs });
    if (verdict !== 'stale') {
      throw new DataDirLockedError(
        `PGLITE_DIR ${dir} is in use by ${verdict}; stop it, or set PGLITE_DIR or DATABASE_URL`,
      );
    }
    // Remove exactly the lock judged stale: one another starter replaced meanwhile is no longer stale.
    if (readOptional(() => readFileSync(lockPath, 'utf8')) === held) {
      try {
        unlinkSync(lockPath);
      } catch {}
    }
    tookOver = true;
  }

  const isMine = () => readOptional(() => readFileSync(lockPath, 'utf8')) === text.trim();
  if (tookOver) {
    // Two starters that judged one stale lock at the same moment could both replace it; the later write wins,
    // and the other sees it here and steps back before it opens anything.
    await sleep(Math.min(heartbeatMs / 2, 250));
    if (!isMine()) throw new DataDirLockedError(`PGLITE_DIR ${dir} was taken by another process at the same moment`);
  }

  heldDirs.add(dir);
  const heartbeat = setInterval(() => {
    if (!isMine()) {
      // Someone judged this process gone (its event loop stood still for longer than the stale time) and took
      // the directory: writing on would lose data. Stop loudly.
      clearInterval(heartbeat);
      throw new DataDirLockedError(`PGLITE_DIR ${dir}: the lock was taken over by another process; stopping`);
    }
    const now = new Date();
    try {
      utimesSync(lockPath, now, now);
    } catch {}
  }, heartbeatMs);
  (heartbeat as { unref?: () => void }).unref?.();

  const release = () => {
    if (!heldDirs.delete(dir)) return;
    clearInterval(heartbeat);
    process.off('exit', release);
    try {
      if (isMine()) unlinkSync(lockPath);
    } catch {
      // Already gone; nothing to release.
    }
  };
  process.on('exit', release);
  return release;
}

/** 'stale' when the lock's holder is surely gone; otherwise a description of the live holder. */
async function judge(lockPath: string, held: string, { heartbeatMs, staleMs }: Required<DirLockTimings>) {
  const me = whoAmI();
  const holder = parseLock(held);
  if (holder === 'legacy') {
    // An older version's lock: just a pid, no heartbeat. Only its pid can tell, and only in our namespace.
    const pid = Number.parseInt(held, 10);
    return pid !== me.pid && !isAlive(pid) ? 'stale' : `process ${pid} (an older version's lock file)`;
  }
  const sameNamespace = holder?.bootId && holder.bootId === me.bootId && holder.pidNamespace === me.pidNamespace;
  if (holder && sameNamespace && holder.pidNamespace) {
    if (holder.pid === me.pid || !isAlive(holder.pid)) return 'stale';
  }
  const description = holder
    ? `process ${holder.pid} on ${holder.host}${sameNamespace ? '' : ' (in another container, pid namespace or machine)'}`
    : 'another process';
  // The heartbeat decides: moving is alive, still for staleMs is gone.
  const mtime = () => readOptional(() => String(statSync(lockPath).mtimeMs));
  const first = mtime();
  if (first === null) return 'stale'; // released meanwhile
  for (;;) {
    const age = Date.now() - Number(first);
    if (age > staleMs) return 'stale';
    const now = mtime();
    if (now !== first) return now === null ? 'stale' : description;
    if (sameNamespace) return description; // its pid is alive here: no need to watch
    await sleep(Math.min(250, heartbeatMs / 4));
  }
}

function parseLock(text: string): LockRecord | 'legacy' | null {
  if (/^\d+\s*$/.test(text)) return 'legacy';
  try {
    const record = JSON.parse(text) as Partial<LockRecord>;
    if (typeof record.instance === 'string' && typeof record.pid === 'number') return record as LockRecord;
  } catch {}
  return null; // half written (a crash between create and write) or foreign: only the heartbeat can tell
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
