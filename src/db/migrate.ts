import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { PgliteDatabase } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import { createPostgresClient } from './client-postgres';
import type { Database, DatabaseHandle } from './database';
import { rowsOf } from './rows';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../drizzle', import.meta.url));

// Any constant works as long as every instance uses the same one: it names the lock, nothing else.
const MIGRATION_LOCK_ID = 72_0_1_2026;

/**
 * Applies every pending migration in ./drizzle. On PostgreSQL, several instances may start at once:
 * drizzle's migrate() takes no lock (two racing processes crash most of the time), so it runs on one
 * dedicated connection holding a session advisory lock; the second instance waits, then finds nothing to do.
 */
export async function runMigrations(handle: DatabaseHandle, migrationsFolder = MIGRATIONS_FOLDER): Promise<void> {
  if (handle.driver === 'pglite') {
    // One process per PGlite directory (client-pglite holds a lock file), so no database lock is needed.
    await migratePglite(handle.db as unknown as PgliteDatabase, { migrationsFolder });
    return;
  }
  const client = createPostgresClient(handle.url, 1);
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
    try {
      await migratePostgres(drizzlePostgres({ client }), { migrationsFolder });
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

export interface MigrationState {
  tag: string;
  createdAtMillis: number;
  applied: boolean;
}

interface Journal {
  entries: { tag: string; when: number }[];
}

/** Every migration in the folder, in order, with whether (and when) this database applied it. */
export async function migrationStatus(db: Database, migrationsFolder = MIGRATIONS_FOLDER): Promise<MigrationState[]> {
  const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as Journal;
  const applied = await appliedMigrationMillis(db);
  return journal.entries.map(({ tag, when }) => ({ tag, createdAtMillis: when, applied: applied.has(when) }));
}

/** drizzle records each applied migration by its folder timestamp (the journal's `when`). */
async function appliedMigrationMillis(db: Database): Promise<Set<number>> {
  const exists = await db.execute<{ present: boolean }>(
    sql`select to_regclass('drizzle.__drizzle_migrations') is not null as present`,
  );
  if (!rowsOf<{ present: boolean }>(exists)[0]?.present) return new Set();
  const result = await db.execute<{ created_at: string }>(sql`select created_at from drizzle.__drizzle_migrations`);
  return new Set(rowsOf<{ created_at: string }>(result).map((row) => Number(row.created_at)));
}
