import type { Database } from '../db/database';
import type { AccessChange } from './changes';
import type { AccessChanges } from './listener';

/** A transaction that may change access, and how the code inside it says what it changed. */
export interface AccessScope {
  db: Database;
  changed(change: AccessChange): void;
}

/**
 * Runs `work` in a transaction and, once it has committed, applies what it changed on this instance (and
 * publishes it where the database does not: Redis), so the request that made the change answers only after
 * its own instance has forgotten what it changed. The other instances hear it from the database's NOTIFY
 * (migration 0003's triggers) as the transaction commits.
 */
export async function inAccessTransaction<T>(
  { db, access }: { db: Database; access: AccessChanges },
  work: (scope: AccessScope) => Promise<T>,
): Promise<T> {
  const changes: AccessChange[] = [];
  const result = await db.transaction((tx) => work({ db: tx, changed: (change) => changes.push(change) }));
  if (changes.length > 0) await access.committed(changes);
  return result;
}
