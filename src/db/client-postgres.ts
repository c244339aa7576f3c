import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Database, DatabaseHandle } from './database';
import * as schema from './schema';

export interface PostgresOptions {
  /** Pool size; postgres.js opens connections lazily, so an idle service holds none. */
  max?: number;
}

// Bounded so a database that is down or unreachable turns into a quick 503, not a hung request.
const CONNECT_TIMEOUT_SECONDS = 5;
const IDLE_TIMEOUT_SECONDS = 30;

export function createPostgresClient(url: string, max = 10) {
  return postgres(url, {
    max,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    idle_timeout: IDLE_TIMEOUT_SECONDS,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not worth a log line
  });
}

export function createPostgresDb(url: string, options: PostgresOptions = {}): DatabaseHandle {
  const client = createPostgresClient(url, options.max);
  const db = drizzle({ client, schema, casing: 'snake_case' }) as unknown as Database;
  return {
    db,
    driver: 'postgres',
    url,
    close: () => client.end({ timeout: 5 }),
  };
}
