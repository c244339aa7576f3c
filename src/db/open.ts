import type { Config } from '../config';
import type { Tracer } from '../lib/tracing';
import type { DatabaseHandle } from './database';

/**
 * PostgreSQL via postgres.js when DATABASE_URL is set, otherwise the embedded PGlite in PGLITE_DIR.
 * Each driver is imported only when chosen: PGlite's WASM costs memory a PostgreSQL deployment should not pay.
 */
export async function openDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'PGLITE_DIR' | 'DATABASE_PREPARED_STATEMENTS'> &
    Partial<Pick<Config, 'DATABASE_LISTEN_URL'>>,
  options: { tracer?: Tracer } = {},
): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) {
    const { openPostgresDb } = await import('./client-postgres');
    return openPostgresDb(config.DATABASE_URL, {
      preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
      listenUrl: config.DATABASE_LISTEN_URL,
      tracer: options.tracer,
    });
  }
  const { createPgliteDb } = await import('./client-pglite');
  return createPgliteDb(config.PGLITE_DIR, options);
}
