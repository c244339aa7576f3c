import type { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { PoolStats } from '../lib/metrics';
import type * as schema from './schema';

/** Either driver's Drizzle instance: the app only uses what postgres.js and PGlite share. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

/** What a runtime entry holds: the database plus how to release it. */
export type DatabaseHandle = {
  db: Database;
  /** What passes through the pool now (db/observed.ts), for /metrics. */
  stats(): PoolStats;
  close(): Promise<void>;
} & (
  | {
      driver: 'postgres';
      url: string;
      /** Whether named prepared statements are used (DATABASE_PREPARED_STATEMENTS). */
      prepare: boolean;
      /** Whether a connection pooler stands between the service and PostgreSQL (client-postgres detectPooler). */
      pooled: boolean;
      /**
       * Where work that needs one backend for a whole session goes — LISTEN and the migration lock:
       * DATABASE_LISTEN_URL, else DATABASE_URL unless that goes through a pooler; undefined when neither.
       */
      sessionUrl: string | undefined;
    }
  | { driver: 'pglite' /** for LISTEN, in process */; client: PGlite }
);
