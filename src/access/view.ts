/**
 * Each instance's live view of the users and sessions it has checked, and of the access tokens it has
 * verified, so a repeated bearer request costs map lookups instead of a signature check and a database round
 * trip. It is only as good as the invalidations it hears (access/listener.ts), so it fails closed:
 * - while the listener is not connected and proven alive (a heartbeat), every lookup goes to the database
 *   and nothing is remembered; when it reconnects the whole view is dropped first;
 * - a database read that started before an invalidation of its user or session is not remembered (it may
 *   have read the row as it was before the change committed);
 * - entries live at most ENTRY_MAX_AGE_MS, whatever else happens.
 * Bounded: the least recently used entries go first beyond `maxEntries` of each kind.
 */
import type { AccessMessage } from './changes';

/** A backstop for a change nobody announced; the triggers and the heartbeat make it a formality. */
const ENTRY_MAX_AGE_MS = 5 * 60_000;
const LAG_SAMPLES = 1024;
// How long an invalidation is remembered against fills that began before it: longer than any database read.
const INVALIDATION_MEMORY_MS = 60_000;

export interface ViewUser<U> {
  user: U;
  disabled: boolean;
}

export interface ViewSession {
  userId: number;
  revokedAt: Date | null;
  expiresAt: Date;
  amr: string[];
  clientId: string | null;
}

/** What the database said about a (user, session) pair: both rows, or nothing (gone for good: ids are not reused). */
export type LookupRow<U> = { user: U & { id: number; disabled: boolean }; session: ViewSession } | null;

interface Entry<T> {
  value: T;
  storedAt: number;
}

class Lru<K, V> {
  private readonly map = new Map<K, Entry<V>>();
  constructor(private readonly max: number) {}

  get(key: K, now: number): V | undefined {
    const entry = this.map.get(key);
    if (!entry) return undefined;
    this.map.delete(key);
    if (now - entry.storedAt > ENTRY_MAX_AGE_MS) return undefined;
    this.map.set(key, entry); // most recently used last
    return entry.value;
  }

  set(key: K, value: V, now: number): void {
    this.map.delete(key);
    this.map.set(key, { value, storedAt: now });
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }

  *entries(): Iterable<[K, V]> {
    for (const [key, entry] of this.map) yield [key, entry.value];
  }
}

export interface ViewStats {
  enabled: boolean;
  healthy: boolean;
  users: number;
  sessions: number;
  tokens: number;
  hits: number;
  misses: number;
  invalidations: number;
  /** Milliseconds from publication to application, over the last invalidations. */
  lagMs: { p50: number; p99: number; max: number; samples: number };
}

export interface VerifiedToken<C> {
  claims: C;
  kid: string;
  /** Seconds since the epoch: the token's own `exp`, after which the entry is worthless. */
  exp: number;
}

export class AccessView<U extends { id: number; disabled: boolean }, C> {
  private readonly users: Lru<number, U>;
  private readonly sessions: Lru<string, ViewSession | null>;
  private readonly tokens: Lru<string, VerifiedToken<C>>;
  private healthy = false;
  private sequence = 0;
  /** The sequence of the last invalidation of each `u:<id>` / `s:<sid>`, with when it happened. */
  private readonly invalidated = new Map<string, { seq: number; at: number }>();
  private clearedAt = 0;
  private hits = 0;
  private misses = 0;
  private invalidations = 0;
  private readonly lags: number[] = [];

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    this.users = new Lru(Math.max(1, maxEntries));
    this.sessions = new Lru(Math.max(1, maxEntries));
    this.tokens = new Lru(Math.max(1, maxEntries));
  }

  /** False with ACCESS_VIEW_MAX_ENTRIES=0, or where no listener can keep it current (Workers). */
  get enabled(): boolean {
    return this.maxEntries > 0;
  }

  /** Answers may come from memory: the listener is connected and alive. */
  get usable(): boolean {
    return this.enabled && this.healthy;
  }

  /**
   * The listener's state. Losing it stops all use at once; regaining it drops everything remembered before,
   * since changes announced meanwhile were never heard.
   */
  setHealthy(healthy: boolean): void {
    if (healthy && !this.healthy) this.clear();
    this.healthy = healthy;
  }

  /**
   * The pair as last read, or undefined when it must be read from the database. A session remembered as gone
   * (null) stays gone: session ids are never reused.
   */
  lookup(userId: number, sessionId: string): { user: U | undefined; session: ViewSession | null } | undefined {
    if (!this.usable) return undefined;
    const now = this.now();
    const session = this.sessions.get(sessionId, now);
    if (session === undefined) return this.miss();
    if (session === null || session.userId !== userId) {
      this.hits++;
      return { user: undefined, session: null };
    }
    const user = this.users.get(userId, now);
    if (user === undefined) return this.miss();
    this.hits++;
    return { user, session };
  }

  private miss(): undefined {
    this.misses++;
    return undefined;
  }

  /** Before a database read whose result may be remembered: the read's place in the order of invalidations. */
  ticket(): number {
    return this.sequence;
  }

  /** Remembers what a read that began at `ticket` found, unless an invalidation of it came since. */
  fill(ticket: number, userId: number, sessionId: string, row: LookupRow<U>): void {
    if (!this.usable || ticket < this.clearedAt) return;
    // An invalidation after the read began (a higher sequence) means the read may have seen the old row.
    if ((this.invalidated.get(`u:${userId}`)?.seq ?? -1) > ticket) return;
    if ((this.invalidated.get(`s:${sessionId}`)?.seq ?? -1) > ticket) return;
    const now = this.now();
    this.sessions.set(sessionId, row ? row.session : null, now);
    if (row) this.users.set(userId, row.user, now);
  }

  /** Applies an invalidation: what it names is forgotten, and no read begun before it is remembered. */
  apply({ change, publishedAt }: AccessMessage): void {
    const now = this.now();
    this.sequence++;
    this.invalidations++;
    if (Number.isFinite(publishedAt)) this.recordLag(Math.max(0, now - publishedAt));
    switch (change.kind) {
      // A user's change needs only their own entry gone: being disabled or deleted is read from it, and a
      // change that ends sessions (a new password, say) announces each session too.
      case 'user':
        this.users.delete(change.userId);
        this.invalidated.set(`u:${change.userId}`, { seq: this.sequence, at: now });
        break;
      case 'session':
        this.sessions.delete(change.sessionId);
        this.invalidated.set(`s:${change.sessionId}`, { seq: this.sequence, at: now });
        break;
      case 'key':
        for (const [token, verified] of this.tokens.entries()) {
          if (verified.kid === change.kid) this.tokens.delete(token);
        }
        break;
      case 'keys':
        break;
    }
    if (this.invalidated.size > this.maxEntries)
      this.clear(); // a flood of changes: start afresh, safely
    else this.pruneInvalidations(now);
  }

  private pruneInvalidations(now: number): void {
    if (this.sequence % 256 !== 0) return;
    for (const [key, { at }] of this.invalidated) {
      if (now - at > INVALIDATION_MEMORY_MS) this.invalidated.delete(key);
    }
  }

  /** A token whose signature and claims were checked, by its exact text (a changed byte is another key). */
  verifiedToken(token: string, nowSeconds: number): VerifiedToken<C> | undefined {
    const verified = this.tokens.get(token, this.now());
    if (!verified) return undefined;
    if (verified.exp <= nowSeconds) {
      this.tokens.delete(token);
      return undefined;
    }
    return verified;
  }

  rememberToken(token: string, verified: VerifiedToken<C>): void {
    if (this.enabled) this.tokens.set(token, verified, this.now());
  }

  /** Drops everything; the next reads go to the database. */
  clear(): void {
    this.users.clear();
    this.sessions.clear();
    this.tokens.clear();
    this.invalidated.clear();
    this.sequence++;
    this.clearedAt = this.sequence;
  }

  private recordLag(ms: number): void {
    if (this.lags.length >= LAG_SAMPLES) this.lags.shift();
    this.lags.push(ms);
  }

  stats(): ViewStats {
    const sorted = [...this.lags].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    return {
      enabled: this.enabled,
      healthy: this.healthy,
      users: this.users.size,
      sessions: this.sessions.size,
      tokens: this.tokens.size,
      hits: this.hits,
      misses: this.misses,
      invalidations: this.invalidations,
      lagMs: { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? 0, samples: sorted.length },
    };
  }
}
