/**
 * The single-use tokens mailed in links: 256 random bits, of which only a SHA-256 is stored (a copy of the
 * database opens no account), bound to a purpose, a user and the address the link went to, expiring, and
 * spent by one conditional UPDATE so that of two uses racing exactly one wins.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { type LinkToken, type LinkTokenPurpose, linkTokens, type User, users } from '../db/schema';
import type { Clock } from '../lib/clock';
import { randomToken, sha256 } from '../lib/crypto';
import { AppError } from '../lib/problems';

export type { LinkTokenPurpose };

const MINUTE_MS = 60_000;
/** Verification and address-change links: a day, long enough for mail that is read tomorrow morning. */
export const EMAIL_LINK_EXPIRE_MINUTES = 24 * 60;

// randomToken(32): 32 bytes in unpadded base64url.
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** Unknown, expired, spent, of another purpose or for an address the account no longer has: one answer. */
export const invalidToken = () => new AppError('invalid-token');

/** Stores a token for `userId`, valid for `minutes`, and returns the secret to put in the link. */
export async function issueLinkToken(
  { db, clock }: { db: Pick<Database, 'insert'>; clock: Clock },
  input: { purpose: LinkTokenPurpose; userId: number; email: string; minutes: number },
): Promise<string> {
  const token = randomToken();
  await db.insert(linkTokens).values({
    purpose: input.purpose,
    userId: input.userId,
    email: input.email,
    tokenHash: await sha256(token),
    expiresAt: new Date(clock.now().getTime() + input.minutes * MINUTE_MS),
  });
  return token;
}

/**
 * The live token behind `token` and its user, or an invalid-token error. Live: one of `purposes`, unspent,
 * unexpired, its user enabled, and (but for an address change, whose `email` is the new address) still the
 * user's address: a link mailed to an address the account has since left opens nothing.
 */
export async function findLiveLinkToken(
  { db, clock }: { db: Database; clock: Clock },
  { token, purposes }: { token: string; purposes: readonly LinkTokenPurpose[] },
): Promise<{ link: LinkToken; user: User }> {
  if (!TOKEN_PATTERN.test(token)) throw invalidToken();
  const [found] = await db
    .select({ link: linkTokens, user: users })
    .from(linkTokens)
    .innerJoin(users, eq(users.id, linkTokens.userId))
    .where(eq(linkTokens.tokenHash, await sha256(token)))
    .limit(1);
  // The lookup is by the hash itself (an index probe), so no comparison of secrets happens in JavaScript.
  if (!found) throw invalidToken();
  const { link, user } = found;
  const live =
    purposes.includes(link.purpose) &&
    link.spentAt === null &&
    link.expiresAt > clock.now() &&
    !user.disabled &&
    (link.purpose === 'email_change' || link.email === user.email);
  if (!live) throw invalidToken();
  return { link, user };
}

/** Spends the token; false when another request spent it first. Run it in the transaction that uses it. */
export async function spendLinkToken({ db, clock }: { db: Database; clock: Clock }, { id }: { id: string }) {
  const spent = await db
    .update(linkTokens)
    .set({ spentAt: clock.now() })
    .where(and(eq(linkTokens.id, id), isNull(linkTokens.spentAt)))
    .returning({ id: linkTokens.id });
  return spent.length > 0;
}

/** Spends every unspent token of the user for `purpose` (after a reset, the other reset links die with it). */
export async function spendUserLinkTokens(
  { db, clock }: { db: Database; clock: Clock },
  { userId, purpose }: { userId: number; purpose: LinkTokenPurpose },
): Promise<void> {
  await db
    .update(linkTokens)
    .set({ spentAt: clock.now() })
    .where(and(eq(linkTokens.userId, userId), eq(linkTokens.purpose, purpose), isNull(linkTokens.spentAt)));
}

/** Deletes tokens that expired more than a day ago (`cli prune`); returns how many. */
export async function deleteExpiredLinkTokens({ db, clock }: { db: Database; clock: Clock }): Promise<number> {
  const before = new Date(clock.now().getTime() - 24 * 60 * MINUTE_MS);
  const deleted = await db
    .delete(linkTokens)
    .where(sql`${linkTokens.expiresAt} < ${before.toISOString()}::timestamptz`)
    .returning({ id: linkTokens.id });
  return deleted.length;
}
