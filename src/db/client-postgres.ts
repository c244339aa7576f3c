import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { PreparedStatements } from '../config';
import type { Tracer } from '../lib/tracing';
import type { Database, DatabaseHandle } from './database';
import { createQueryObserver, observePostgres } from './observed';
import * as schema from './schema';

export interface PostgresOptions {
  /** Pool size; postgres.js opens connections lazily, so an idle service holds none. */
  max?: number;
  /** Traces each query as a span of the request's (tracing on). */
  tracer?: Tracer;
  /** Named prepared statements (postgres.js `prepare`); off behind a transaction pooler. */
  prepare?: boolean;
  /** Whether a pooler stands between us and PostgreSQL (detectPooler). */
  pooled?: boolean;
  /** A direct connection for session-level work (LISTEN, the migration lock); see DatabaseHandle. */
  sessionUrl?: string;
}

const DEFAULT_POOL_SIZE = 10;

// Bounded so a database that is down or unreachable turns into a quick 503, not a hung request.
const CONNECT_TIMEOUT_SECONDS = 5;
const IDLE_TIMEOUT_SECONDS = 30;

export function createPostgresClient(
  url: string,
  max = DEFAULT_POOL_SIZE,
  { prepare = true }: { prepare?: boolean } = {},
) {
  return postgres(url, {
    max,
    prepare,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    idle_timeout: IDLE_TIMEOUT_SECONDS,
    onnotice: () => {}, // "relation already exists, skipping" and friends are not worth a log line
  });
}

export function createPostgresDb(url: string, options: PostgresOptions = {}): DatabaseHandle {
  const { prepare = true, pooled = false } = options;
  const max = options.max ?? DEFAULT_POOL_SIZE;
  const client = createPostgresClient(url, max, { prepare });
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
    prepare,
    pooled,
    sessionUrl: options.sessionUrl ?? (pooled ? undefined : url),
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * Whether `url` reaches PostgreSQL through a pooler. PostgreSQL's BackendKeyData (sent once, at start-up,
 * for cancel requests) carries the backend's own pid, so on a direct connection it equals
 * `pg_backend_pid()`. A pooler hands each client a key of its own (PgBouncer: random bytes, since one
 * client meets many backends), so the two differ. The check needs one query and cannot be fooled by a
 * pooler that happens to give the same backend twice in a row — which PgBouncer does when idle, so probing
 * `pg_backend_pid()` across transactions is not a reliable test.
 */
export async function detectPooler(url: string): Promise<boolean> {
  const probe = postgres(url, {
    max: 1,
    prepare: false,
    fetch_types: false,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    onnotice: () => {},
  });
  try {
    const rows = await probe<{ pid: number }[]>`select pg_backend_pid() as pid`;
    return rows.state.pid !== rows[0]?.pid;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

/**
 * The service's database on PostgreSQL: named prepared statements unless a pooler is detected (`auto`) or
 * DATABASE_PREPARED_STATEMENTS says otherwise. A transaction pooler (PgBouncer pool_mode=transaction, 1.18
 * and earlier without `max_prepared_statements`) gives each transaction whichever backend is free, and a
 * statement prepared on one backend does not exist on the next ("prepared statement … does not exist").
 */
export async function openPostgresDb(
  url: string,
  {
    preparedStatements = 'auto',
    listenUrl,
    tracer,
  }: { preparedStatements?: PreparedStatements; listenUrl?: string; tracer?: Tracer } = {},
): Promise<DatabaseHandle> {
  const pooled = await detectPooler(url);
  const prepare = preparedStatements === 'auto' ? !pooled : preparedStatements === 'on';
  return createPostgresDb(url, { prepare, pooled, sessionUrl: listenUrl, tracer });
}
