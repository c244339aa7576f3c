/**
 * The limits on password guesses: every check of a password against an account (the password grant, the
 * current password of a password change) is an attempt, and attempts are limited so that nobody can guess
 * a password online, nor aim a lockout at somebody else (OWASP Authentication Cheat Sheet, "Account
 * Lockout"; ASVS 5.0 V6.1.1; NIST SP 800-63B §5.2.2).
 *
 * - **Per account and client address** (IPv6 per /64): `RATE_LIMIT_LOGIN_FAILURES` failures per
 *   `RATE_LIMIT_LOCKOUT_SECONDS`, the hard limit. It locks the guesser's address out of that account, and
 *   nobody else.
 * - **Per account, from new addresses**: failures from addresses the account has never logged in from also
 *   count account-wide, `RATE_LIMIT_ACCOUNT_FAILURES` per lockout window and
 *   `RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY` per day (the longer step: the more guesses, the longer the lock).
 *   Past either, new addresses get 429 for the rest of that window; a botnet of addresses cannot guess on.
 * - **Known addresses keep a way in**: an address the account logged in from successfully within
 *   `RATE_LIMIT_KNOWN_ADDRESS_DAYS` is exempt from the account-wide limits (only its own per-address limit
 *   applies), so however hard an account is attacked, its owner can still log in from home.
 * - **Reserved before the hash, returned after a success**: an attempt takes its points before bcrypt runs,
 *   so parallel guesses cannot all slip past one check; a success returns them (and forgives the address's
 *   failures), and an attempt that was never checked (overload, a client that left) returns them too. An
 *   attempt refused only because other attempts of the same account are still in flight on this instance
 *   waits for them and tries again, so parallel *correct* logins are never answered 429.
 * - A 429's `Retry-After` is the real wait: the whole seconds until the window that refused it ends.
 */
import { describeError, type Logger } from '../lib/logger';
import type { LockoutLimit, Metrics } from '../lib/metrics';
import { isLimitReached, limitReached, type RateLimitName, type RateLimits, resetLimit, storeKey } from './limits';

/** An attempt in flight on this instance. */
interface InFlight {
  /** Taking its points; holding them while its password is checked; or refused, waiting for the others. */
  state: 'reserving' | 'holding' | 'waiting';
  /** Resolves once it holds its points, or is gone. */
  held: Promise<void>;
  /** Resolves once it is settled (or refused for good). */
  gone: Promise<void>;
  hold(): void;
  leave(): void;
}

/** The attempts in flight on this instance, per account: what a reservation refused by the limit waits for. */
export type AttemptTracker = Map<string, Set<InFlight>>;

export const createAttemptTracker = (): AttemptTracker => new Map();

export type AttemptOutcome = 'succeeded' | 'failed' | 'unchecked';

export interface PasswordAttempt {
  /** The address has logged in to this account before: served first by the hash pool, exempt account-wide. */
  known: boolean;
  /** Books the outcome: a failure keeps its points, a success or an unchecked attempt returns them. */
  settle(outcome: AttemptOutcome): Promise<void>;
}

interface LockoutDeps {
  rateLimits: RateLimits;
  logger: Logger;
  attempts: AttemptTracker;
  metrics: Pick<Metrics, 'lockout'>;
}

type Reservation = { name: LockoutLimit & RateLimitName; key: string };

/**
 * Starts a password attempt of `address` (a clientKey) on `account` (the normalized email, known or not:
 * unknown emails are counted exactly like known ones, so a 429 reveals nothing). Throws the 429 of the
 * limit that refuses it.
 */
export async function beginPasswordAttempt(
  deps: LockoutDeps,
  { account, address }: { account: string; address: string },
): Promise<PasswordAttempt> {
  const { attempts } = deps;
  // The address first: a client key never contains `|`, so no two pairs share a key.
  const pair = await storeKey(`${address}|${account}`);
  const accountKey = await storeKey(account);
  const known = await isKnownAddress(deps, pair);
  const wanted: Reservation[] = [{ name: 'loginFailures', key: pair }];
  if (!known)
    wanted.push({ name: 'accountFailures', key: accountKey }, { name: 'accountFailuresDaily', key: accountKey });

  const self = track(attempts, account);
  let reserved: Reservation[];
  try {
    for (;;) {
      self.state = 'reserving';
      const outcome = await reserve(deps, wanted);
      if ('reserved' in outcome) {
        reserved = outcome.reserved;
        self.hold();
        break;
      }
      // Other attempts of this account may hold the points (a success returns its points) or be taking them:
      // wait until one of them is settled, or gets its points, and try again. Each is bounded by its
      // request's deadline. Attempts that wait themselves are not waited for, and waiting wakes nobody, so
      // refused attempts neither wait for each other nor wake each other in a loop.
      const others = [...(attempts.get(account) ?? [])].filter((other) => other !== self && other.state !== 'waiting');
      if (others.length === 0) {
        deps.metrics.lockout(outcome.refused.name);
        throw limitReached(outcome.refused.name, outcome.msBeforeNext);
      }
      self.state = 'waiting';
      await Promise.race(others.map((other) => (other.state === 'holding' ? other.gone : other.held)));
    }
  } catch (error) {
    untrack(attempts, account, self);
    throw error;
  }

  let done = false;
  return {
    known,
    async settle(outcome) {
      if (done) return;
      done = true;
      try {
        if (outcome === 'succeeded') {
          await forget(
            deps,
            reserved.filter(({ name }) => name !== 'loginFailures'),
          );
          await resetLimit(deps, 'loginFailures', pair); // the address's failures are forgiven
          await markKnown(deps, pair);
        } else if (outcome === 'unchecked') {
          await forget(deps, reserved);
        }
      } finally {
        untrack(attempts, account, self);
      }
    },
  };
}

/**
 * After a password reset the mailbox owner is back: the account-wide failures are forgotten, and so are
 * those of the address the reset came from, which becomes one the account logs in from. Other addresses
 * keep their own failures (an attacker's address stays locked out).
 */
export async function liftLockout(
  deps: Pick<LockoutDeps, 'rateLimits' | 'logger'>,
  { account, address }: { account: string; address: string },
): Promise<void> {
  const pair = await storeKey(`${address}|${account}`);
  const accountKey = await storeKey(account);
  await resetLimit(deps, 'accountFailures', accountKey);
  await resetLimit(deps, 'accountFailuresDaily', accountKey);
  await resetLimit(deps, 'loginFailures', pair);
  await markKnown(deps, pair);
}

function track(attempts: AttemptTracker, account: string): InFlight {
  let resolveHeld = () => {};
  let resolveGone = () => {};
  const entry: InFlight = {
    state: 'reserving',
    held: new Promise((resolve) => {
      resolveHeld = resolve;
    }),
    gone: new Promise((resolve) => {
      resolveGone = resolve;
    }),
    hold: () => {
      entry.state = 'holding';
      resolveHeld();
    },
    leave: () => {
      resolveHeld();
      resolveGone();
    },
  };
  const entries = attempts.get(account) ?? new Set();
  attempts.set(account, entries.add(entry));
  return entry;
}

function untrack(attempts: AttemptTracker, account: string, entry: InFlight): void {
  const entries = attempts.get(account);
  entries?.delete(entry);
  if (entries?.size === 0) attempts.delete(account);
  entry.leave(); // wakes whoever waits for it
}

/**
 * Takes one point on each wanted limit, in order. Refused by one: gives back what it took (the refused
 * point too: an attempt that is not made does not count), and says which and until when. A store that
 * fails (not a limit) lets the attempt through with a warning, as consumeLimit does.
 */
async function reserve(
  { rateLimits, logger }: LockoutDeps,
  wanted: Reservation[],
): Promise<{ reserved: Reservation[] } | { refused: Reservation; msBeforeNext: number }> {
  const reserved: Reservation[] = [];
  for (const reservation of wanted) {
    const limiter = rateLimits[reservation.name];
    if (!limiter) continue;
    try {
      await limiter.consume(reservation.key);
      reserved.push(reservation);
    } catch (rejection) {
      if (!isLimitReached(rejection)) {
        logger.warn('rate limiter failed; request allowed', {
          limit: reservation.name,
          error: describeError(rejection),
        });
        continue;
      }
      await forget({ rateLimits, logger }, [...reserved, reservation]);
      return { refused: reservation, msBeforeNext: rejection.msBeforeNext };
    }
  }
  return { reserved };
}

/** Gives one point back on each reservation. */
async function forget({ rateLimits, logger }: Pick<LockoutDeps, 'rateLimits' | 'logger'>, reservations: Reservation[]) {
  for (const { name, key } of reservations) {
    try {
      await rateLimits[name]?.reward(key);
    } catch (error) {
      logger.warn('rate limiter failed to return a point', { limit: name, error: describeError(error) });
    }
  }
}

async function isKnownAddress({ rateLimits, logger }: LockoutDeps, pair: string): Promise<boolean> {
  try {
    return ((await rateLimits.knownAddresses?.get(pair)) ?? null) !== null;
  } catch (error) {
    // Unknown is the safe answer: the account-wide limits then apply, as for any new address.
    logger.warn('rate limiter failed to read a known address', { error: describeError(error) });
    return false;
  }
}

/** Marks the address known to the account for RATE_LIMIT_KNOWN_ADDRESS_DAYS from now (a new marker each time). */
async function markKnown({ rateLimits, logger }: Pick<LockoutDeps, 'rateLimits' | 'logger'>, pair: string) {
  const markers = rateLimits.knownAddresses;
  if (!markers) return;
  try {
    await markers.delete(pair);
    await markers.consume(pair);
  } catch (error) {
    logger.warn('rate limiter failed to mark a known address', { error: describeError(error) });
  }
}
