/**
 * `backup <file>` and `restore <file> [--force]` (README "Backup and restore"), for the database the service
 * would use: on PostgreSQL, pg_dump's custom format (`-Fc`) and pg_restore, the client tools of the server's
 * major version (Debian's postgresql-client); on PGlite, its own dump of the data directory (a gzipped tar,
 * `dumpDataDir`/`loadDataDir`), taken and restored while no service holds the directory (its lock).
 *
 * Restore refuses a database or directory that holds anything, unless --force: a restore over a live
 * database by mistake would be the worst way to lose it.
 */
import { mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { acquireDirLock, createPgliteDb, DataDirLockedError, LOCK_FILE } from '../db/client-pglite';
import { createPostgresClient } from '../db/client-postgres';
import { DescribedError } from '../lib/logger';

const PG_DUMP_MAGIC = 'PGDMP'; // the first bytes of pg_dump's custom format
const GZIP_MAGIC = [0x1f, 0x8b];

export interface BackupTarget {
  DATABASE_URL?: string;
  PGLITE_DIR: string;
}

/** The URL without its password, and the password for PGPASSWORD: argv is visible to every user of the machine. */
function connection(url: string): { url: string; env: Record<string, string> } {
  const parsed = new URL(url);
  const password = decodeURIComponent(parsed.password);
  parsed.password = '';
  return { url: parsed.href, env: password ? { PGPASSWORD: password } : {} };
}

async function runTool(command: string[], env: Record<string, string>): Promise<void> {
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(command, { env: { ...process.env, ...env }, stdout: 'inherit', stderr: 'pipe' });
  } catch {
    throw new DescribedError(
      `${command[0]} was not found: install the PostgreSQL client tools of the server's major version (Debian: postgresql-client)`,
    );
  }
  const [stderr, code] = await Promise.all([new Response(proc.stderr as ReadableStream).text(), proc.exited]);
  // The tools' own messages name objects and files, never row data: pass them on, they say what went wrong.
  if (code !== 0) throw new DescribedError(`${command[0]} failed (exit ${code}): ${stderr.trim()}`);
}

const lockedMessage = (dir: string) =>
  `PGLITE_DIR ${dir} is in use by a running service: stop it first (the embedded database is one process's at a time)`;

export async function backup(target: BackupTarget, file: string): Promise<string> {
  const path = resolve(file);
  if (target.DATABASE_URL) {
    const { url, env } = connection(target.DATABASE_URL);
    await runTool(
      ['pg_dump', '--format=custom', '--no-owner', '--no-privileges', `--file=${path}`, `--dbname=${url}`],
      env,
    );
    return `wrote ${path} (pg_dump custom format)`;
  }
  const dir = resolve(target.PGLITE_DIR);
  const handle = await createPgliteDb(dir).catch((error) => {
    throw error instanceof DataDirLockedError ? new DescribedError(lockedMessage(dir)) : error;
  });
  try {
    if (handle.driver !== 'pglite') throw new DescribedError('expected the embedded database');
    await Bun.write(path, await handle.client.dumpDataDir('gzip'));
  } finally {
    await handle.close();
  }
  return `wrote ${path} (PGlite data directory dump)`;
}

async function fileKind(path: string): Promise<'pg_dump' | 'pglite'> {
  const file = Bun.file(path);
  if (!(await file.exists())) throw new DescribedError(`${path} does not exist`);
  const head = new Uint8Array(await file.slice(0, 5).arrayBuffer());
  if (new TextDecoder().decode(head) === PG_DUMP_MAGIC) return 'pg_dump';
  if (head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return 'pglite';
  throw new DescribedError(`${path} is neither a pg_dump custom-format file nor a PGlite dump`);
}

/** Whether the PostgreSQL database holds any table outside the system schemas. */
async function postgresHasTables(url: string): Promise<boolean> {
  const client = createPostgresClient(url, 1);
  try {
    const [row] = await client<{ n: number }[]>`
      select count(*)::int as n from pg_tables where schemaname not in ('pg_catalog', 'information_schema')`;
    return (row?.n ?? 0) > 0;
  } finally {
    await client.end({ timeout: 5 });
  }
}

export async function restore(target: BackupTarget, file: string, { force }: { force: boolean }): Promise<string> {
  const path = resolve(file);
  const kind = await fileKind(path);
  if (target.DATABASE_URL) {
    if (kind !== 'pg_dump')
      throw new DescribedError(`${path} is a PGlite dump: restore it with PGLITE_DIR, not DATABASE_URL`);
    const nonEmpty = await postgresHasTables(target.DATABASE_URL);
    if (nonEmpty && !force) {
      throw new DescribedError(
        'the target database is not empty: restore into a new database (createdb), or pass --force to replace what the backup holds',
      );
    }
    const { url, env } = connection(target.DATABASE_URL);
    const replace = nonEmpty ? ['--clean', '--if-exists'] : [];
    await runTool(
      [
        'pg_restore',
        '--no-owner',
        '--no-privileges',
        '--exit-on-error',
        '--single-transaction',
        ...replace,
        `--dbname=${url}`,
        path,
      ],
      env,
    );
    return `restored ${path} into the PostgreSQL database`;
  }
  if (kind !== 'pglite') throw new DescribedError(`${path} is a pg_dump file: restore it with DATABASE_URL set`);
  const dir = resolve(target.PGLITE_DIR);
  const release = await acquireDirLock(dir).catch((error) => {
    throw error instanceof DataDirLockedError ? new DescribedError(lockedMessage(dir)) : error;
  });
  try {
    const present = readdirSync(dir).filter((entry) => entry !== LOCK_FILE);
    if (present.length > 0 && !force) {
      throw new DescribedError(
        `PGLITE_DIR ${dir} is not empty: restore into a new directory, or pass --force to replace its database`,
      );
    }
    // Loaded beside the target first (the same filesystem, so the files move by rename): a dump that does not
    // load leaves the old database as it was.
    const staging = mkdtempSync(join(dirname(dir), `.${basename(dir)}.restore-`));
    try {
      const loaded = new PGlite(staging, { loadDataDir: Bun.file(path) });
      await loaded.waitReady;
      await loaded.close();
      for (const entry of present) rmSync(join(dir, entry), { recursive: true, force: true });
      // The dump holds the lock file of the process that took it; this process's own lock stays.
      for (const entry of readdirSync(staging)) {
        if (entry !== LOCK_FILE) renameSync(join(staging, entry), join(dir, entry));
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  } finally {
    release();
  }
  return `restored ${path} into ${dir}`;
}
