/**
 * The Metrics of lib/metrics.ts on prom-client, with a registry of its own per app: never prom-client's
 * global default registry, so apps built side by side (the tests build hundreds) count apart and nothing
 * outlives its app. Events are counted as they happen; the figures of the moment (the hash queue, the
 * view, the database pool, the outbox) are set from the snapshot the scrape reads (services/metrics.ts).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Metrics, MetricsSnapshot } from '../lib/metrics';

// Seconds: a cached bearer check is well under 5 ms, a login at bcrypt cost 12 about 300 ms, the deadline 10 s.
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HASH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createPrometheusMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers });

  const requests = counter('auth_http_requests_total', 'HTTP requests answered, by route template and status', [
    'method',
    'route',
    'status',
  ]);
  const requestSeconds = new Histogram({
    name: 'auth_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route template and status',
    labelNames: ['method', 'route', 'status'],
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const logins = counter('auth_logins_total', 'Login steps by grant (password, mfa_otp) and outcome', [
    'grant',
    'outcome',
  ]);
  const lockouts = counter('auth_lockouts_total', 'Password attempts refused by a lockout, by which limit', ['limit']);
  const reuse = counter('auth_refresh_reuse_total', 'Spent refresh tokens presented again: their family revoked');
  const overloaded = counter('auth_overload_rejections_total', 'Requests refused 503 for overload, by reason', [
    'reason',
  ]);
  const hashSeconds = new Histogram({
    name: 'auth_password_hash_duration_seconds',
    help: 'A bcrypt hash or check, from asking to its result (the wait for a worker included)',
    labelNames: ['operation'],
    buckets: HASH_BUCKETS,
    registers,
  });

  const hashQueued = gauge('auth_hash_queue_depth', 'Password hashes waiting for a worker');
  const hashRunning = gauge('auth_hash_running', 'Password hashes a worker is running');
  const hashMean = gauge('auth_hash_mean_seconds', 'The hash pool’s measured time of one hash at the configured cost');

  const poolMax = gauge('auth_db_pool_max', 'Database connections the pool may open (PGlite: 1)');
  const poolQueries = gauge('auth_db_queries_in_flight', 'Database queries sent and not yet answered');
  const poolTransactions = gauge('auth_db_transactions_open', 'Open database transactions (each holds a connection)');
  const queries = counter('auth_db_queries_total', 'Database queries answered or failed');
  const querySeconds = counter('auth_db_query_seconds_total', 'Seconds spent waiting for database queries, summed');

  const viewHealthy = gauge('auth_view_healthy', '1 while the access view may answer (its listener proven alive)');
  const viewEntries = gauge('auth_view_entries', 'Entries held by the access view', ['kind']);
  const viewLookups = counter('auth_view_lookups_total', 'Bearer checks answered from the view (hit) or not (miss)', [
    'result',
  ]);
  const viewRatio = gauge('auth_view_hit_ratio', 'Share of view lookups answered from memory since start');
  const invalidations = counter('auth_view_invalidations_total', 'Access invalidations applied');
  const lag = gauge(
    'auth_view_invalidation_lag_seconds',
    'From an invalidation’s publication to its application here, over the last 1,024',
    ['quantile'],
  );

  const outboxDepth = gauge('auth_outbox_depth', 'Mail waiting in the outbox (pending or being sent)');
  const outboxAge = gauge('auth_outbox_oldest_age_seconds', 'Age of the oldest waiting mail; 0 when none waits');
  const outboxDead = gauge('auth_outbox_dead', 'Mail that used up its attempts');

  /** A counter kept elsewhere (the view's, the pool's), shown as it stands. */
  const setCounter = (metric: Counter<string>, value: number, labels: Record<string, string> = {}) => {
    metric.remove(labels);
    metric.inc(labels, value);
  };

  function apply({ hashPool, view, pool, outbox }: MetricsSnapshot): void {
    if (hashPool) {
      hashQueued.set(hashPool.queued);
      hashRunning.set(hashPool.running);
      hashMean.set(hashPool.meanHashMs / 1000);
    }
    if (pool) {
      poolMax.set(pool.max);
      poolQueries.set(pool.queriesInFlight);
      poolTransactions.set(pool.transactionsOpen);
      setCounter(queries, pool.queries);
      setCounter(querySeconds, pool.querySeconds);
    }
    viewHealthy.set(view.enabled && view.healthy ? 1 : 0);
    for (const [kind, n] of Object.entries(view.entries)) viewEntries.set({ kind }, n);
    setCounter(viewLookups, view.hits, { result: 'hit' });
    setCounter(viewLookups, view.misses, { result: 'miss' });
    const lookups = view.hits + view.misses;
    viewRatio.set(lookups === 0 ? 0 : view.hits / lookups);
    setCounter(invalidations, view.invalidations);
    lag.set({ quantile: '0.5' }, view.lagMs.p50 / 1000);
    lag.set({ quantile: '0.99' }, view.lagMs.p99 / 1000);
    lag.set({ quantile: '1' }, view.lagMs.max / 1000);
    // NaN is Prometheus's "unknown": the last figures read would claim more than is known.
    outboxDepth.set(outbox?.depth ?? Number.NaN);
    outboxAge.set(outbox?.oldestAgeSeconds ?? Number.NaN);
    outboxDead.set(outbox?.dead ?? Number.NaN);
  }

  return {
    request({ method, route, status }, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      requestSeconds.observe(labels, seconds);
    },
    login: (grant, outcome) => logins.inc({ grant, outcome }),
    lockout: (limit) => lockouts.inc({ limit }),
    refreshReuse: () => reuse.inc(),
    overloaded: (reason) => overloaded.inc({ reason }),
    hashed: (operation, seconds) => hashSeconds.observe({ operation }, seconds),
    async render(snapshot) {
      apply(snapshot);
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
