import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Tracer } from '../lib/tracing';
import type { Database, DatabaseHandle } from './database';
import { createQueryObserver, observePostgres } from './observed';
import * as schema from './schema';

export interface PostgresOptions {
  /** Pool size; postgres.js opens connections lazily, so an idle service holds none. */
  max?: number;
  /** Traces each query as a span of the request's (tracing on). */
  tracer?: Tracer;
}

const DEFAULT_POOL_SIZE = 10;

// Bounded so a database that is down or unreachable turns into a quick 503, not a hung request.
const CONNECT_TIMEOUT_SECONDS = 5;
const IDLE_TIMEOUT_SECONDS = 30;

export function createPostgresClient(url: string, max = DEFAULT_POOL_SIZE) {
  return postgres(url, {
    max,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    idle_timeout: IDLE_TIMEOUT_SECONDS,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not worth a log line
  });
}

export function createPostgresDb(url: string, options: PostgresOptions = {}): DatabaseHandle {
  const max = options.max ?? DEFAULT_POOL_SIZE;
  const client = createPostgresClient(url, max);
  const observer = createQueryObserver(max, options.tracer);
  const db = drizzle({
    client: observePostgres(client, observer),
    schema,
    casing: 'snake_case',
  }) as unknown as Database;
  return {
    db,
    driver: 'postgres',
    url,
    stats: observer.stats,
    close: () => client.end({ timeout: 5 }),
  };
}
