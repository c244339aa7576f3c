/**
 * Scratch databases for the tests, the cross-runtime suite and the benchmark: a PostgreSQL database made
 * for one caller and dropped after (`scratchDatabase`, or a PGlite directory when there is no PostgreSQL
 * to use), and an in-memory PGlite (`scratchPglite`). Each is empty, or migrated with the project's own
 * migrations, in process (runMigrations) or through the CLI as an operator would.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { pgliteHandle } from '../../src/db/client-pglite';
import { createPostgresClient, createPostgresDb } from '../../src/db/client-postgres';
import type { DatabaseHandle } from '../../src/db/database';
import { runMigrations } from '../../src/db/migrate';
import { runOrThrow } from './processes';

/** In process (runMigrations), or `bun scripts/cli.ts migrate` in a child process. */
export type Migrate = 'in-process' | 'cli';

export interface ScratchDatabase {
  /** `hpa_<prefix>_<pid>_<time>_<n>` on PostgreSQL; the directory on PGlite. */
  name: string;
  /** The PostgreSQL URL; undefined for a PGlite directory. */
  url?: string;
  /** The PGlite directory; undefined on PostgreSQL. */
  dir?: string;
  /** What a server or CLI process needs to use it: `{ DATABASE_URL }`, or `{ PGLITE_DIR }`. */
  env: Record<string, string>;
  /** A handle in this process (close it before drop; a PGlite directory takes one process at a time). */
  open(): Promise<DatabaseHandle>;
  /** Drops it (`with (force)`: open connections are closed) or removes the directory. Idempotent. */
  drop(): Promise<void>;
}

let counter = 0;
const undropped = new Set<ScratchDatabase>();

/**
 * A new database of its own for `prefix` (letters, digits, `_`): on the PostgreSQL server of `adminUrl`
 * (any database there to connect to; the new one lives beside it), or without `adminUrl` a PGlite
 * directory under the system's temporary directory. With `copyOf` it starts as a copy of that one (of the
 * same kind, and closed by everyone: `create database … template`, or a copy of the directory), which
 * is much quicker than migrating a new one.
 */
export async function scratchDatabase(
  prefix: string,
  options: { adminUrl?: string; migrate?: Migrate; copyOf?: ScratchDatabase } = {},
): Promise<ScratchDatabase> {
  const { copyOf } = options;
  const scratch = options.adminUrl
    ? await scratchPostgres(options.adminUrl, prefix, copyOf?.url && new URL(copyOf.url).pathname.slice(1))
    : scratchPgliteDir(prefix, copyOf?.dir);
  undropped.add(scratch);
  try {
    if (options.migrate === 'cli') {
      await runOrThrow(['bun', 'scripts/cli.ts', 'migrate'], { env: scratch.env });
    } else if (options.migrate === 'in-process') {
      const handle = await scratch.open();
      try {
        await runMigrations(handle);
      } finally {
        await handle.close();
      }
    }
  } catch (error) {
    await scratch.drop();
    throw error;
  }
  return scratch;
}

async function scratchPostgres(adminUrl: string, prefix: string, template?: string): Promise<ScratchDatabase> {
  const name = `hpa_${prefix}_${process.pid}_${Date.now().toString(36)}_${++counter}`;
  const url = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).href;
  // CREATE and DROP DATABASE take no bind parameters; the name is ours, made of [a-z0-9_].
  const admin = async (statement: string) => {
    const client = createPostgresClient(adminUrl, 1);
    try {
      await client.unsafe(statement);
    } finally {
      await client.end({ timeout: 5 });
    }
  };
  await admin(`create database "${name}"${template ? ` template "${template}"` : ''}`);
  let dropping: Promise<void> | undefined;
  const scratch: ScratchDatabase = {
    name,
    url,
    env: { DATABASE_URL: url },
    open: async () => createPostgresDb(url),
    drop: () => {
      dropping ??= admin(`drop database if exists "${name}" with (force)`).then(() => {
        undropped.delete(scratch);
      });
      return dropping;
    },
  };
  return scratch;
}

function scratchPgliteDir(prefix: string, template?: string): ScratchDatabase {
  const dir = mkdtempSync(join(tmpdir(), `hpa-${prefix.replaceAll('_', '-')}-`));
  if (template) cpSync(template, dir, { recursive: true });
  const scratch: ScratchDatabase = {
    name: dir,
    dir,
    env: { PGLITE_DIR: dir },
    open: async () => {
      const { createPgliteDb } = await import('../../src/db/client-pglite');
      return createPgliteDb(dir);
    },
    drop: async () => {
      await rm(dir, { recursive: true, force: true }); // not rmSync: a PGlite directory is thousands of files
      undropped.delete(scratch);
    },
  };
  return scratch;
}

/** Drops every scratch database of this process not dropped yet (a script's cleanup on failure or Ctrl-C). */
export async function dropAllScratchDatabases(): Promise<void> {
  await Promise.all([...undropped].map((scratch) => scratch.drop()));
}

let template: Promise<PGlite> | undefined;

/**
 * An in-memory PGlite of its own, migrated unless `migrate: false`. A migrated one is a copy of one template
 * migrated once per process (PGlite's clone()), so a test can have a database of its own for a few ms
 * instead of the seconds a migration takes. Gone when closed.
 */
export async function scratchPglite(options: { migrate?: boolean } = {}): Promise<DatabaseHandle> {
  const { PGlite } = await import('@electric-sql/pglite');
  let client: PGlite;
  if (options.migrate === false) {
    client = new PGlite();
    await client.waitReady;
  } else {
    template ??= (async () => {
      const fresh = new PGlite();
      await runMigrations(pgliteHandle(fresh));
      return fresh;
    })();
    client = (await (await template).clone()) as PGlite;
  }
  return pgliteHandle(client);
}
