/**
 * The database clients as Drizzle receives them, wrapped so each query is counted (the pool figures of
 * /metrics) and, with tracing on, becomes a span, child of the request's. Neither driver reports what its
 * pool is doing (postgres.js keeps its connection queues private), so the figures are what passes through
 * here: queries sent and not yet answered, and open transactions, each holding a connection until it ends.
 * Statements are traced as Drizzle wrote them, with `$1` placeholders: parameters (emails, hashes) never.
 */
import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { Sql } from 'postgres';
import type { PoolStats } from '../lib/metrics';
import { noSpan, noTracer, type Span, type Tracer } from '../lib/tracing';

const MAX_STATEMENT_CHARS = 2_000;

export interface QueryObserver {
  stats(): PoolStats;
  /** Marks one query's start; the returned function its end. */
  query(statement: string): (error?: unknown) => void;
  /** Runs a transaction, counted open while it runs. */
  transaction<T>(run: () => Promise<T>): Promise<T>;
}

export function createQueryObserver(max: number, tracer: Tracer = noTracer): QueryObserver {
  const totals = { queriesInFlight: 0, transactionsOpen: 0, queries: 0, querySeconds: 0 };
  return {
    stats: () => ({ max, ...totals }),
    query(statement) {
      const started = performance.now();
      totals.queriesInFlight++;
      // Every query passes here: with tracing off it costs two counters, not a statement parsed for a span.
      const span = tracer === noTracer ? noSpan : statementSpan(tracer, statement);
      let ended = false;
      return (error) => {
        if (ended) return;
        ended = true;
        totals.queriesInFlight--;
        totals.queries++;
        totals.querySeconds += (performance.now() - started) / 1000;
        span.end(error);
      };
    },
    async transaction(run) {
      totals.transactionsOpen++;
      try {
        return await run();
      } finally {
        totals.transactionsOpen--;
      }
    },
  };
}

function statementSpan(tracer: Tracer, statement: string): Span {
  const text = statement.slice(0, MAX_STATEMENT_CHARS);
  const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'QUERY';
  return tracer.start(`db ${operation}`, 'client', {
    'db.system.name': 'postgresql',
    'db.operation.name': operation,
    'db.query.text': text,
  });
}

/**
 * postgres.js queries are lazy promises that run when first awaited: the query is timed from that `then`
 * to its settling. Transactions and savepoints hand their callback a client of their own, wrapped too.
 */
export function observePostgres(sql: Sql, observer: QueryObserver): Sql {
  const wrap = (client: Sql): Sql =>
    new Proxy(client, {
      get(target, property, receiver) {
        if (property === 'unsafe') {
          return (statement: string, ...rest: unknown[]) => {
            const query = (target.unsafe as (...args: unknown[]) => Promise<unknown>)(statement, ...rest);
            const then = query.then;
            // biome-ignore lint/suspicious/noThenProperty: the query is a promise already; this times its run
            query.then = function (this: Promise<unknown>, onValue, onError) {
              const end = observer.query(statement);
              return then.call(
                this,
                (value) => {
                  end();
                  return onValue ? onValue(value) : value;
                },
                (error) => {
                  end(error);
                  if (onError) return onError(error);
                  throw error;
                },
              ) as never;
            };
            return query;
          };
        }
        if (property === 'begin' || property === 'savepoint') {
          const open = Reflect.get(target, property, receiver) as (...args: unknown[]) => Promise<unknown>;
          return (...args: unknown[]) => {
            const run = args.pop() as (tx: Sql) => unknown;
            return observer.transaction(() => open.call(target, ...args, (tx: Sql) => run(wrap(tx))));
          };
        }
        return Reflect.get(target, property, receiver);
      },
    });
  return wrap(sql);
}

/** PGlite: `query` and `transaction`, the two calls Drizzle makes, on the client and on each transaction. */
export function observePglite(client: PGlite, observer: QueryObserver): PGlite {
  const wrap = <C extends PGlite | Transaction>(target: C): C =>
    new Proxy(target, {
      get(inner, property, receiver) {
        if (property === 'query') {
          return async (statement: string, ...rest: unknown[]) => {
            const end = observer.query(statement);
            try {
              const result = await (inner.query as (...args: unknown[]) => Promise<unknown>).call(
                inner,
                statement,
                ...rest,
              );
              end();
              return result;
            } catch (error) {
              end(error);
              throw error;
            }
          };
        }
        if (property === 'transaction') {
          return (run: (tx: Transaction) => Promise<unknown>) =>
            observer.transaction(() => (inner as PGlite).transaction((tx) => run(wrap(tx))));
        }
        const value = Reflect.get(inner, property, receiver);
        return typeof value === 'function' ? value.bind(inner) : value;
      },
    });
  return wrap(client);
}
