/**
 * Checking a password against an account, and what that costs. Two threats decide the shape:
 *
 * - **Who exists** (user enumeration by timing): an unknown email, a wrong password and a disabled account
 *   must cost the same bcrypt work, also when stored hashes have another cost than BCRYPT_COST (imported
 *   passlib hashes, a cost raised since): every failed check costs one hash at the highest cost met so far
 *   (at least BCRYPT_COST). An unknown email verifies a dummy at that cost; a stored hash of a lower cost is
 *   topped up with dummies of its cost, its cost + 1, …, the target − 1, which adds up to exactly one hash
 *   at the target (2^c + 2^c + 2^(c+1) + … = 2^target). A stored hash of a higher cost than met so far
 *   raises the target from then on.
 * - **Hashes converge**: a successful login rehashes a password stored at another cost or ident, so imported
 *   `$2y$`/`$2a$` hashes and old costs become `$2b$` at BCRYPT_COST, and the top-ups become rare.
 */
import type { Config } from '../config';
import type { Database } from '../db/database';
import type { User } from '../db/schema';
import { bcryptCost, CURRENT_IDENT, randomBcryptHash } from '../hashing/bcrypt';
import type { HashOptions, PasswordHasher } from '../hashing/hasher';
import { clientKey } from '../lib/ip';
import { isAcceptablePassword } from '../lib/password-policy';
import { AppError } from '../lib/problems';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { beginPasswordAttempt } from '../rate-limit/lockout';
import { recordAudit } from './audit';

/**
 * A request's hash options: its signal and deadline (hashing/pool.ts refuses work that cannot finish in
 * time and drops work nobody waits for), and whom the job is for, each of which may hold only a small share
 * of the pool. A preferred job (an address the account logged in from before) does not count against the
 * account's share: a flood at the account must not keep its owner out.
 */
export function hashOptions(
  meta: RequestMeta,
  { account, preferred = false }: { account?: string; preferred?: boolean } = {},
): HashOptions {
  const owners = [`address:${clientKey(meta.ip)}`];
  if (account !== undefined && !preferred) owners.push(`account:${account}`);
  return { signal: meta.signal, deadline: meta.deadline, owners, preferred };
}

/**
 * The highest bcrypt cost this app has met among stored hashes, at least BCRYPT_COST: what every failed
 * password check costs. One per app (services/context.ts).
 */
export interface HashCosts {
  highest: number;
}

type CheckDeps = { hasher: PasswordHasher; hashCosts: HashCosts };

/**
 * Whether `password` is the password of `user`, an enabled account; false for an unknown (undefined) or
 * disabled user, at the same bcrypt cost as a wrong password.
 */
export async function checkPassword(
  { hasher, hashCosts }: CheckDeps,
  { user, password, options }: { user: User | undefined; password: string; options: HashOptions },
): Promise<boolean> {
  const stored = user ? bcryptCost(user.passwordHash) : null;
  if (!user || stored === null || !isAcceptablePassword(password)) {
    await hasher.verify(isAcceptablePassword(password) ? password : '', randomBcryptHash(hashCosts.highest), options);
    return false;
  }
  if (stored > hashCosts.highest) hashCosts.highest = stored;
  if ((await hasher.verify(password, user.passwordHash, options)) && !user.disabled) return true;
  for (let cost = stored; cost < hashCosts.highest; cost++) {
    await hasher.verify(password, randomBcryptHash(cost), options);
  }
  return false;
}

/** A hash made with another cost than BCRYPT_COST, or with an older ident than `$2b$`. */
export const isOutdatedHash = (hash: string, cost: number): boolean =>
  bcryptCost(hash) !== cost || !hash.startsWith(CURRENT_IDENT);

/**
 * After a successful login: a fresh hash of the password when the stored one is outdated, else null. Only
 * within the request's time: an overloaded pool or an abandoned request gives null (the next login tries
 * again), as does a failing hasher.
 */
export async function freshHashIfOutdated(
  { hasher, config }: { hasher: PasswordHasher; config: Pick<Config, 'BCRYPT_COST'> },
  { user, password, meta }: { user: User; password: string; meta: RequestMeta },
): Promise<string | null> {
  if (!isOutdatedHash(user.passwordHash, config.BCRYPT_COST)) return null;
  try {
    const fresh = await hasher.hash(password, hashOptions(meta, { account: user.email, preferred: true }));
    throwIfAbandoned(meta);
    return fresh;
  } catch {
    return null; // the old hash still verifies
  }
}

/**
 * Runs `work` once the caller has given the current password of their own account (a password or address
 * change), checked like a login: the same per account and per address limits (rate-limit/lockout.ts), and a
 * wrong one is audited (`password_change_failed`) and answered 400 `wrong-password`. So a stolen access token
 * is neither an unlimited oracle for the password nor, through such a change, a takeover. `work` gets the
 * request's hash options; the attempt's points come back unless the password was wrong.
 */
export async function withCurrentPassword<T>(
  ctx: CheckDeps & { db: Database } & Parameters<typeof beginPasswordAttempt>[0],
  { user, password, meta, action }: { user: User; password: string; meta: RequestMeta; action: string },
  work: (options: HashOptions) => Promise<T>,
): Promise<T> {
  const attempt = await beginPasswordAttempt(ctx, { account: user.email, address: clientKey(meta.ip) });
  const options = hashOptions(meta, { account: user.email, preferred: attempt.known });
  let matches: boolean;
  try {
    matches = await checkPassword(ctx, { user, password, options });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  if (!matches) {
    await attempt.settle('failed');
    throwIfAbandoned(meta);
    await recordAudit(ctx, {
      event: 'password_change_failed',
      meta,
      userId: user.id,
      actorId: user.id,
      details: { action },
    });
    throw new AppError('wrong-password');
  }
  let result: T;
  try {
    result = await work(options);
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  await attempt.settle('succeeded');
  return result;
}
