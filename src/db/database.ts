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
} & ({ driver: 'postgres'; url: string } | { driver: 'pglite' /** for LISTEN, in process */; client: PGlite });
