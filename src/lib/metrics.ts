/**
 * What the app counts, as one small interface: services and middleware record events here and never see
 * the Prometheus client (observability/prometheus.ts implements it, one registry per app). Every label is
 * from a fixed set (a route template, an outcome, a limit's name): never an email, an id or a token.
 */

/** Which login: the password grant, the second factor's `mfa_otp` after it, or a passkey (POST /webauthn/login/verify). */
export type LoginGrant = 'password' | 'mfa_otp' | 'passkey';

/** How a login step ended. */
export type LoginOutcome =
  | 'ok'
  | 'mfa_required'
  | 'bad_credentials'
  | 'bad_code'
  | 'bad_mfa_token'
  | 'bad_passkey'
  | 'locked'
  | 'email_unverified'
  | 'overloaded'
  | 'abandoned'
  | 'error';

/** Which lockout refused a password attempt (rate-limit/lockout.ts). */
export type LockoutLimit = 'loginFailures' | 'accountFailures' | 'accountFailuresDaily';

/** Why a request was refused for overload: the hash pool's admission, or the request's own deadline. */
export type OverloadReason = 'hash_admission' | 'deadline';

export type HashOperation = 'hash' | 'verify';

/** The database pool as the driver lets us see it (db/observed.ts). */
export interface PoolStats {
  /** Connections the pool may open (PGlite: 1). */
  max: number;
  /** Queries sent and not yet answered, transactions' statements included. */
  queriesInFlight: number;
  /** Open transactions: each holds one connection until it ends. */
  transactionsOpen: number;
  /** Queries answered (or failed) since start, and the seconds they took in all. */
  queries: number;
  querySeconds: number;
}

/** Point-in-time figures read when /metrics is scraped (services/metrics.ts gathers them). */
export interface MetricsSnapshot {
  hashPool?: { queued: number; running: number; meanHashMs: number };
  view: {
    enabled: boolean;
    healthy: boolean;
    entries: { users: number; sessions: number; tokens: number };
    hits: number;
    misses: number;
    invalidations: number;
    lagMs: { p50: number; p99: number; max: number; samples: number };
  };
  pool?: PoolStats;
  /** Unknown when the database did not answer. */
  outbox?: { depth: number; dead: number; oldestAgeSeconds: number };
}

export interface Metrics {
  /** One answered request: its route template (never the raw URL), method and status. */
  request(labels: { method: string; route: string; status: number }, seconds: number): void;
  login(grant: LoginGrant, outcome: LoginOutcome): void;
  lockout(limit: LockoutLimit): void;
  /** A spent refresh token presented again outside the grace window: its family was revoked. */
  refreshReuse(): void;
  overloaded(reason: OverloadReason): void;
  /** A password hash or check that ran, from asking to its result (the wait for a worker included). */
  hashed(operation: HashOperation, seconds: number): void;
  /** The Prometheus text exposition, or null where nothing is collected (noMetrics). */
  render(snapshot: MetricsSnapshot): Promise<{ contentType: string; body: string } | null>;
}

const ignore = () => {};

/** Counts nothing: for runtimes that cannot keep counters (Workers build an app per request). */
export const noMetrics: Metrics = {
  request: ignore,
  login: ignore,
  lockout: ignore,
  refreshReuse: ignore,
  overloaded: ignore,
  hashed: ignore,
  render: async () => null,
};
