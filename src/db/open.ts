import type { Config } from '../config';
import type { Tracer } from '../lib/tracing';
import type { DatabaseHandle } from './database';

/**
 * PostgreSQL via postgres.js when DATABASE_URL is set, otherwise the embedded PGlite in PGLITE_DIR.
 * Each driver is imported only when chosen: PGlite's WASM costs memory a PostgreSQL deployment should not pay.
 */
export async function openDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'PGLITE_DIR'>,
  options: { tracer?: Tracer } = {},
): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) {
    const { createPostgresDb } = await import('./client-postgres');
    return createPostgresDb(config.DATABASE_URL, options);
  }
  const { createPgliteDb } = await import('./client-pglite');
  return createPgliteDb(config.PGLITE_DIR, options);
}
