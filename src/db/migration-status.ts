/**
 * Which of a build's migrations a database has applied: the one answer to "is this database migrated",
 * for the CLI's `status`, the migrator and `GET /ready`. No filesystem here (Workers have none): the
 * build's own journal is bundled, and the CLI passes the journal of a migrations folder instead.
 */
import { sql } from 'drizzle-orm';
import bundledJournal from '../../drizzle/meta/_journal.json' with { type: 'json' };
import type { Database } from './database';
import { rowsOf } from './rows';

export interface JournalEntry {
  tag: string;
  /** drizzle-kit's timestamp for the migration; drizzle records applied migrations by it (`created_at`). */
  when: number;
}

export interface MigrationState {
  tag: string;
  createdAtMillis: number;
  applied: boolean;
}

/** The migrations this build ships, in order. */
export const BUILD_MIGRATIONS: readonly JournalEntry[] = bundledJournal.entries;

/** The timestamps of the migrations this database has applied (none when it was never migrated). */
export async function appliedMigrationMillis(db: Database): Promise<Set<number>> {
  const exists = await db.execute(sql`select to_regclass('drizzle.__drizzle_migrations') is not null as present`);
  if (!rowsOf<{ present: boolean }>(exists)[0]?.present) return new Set();
  const result = await db.execute(sql`select created_at from drizzle.__drizzle_migrations`);
  return new Set(rowsOf<{ created_at: string }>(result).map((row) => Number(row.created_at)));
}

/** Every migration of `entries`, in order, with whether this database has applied it. */
export async function migrationStatus(
  db: Database,
  entries: readonly JournalEntry[] = BUILD_MIGRATIONS,
): Promise<MigrationState[]> {
  const applied = await appliedMigrationMillis(db);
  return entries.map(({ tag, when }) => ({ tag, createdAtMillis: when, applied: applied.has(when) }));
}
