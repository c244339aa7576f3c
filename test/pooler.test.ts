/**
 * Behind a transaction-mode PgBouncer (pool 5) with nothing but DATABASE_URL pointing at it: under 16
 * concurrent clients every answer is the right one — no valid token answered 401, no 500, no registration
 * refused — and a revoked token stays revoked. A real PgBouncer (started here, on a port of its own), a
 * real server process, a real PostgreSQL. Skipped, saying so, where the pgbouncer binary is missing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { runLoad, statusSummary, tally } from '../scripts/lib/load';
import { type PgBouncer, pgbouncerBinary, startPgBouncer } from '../scripts/lib/pgbouncer';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import { detectPooler, openPostgresDb } from '../src/db/client-postgres';
import { runMigrations } from '../src/db/migrate';
import { POSTGRES_ADMIN_URL, TEST_BASE_URL } from './helpers';
import { SERVER_TEST_TIMEOUT_MS, type ServerProcess, startServer, stopAll } from './server-process';

const CLIENTS = 16;
const JOURNEYS_PER_CLIENT = 6; // 16 × 6 journeys × 6 requests ≈ 580 answers
const LOAD_TIMEOUT_MS = 240_000;
const RESTARTS = 3;
const RESTART_EVERY_MS = 1_500;

const NO_LIMITS = {
  RATE_LIMIT_LOGIN_PER_IP: '0',
  RATE_LIMIT_LOGIN_FAILURES: '0',
  RATE_LIMIT_REGISTER_PER_IP: '0',
  RATE_LIMIT_ACCOUNT_FAILURES: '0',
  RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY: '0',
};

const binary = pgbouncerBinary();
if (!binary) console.warn('pooler.test.ts skipped: no pgbouncer binary (apt-get install pgbouncer)');

// Against a server of someone else's (TEST_BASE_URL) there is no pooler of ours to put in front of it.
describe.skipIf(!binary || TEST_BASE_URL !== undefined)('behind a transaction-mode PgBouncer', () => {
  let database: ScratchDatabase;
  let bouncer: PgBouncer;
  let server: ServerProcess;

  beforeAll(async () => {
    database = await scratchDatabase('pooler', { adminUrl: POSTGRES_ADMIN_URL, migrate: 'cli' });
    bouncer = await startPgBouncer(database.url as string, { poolSize: 5 });
    server = await startServer({ DATABASE_URL: bouncer.url, ...NO_LIMITS });
  }, SERVER_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
    await bouncer?.stop();
    await database?.drop();
  }, SERVER_TEST_TIMEOUT_MS);

  test('detects the pooler from the start-up key, and a direct connection as direct', async () => {
    expect(await detectPooler(bouncer.url)).toBe(true);
    expect(await detectPooler(database.url as string)).toBe(false);
  });

  test('says once that it serves without the view: no direct connection for LISTEN', () => {
    const warnings = server.lines.filter((line) => line.includes('cannot carry LISTEN'));
    expect(warnings.length).toBe(1);
  });

  test(
    'answers 16 concurrent clients with no wrong answer and no refusal',
    async () => {
      const load = await runLoad({
        urls: [server.url],
        clients: CLIENTS,
        journeys: JOURNEYS_PER_CLIENT,
        tag: 'pooler',
      });
      const counts = tally(load.answers);
      const notOk = load.answers.filter((answer) => answer.outcome !== 'ok');
      expect({
        wrong: counts.wrong,
        unavailable: counts.unavailable,
        notOk: statusSummary(notOk),
        examples: load.wrongs,
      }).toEqual({ wrong: 0, unavailable: 0, notOk: '', examples: [] });
      expect(counts.total).toBeGreaterThanOrEqual(CLIENTS * JOURNEYS_PER_CLIENT * 6);
    },
    LOAD_TIMEOUT_MS,
  );

  // postgres.js 3.4.9 wrote to a socket closed() had nulled and died of the uncaught TypeError at the first
  // restart (porsager/postgres#1208): patches/postgres@3.4.9.patch.
  test(
    'survives PgBouncer restarts under load: refusals at most, no wrong answer, serving after',
    async () => {
      const stop = new AbortController();
      const load = runLoad({ urls: [server.url], clients: CLIENTS, signal: stop.signal, tag: 'bounce' });
      for (let restart = 0; restart < RESTARTS; restart++) {
        await Bun.sleep(RESTART_EVERY_MS);
        await bouncer.restart();
      }
      await Bun.sleep(RESTART_EVERY_MS);
      stop.abort();
      const { answers, wrongs } = await load;
      expect({ exited: server.proc.exitCode, signal: server.proc.signalCode, wrongs }).toEqual({
        exited: null,
        signal: null,
        wrongs: [],
      });
      const after = await runLoad({ urls: [server.url], clients: 2, journeys: 2, tag: 'after' });
      expect(statusSummary(after.answers.filter((answer) => answer.outcome !== 'ok'))).toBe('');
      expect(tally(answers).ok).toBeGreaterThan(0);
    },
    LOAD_TIMEOUT_MS,
  );
});

describe.skipIf(!binary || TEST_BASE_URL !== undefined)('behind PgBouncer with DATABASE_LISTEN_URL', () => {
  let empty: ScratchDatabase;
  let bouncer: PgBouncer;

  beforeAll(async () => {
    empty = await scratchDatabase('pooler_listen', { adminUrl: POSTGRES_ADMIN_URL });
    bouncer = await startPgBouncer(empty.url as string, { poolSize: 5 });
  }, SERVER_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await stopAll();
    await bouncer?.stop();
    await empty?.drop();
  }, SERVER_TEST_TIMEOUT_MS);

  test('refuses to migrate through the pooler alone, saying how', async () => {
    const handle = await openPostgresDb(bouncer.url);
    try {
      expect(handle).toMatchObject({ pooled: true, prepare: false, sessionUrl: undefined });
      await expect(runMigrations(handle)).rejects.toThrow('Run `bun run cli migrate` with a direct DATABASE_URL');
    } finally {
      await handle.close();
    }
  });

  test(
    'migrates and LISTENs on the direct connection, and keeps every answer right',
    async () => {
      const server = await startServer({ DATABASE_URL: bouncer.url, DATABASE_LISTEN_URL: empty.url, ...NO_LIMITS });
      expect(server.lines.filter((line) => line.includes('cannot carry LISTEN'))).toEqual([]);
      expect(server.lines.some((line) => line.includes('access listener healthy'))).toBe(true);
      const load = await runLoad({ urls: [server.url], clients: 4, journeys: 3, tag: 'listen' });
      expect(statusSummary(load.answers.filter((answer) => answer.outcome !== 'ok'))).toBe('');
    },
    LOAD_TIMEOUT_MS,
  );
});
