import { sql } from 'drizzle-orm';
import journal from '../../drizzle/meta/_journal.json' with { type: 'json' };
import { rowsOf } from '../db/rows';
import type { AppDeps } from '../deps';
import { AppError, databaseUnavailable, errorCodes, RETRY_SOON } from '../lib/errors';

// Bundled at build time, so readiness needs no filesystem (Workers have none).
const LATEST_MIGRATION_MILLIS = Math.max(0, ...journal.entries.map((entry) => entry.when));
const UNDEFINED_TABLE = '42P01';

/** Throws a 503 unless the database answers and has applied the newest migration this build ships. */
export async function checkReadiness({ db }: Pick<AppDeps, 'db'>): Promise<void> {
  let applied: number;
  try {
    const result = await db.execute(sql`select max(created_at)::text as latest from drizzle.__drizzle_migrations`);
    applied = Number(rowsOf<{ latest: string | null }>(result)[0]?.latest ?? 0);
  } catch (error) {
    if (!errorCodes(error).includes(UNDEFINED_TABLE)) {
      throw databaseUnavailable();
    }
    applied = 0; // never migrated
  }
  if (applied < LATEST_MIGRATION_MILLIS) {
    throw new AppError(503, 'Database migrations are pending; run `bun run db:migrate`', { headers: RETRY_SOON });
  }
}
