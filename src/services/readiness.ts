import type { Database } from '../db/database';
import { migrationStatus } from '../db/migration-status';
import { AppError } from '../lib/problems';

/**
 * Throws a 503 unless the database answers and has applied every migration this build ships (a newer
 * schema is fine: migrations are additive for the release before them).
 */
export async function checkReadiness({ db }: { db: Database }): Promise<void> {
  let pending: boolean;
  try {
    pending = (await migrationStatus(db)).some((migration) => !migration.applied);
  } catch {
    // Whatever the reason (down, unreachable, refusing), the database cannot serve traffic now.
    throw new AppError('database-unavailable');
  }
  if (pending) throw new AppError('migrations-pending');
}
