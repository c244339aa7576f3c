/**
 * Brute-force protection (OWASP Authentication Cheat Sheet, "Login Throttling" and "Account Lockout"):
 * which limits exist, from the configuration, and how a request is counted against one. The rules for
 * password guesses are in lockout.ts; the stores that keep the counters (memory, PostgreSQL, Redis) in
 * stores.ts.
 */
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../config';
import { sha256 } from '../lib/crypto';
import { describeError, type Logger } from '../lib/logger';
import { AppError } from '../lib/problems';

/** What the app needs of a rate-limiter-flexible limiter (memory, Redis or PostgreSQL; the runtime picks). */
export type Limiter = Pick<RateLimiterAbstract, 'consume' | 'delete' | 'get' | 'reward'>;

/** The limits the configuration turns on; a limit left out is off. */
export interface RateLimits {
  /** `POST /token` and `PUT /users/me/password` requests per client address. */
  loginPerIp?: Limiter;
  /** Failed password checks per account and client address (IPv6 /64): the hard limit (lockout.ts). */
  loginFailures?: Limiter;
  /** Failed password checks per account from addresses it has not logged in from, per lockout window. */
  accountFailures?: Limiter;
  /** The same per day: the account-wide limit's longer step. */
  accountFailuresDaily?: Limiter;
  /** `POST /register` requests per client address. */
  registerPerIp?: Limiter;
  /** Recovery requests that mail someone (forgot password, resend verification) per client IP. */
  recoveryPerIp?: Limiter;
  /** Those requests per target address, from any IP: nobody can mail-bomb an address through us. */
  recoveryPerEmail?: Limiter;
  /** Not a limit: the (account, address) pairs with a successful login, each kept for a while. */
  knownAddresses?: Limiter;
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
/** API.md: recovery mail to one address, per hour. */
export const RECOVERY_MAILS_PER_ADDRESS_PER_HOUR = 3;
const DAY_SECONDS = 24 * HOUR_SECONDS;
const MARKER_POINTS = 2 ** 30; // a known-address marker is never "used up"

/** The limits the configuration asks for; a limit set to 0 is absent (off). */
export function rateLimitSpecs(config: Config): Partial<Record<RateLimitName, RateLimitSpec>> {
  const specs: Partial<Record<RateLimitName, RateLimitSpec>> = {};
  const add = (name: RateLimitName, points: number, duration: number) => {
    if (points > 0 && duration > 0) specs[name] = { keyPrefix: `rl:${name}`, points, duration };
  };
  add('loginPerIp', config.RATE_LIMIT_LOGIN_PER_IP, MINUTE_SECONDS);
  add('loginFailures', config.RATE_LIMIT_LOGIN_FAILURES, config.RATE_LIMIT_LOCKOUT_SECONDS);
  add('accountFailures', config.RATE_LIMIT_ACCOUNT_FAILURES, config.RATE_LIMIT_LOCKOUT_SECONDS);
  add('accountFailuresDaily', config.RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY, DAY_SECONDS);
  add('registerPerIp', config.RATE_LIMIT_REGISTER_PER_IP, HOUR_SECONDS);
  add('recoveryPerIp', config.RATE_LIMIT_RECOVERY_PER_IP, HOUR_SECONDS);
  add('recoveryPerEmail', RECOVERY_MAILS_PER_ADDRESS_PER_HOUR, HOUR_SECONDS);
  add('knownAddresses', MARKER_POINTS, config.RATE_LIMIT_KNOWN_ADDRESS_DAYS * DAY_SECONDS);
  return specs;
}

/** What a 429 of each limit says. */
const DETAILS = {
  loginPerIp: 'Too many login attempts from this address; try again later',
  registerPerIp: 'Too many registrations from this address; try again later',
  loginFailures: 'Too many failed logins for this account; try again later',
  recoveryPerIp: 'Too many recovery requests from this address; try again later',
  recoveryPerEmail: 'Too many messages were requested for this email address; try again later',
  accountFailures:
    'Too many failed logins for this account from new addresses; try again later, or from an address you logged in from before',
  accountFailuresDaily:
    'Too many failed logins for this account today from new addresses; try again later, or from an address you logged in from before',
  knownAddresses: 'Too many attempts; try again later', // never answered: markers have no limit
} satisfies Record<RateLimitName, string>;

export const isLimitReached = (rejection: unknown): rejection is { msBeforeNext: number } =>
  !(rejection instanceof Error) && typeof (rejection as { msBeforeNext?: unknown } | null)?.msBeforeNext === 'number';

/** The 429 of the limit `name`, with `Retry-After` the whole seconds until its window ends: the real wait. */
export const limitReached = (name: RateLimitName, msBeforeNext: number) =>
  new AppError('rate-limited', {
    detail: DETAILS[name],
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(msBeforeNext / 1000))) },
  });

// Keys carry what a client typed (a login's username, up to 1,024 characters): past this length the store
// sees their SHA-256 instead, so no key exceeds an index row or a Redis key budget, and none is stored verbatim.
const MAX_KEY_CHARS = 128;

/** The key as the stores see it. */
export async function storeKey(key: string): Promise<string> {
  return key.length <= MAX_KEY_CHARS ? key : `sha256:${await sha256(key)}`;
}

interface LimitDeps {
  rateLimits: RateLimits;
  logger: Logger;
}

/**
 * Counts one request against `key` on the limit `name`; throws a 429 problem with `Retry-After` once the
 * limit is reached. The shared stores (Redis, PostgreSQL) fall back to this instance's own in-memory limits
 * while they are unreachable (stores.ts), so an outage keeps the protection, only per instance. Should
 * even that fail, the request goes through with a warning: a broken limiter must not lock every user out
 * of their account (fail open), and the per-account limit is a second line behind the per-IP one.
 */
export async function consumeLimit({ rateLimits, logger }: LimitDeps, name: RateLimitName, key: string): Promise<void> {
  const limiter = rateLimits[name];
  if (!limiter) return;
  try {
    await limiter.consume(await storeKey(key));
  } catch (rejection) {
    if (isLimitReached(rejection)) throw limitReached(name, rejection.msBeforeNext);
    logger.warn('rate limiter failed; request allowed', { limit: name, error: describeError(rejection) });
  }
}

/** Starts `key` afresh on the limit `name` (after a successful login, the account's failures are forgiven). */
export async function resetLimit({ rateLimits, logger }: LimitDeps, name: RateLimitName, key: string): Promise<void> {
  try {
    await rateLimits[name]?.delete(await storeKey(key));
  } catch (error) {
    logger.warn('rate limiter failed to clear a counter', { limit: name, error: describeError(error) });
  }
}
