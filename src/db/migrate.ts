import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { DescribedError } from '../lib/logger';
import { createPostgresClient } from './client-postgres';
import type { Database, DatabaseHandle } from './database';
import {
  appliedMigrationMillis,
  type JournalEntry,
  type MigrationState,
  migrationStatus as statusOf,
} from './migration-status';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

// Any constant works as long as every instance uses the same one: it names the lock, nothing else.
const MIGRATION_LOCK_ID = 72_0_1_2026;
const STATEMENT_BREAKPOINT = '--> statement-breakpoint';

/**
 * Runs `work` so that no other instance migrates at the same time. On PostgreSQL that is a session
 * advisory lock on one dedicated connection (drizzle's migrate() takes no lock, and racing instances
 * crash most of the time); a second instance waits, then finds nothing to do. The lock needs one backend
 * for the whole session, so it is taken on the handle's sessionUrl (never through a transaction pooler,
 * where it would stay held on whichever backend took it). A PGlite directory has one process at a time
 * (client-pglite holds a lock file), so it needs none.
 */
async function withMigrationLock(
  handle: DatabaseHandle,
  work: (db: Database, postgres?: PostgresJsDatabase) => Promise<void>,
): Promise<void> {
  if (handle.driver === 'pglite') return work(handle.db);
  if (handle.sessionUrl === undefined) throw new DescribedError(NO_SESSION_CONNECTION);
  const client = createPostgresClient(handle.sessionUrl, 1);
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
    try {
      const db = drizzlePostgres({ client });
      await work(db as unknown as Database, db);
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

const NO_SESSION_CONNECTION =
  'DATABASE_URL goes through a connection pooler and DATABASE_LISTEN_URL is not set: migrations need a direct ' +
  'connection for their lock. Run `bun run cli migrate` with a direct DATABASE_URL, or set DATABASE_LISTEN_URL';

/**
 * Applies every pending migration in ./drizzle (alembic upgrade head). Behind a pooler with no direct
 * connection, an instance whose database is already migrated (the operator ran `cli migrate`) starts; one
 * with migrations pending refuses, saying how to run them.
 */
export async function runMigrations(handle: DatabaseHandle, migrationsFolder = MIGRATIONS_FOLDER): Promise<void> {
  if (handle.driver === 'postgres' && handle.sessionUrl === undefined) {
    const pending = (await migrationStatus(handle.db, migrationsFolder)).filter((m) => !m.applied);
    if (pending.length === 0) return;
    throw new DescribedError(`${pending.length} migrations pending. ${NO_SESSION_CONNECTION}`);
  }
  await withMigrationLock(handle, (db, postgres) =>
    postgres
      ? migratePostgres(postgres, { migrationsFolder })
      : migratePglite(db as unknown as PgliteDatabase, { migrationsFolder }),
  );
}

interface Journal {
  entries: JournalEntry[];
}

const readJournal = (folder: string) =>
  (JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as Journal).entries;

/** Every migration in the folder, in order, with whether this database has applied it. */
export function migrationStatus(db: Database, migrationsFolder = MIGRATIONS_FOLDER): Promise<MigrationState[]> {
  return statusOf(db, readJournal(migrationsFolder));
}

/** `base` rolls back every migration, like `alembic downgrade base`. */
export const ROLLBACK_TO_BASE = 'base';

/** The first line of a down file that `bun run db:generate` drafted and nobody has reviewed yet. */
export const DOWN_DRAFT_MARKER = '-- DRAFT';

/** The statements of each migration's down file, or why it cannot be run: all checked before anything is reverted. */
function readDownFiles(migrationsFolder: string, tags: string[]): Map<string, string[]> {
  const downFiles = new Map<string, string[]>();
  for (const tag of tags) {
    const downFile = `${migrationsFolder}/down/${tag}.sql`;
    if (!existsSync(downFile)) {
      throw new DescribedError(
        `${tag} has no down migration: write ${downFile} with the statements that undo ${tag}.sql, newest ` +
          'first (`bun run db:generate` drafts one for each new migration); nothing was rolled back',
      );
    }
    const text = readFileSync(downFile, 'utf8');
    if (text.startsWith(DOWN_DRAFT_MARKER)) {
      throw new DescribedError(
        `${downFile} is the draft \`bun run db:generate\` wrote: check each statement, delete its first line ` +
          `(${DOWN_DRAFT_MARKER} …) and run this again; nothing was rolled back`,
      );
    }
    const statements = text
      .split(STATEMENT_BREAKPOINT)
      .filter((statement) => statement.replace(/--.*$/gm, '').trim() !== '');
    downFiles.set(tag, statements);
  }
  return downFiles;
}

/**
 * Reverts applied migrations, newest first (drizzle-kit has no down migrations, so each has a hand-written
 * `drizzle/down/<tag>.sql`): the newest one by default, or every one after `to` (a tag that stays applied,
 * or `base`). Each revert and the removal of its record run in one transaction. Returns the reverted tags.
 */
export async function rollbackMigrations(
  handle: DatabaseHandle,
  { to }: { to?: string } = {},
  migrationsFolder = MIGRATIONS_FOLDER,
): Promise<string[]> {
  const entries = readJournal(migrationsFolder);
  if (to !== undefined && to !== ROLLBACK_TO_BASE && !entries.some((entry) => entry.tag === to)) {
    throw new DescribedError(`no migration named ${to}; see \`bun run db:status\``);
  }
  const reverted: string[] = [];
  await withMigrationLock(handle, async (db) => {
    const applied = await appliedMigrationMillis(db);
    const newestFirst = entries.filter((entry) => applied.has(entry.when)).reverse();
    const stop =
      to === undefined ? 1 : to === ROLLBACK_TO_BASE ? newestFirst.length : newestFirst.findIndex((e) => e.tag === to);
    if (stop < 0) throw new DescribedError(`${to} is not applied; nothing to roll back to`);
    const reverting = newestFirst.slice(0, stop);
    const downFiles = readDownFiles(
      migrationsFolder,
      reverting.map((entry) => entry.tag),
    );
    for (const { tag, when } of reverting) {
      await db.transaction(async (tx) => {
        for (const statement of downFiles.get(tag) ?? []) await tx.execute(sql.raw(statement));
        await tx.execute(sql`delete from drizzle.__drizzle_migrations where created_at = ${when}`);
      });
      reverted.push(tag);
    }
  });
  return reverted;
}
