import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config';
import type { AppDeps, AppEnv } from '../deps';
import { AppError } from '../lib/errors';
import { requestMeta } from '../lib/request-meta';
import { normalizeEmail } from '../services/users';

/** What the app needs of a rate-limiter-flexible limiter (memory, Redis or PostgreSQL; the runtime picks). */
export type Limiter = Pick<RateLimiterAbstract, 'consume' | 'delete'>;

/**
 * Brute-force protection (OWASP Authentication Cheat Sheet, "Login Throttling" and "Account Lockout"):
 * limits per client IP, and failed logins per account from any IP. A limit left out is off.
 */
export interface RateLimits {
  /** POST /token requests per client IP. */
  loginPerIp?: Limiter;
  /** Failed password logins per account (by normalized email); a success clears it. */
  loginFailures?: Limiter;
  /** POST /register requests per client IP. */
  registerPerIp?: Limiter;
}

export type RateLimitName = keyof RateLimits;

export interface RateLimitSpec {
  keyPrefix: string;
  /** Requests (or failures) allowed per window. */
  points: number;
  /** The window, in seconds; counting starts at the first request and the counter expires with it. */
  duration: number;
}

const MINUTE_SECONDS = 60;
const HOUR_SECONDS = 60 * 60;

/** The limits the configuration asks for; a limit set to 0 is absent (off). */
export function rateLimitSpecs(config: Config): Partial<Record<RateLimitName, RateLimitSpec>> {
  const specs: Partial<Record<RateLimitName, RateLimitSpec>> = {};
  const add = (name: RateLimitName, points: number, duration: number) => {
    if (points > 0) specs[name] = { keyPrefix: `rl:${name}`, points, duration };
  };
  add('loginPerIp', config.RATE_LIMIT_LOGIN_PER_IP, MINUTE_SECONDS);
  add('loginFailures', config.RATE_LIMIT_LOGIN_FAILURES, config.RATE_LIMIT_LOCKOUT_SECONDS);
  add('registerPerIp', config.RATE_LIMIT_REGISTER_PER_IP, HOUR_SECONDS);
  return specs;
}

/**
 * The bucket a client address counts against. An IPv6 client normally holds a whole /64 and can rotate
 * through it at will, so IPv6 is keyed by its /64; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as the IPv4
 * address. Without a known address (no socket information) every such request shares one bucket.
 */
export function clientKey(ip: string | null): string {
  if (!ip) return 'unknown';
  const address = ip.split('%')[0] ?? ip; // drop an IPv6 zone id (fe80::1%eth0)
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [left = '', right] = address.split('::');
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0); // a.b.c.d fills two
  const groups = right === undefined ? head : [...head, ...Array(8 - width(head) - width(tail)).fill('0'), ...tail];
  const prefix = groups.slice(0, 4).map((g) => Number.parseInt(g, 16));
  if (prefix.length < 4 || prefix.some((g) => !(g >= 0 && g <= 0xffff))) return address; // not one we can parse
  return `${prefix.map((g) => g.toString(16)).join(':')}::/64`;
}

const isLimitReached = (rejection: unknown): rejection is { msBeforeNext: number } =>
  !(rejection instanceof Error) && typeof (rejection as { msBeforeNext?: unknown } | null)?.msBeforeNext === 'number';

function rateLimited(msBeforeNext: number, detail: string): AppError {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new AppError(429, detail, { type: '/problems/rate-limited', headers: { 'Retry-After': String(seconds) } });
}

/**
 * Counts one request against `key`; throws a 429 problem with `Retry-After` once the limit is reached.
 * The shared stores (Redis, PostgreSQL) fall back to this instance's own in-memory limits while they are
 * unreachable (see rate-limit/stores.ts), so an outage keeps the protection, only per instance.
 * Should even that fail, the request goes through with a warning: a broken limiter must not lock every
 * user out of their account (fail open), and the per-account limit is a second line behind the per-IP one.
 */
async function consume(deps: AppDeps, name: RateLimitName, key: string, detail: string): Promise<void> {
  const limiter = deps.rateLimits[name];
  if (!limiter) return;
  try {
    await limiter.consume(key);
  } catch (rejection) {
    if (isLimitReached(rejection)) throw rateLimited(rejection.msBeforeNext, detail);
    deps.logger.warn('rate limiter failed; request allowed', { limit: name, error: describe(rejection) });
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.name : typeof error);

const DETAILS = {
  loginPerIp: 'Too many login attempts from this address; try again later',
  registerPerIp: 'Too many registrations from this address; try again later',
  loginFailures: 'Too many failed logins for this account; try again later',
} satisfies Record<RateLimitName, string>;

/** Route middleware: counts the request against the client IP's limit `name` before the body is even parsed. */
export const limitByClientIp = (name: 'loginPerIp' | 'registerPerIp') =>
  createMiddleware<AppEnv>(async (c: Context<AppEnv>, next) => {
    await consume(c.var.deps, name, clientKey(requestMeta(c).ip), DETAILS[name]);
    await next();
  });

const accountKey = (email: string) => normalizeEmail(email);

/**
 * Counts a password attempt against the account before bcrypt runs, and throws 429 once the account has
 * used up its failures in the window. Check and count are one atomic store operation, so a burst of
 * parallel guesses cannot all pass a check before any failure is recorded; and a locked account costs no
 * hashing. A successful login clears the count (clearLoginFailures), so what stays counted are failures.
 * Unknown emails count exactly like known ones, so a 429 says nothing about which accounts exist. The lock
 * is temporary: it ends with the window (RATE_LIMIT_LOCKOUT_SECONDS after the first failure), so an
 * attacker can delay a real user, never shut them out for good.
 */
export function countLoginAttempt(deps: AppDeps, email: string): Promise<void> {
  return consume(deps, 'loginFailures', accountKey(email), DETAILS.loginFailures);
}

/** After a successful login: the account starts again with its full allowance of failures. */
export async function clearLoginFailures(deps: AppDeps, email: string): Promise<void> {
  try {
    await deps.rateLimits.loginFailures?.delete(accountKey(email));
  } catch (error) {
    deps.logger.warn('rate limiter failed to clear a login counter', { error: describe(error) });
  }
}
