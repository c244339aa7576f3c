import { and, desc, eq, gt, isNull, lte, or, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { refreshTokens, type Session, sessions, type User, users } from '../db/schema';
import type { AppDeps } from '../deps';
import { constantTimeEqual, randomToken, sha256 } from '../lib/crypto';
import { unauthorized } from '../lib/errors';
import { type RequestMeta, recordAudit } from './audit';

const DAY_MS = 24 * 60 * 60 * 1000;
// `<token id>.<secret>`: the id finds the row, the secret (256 bits) proves possession; only its hash is stored.
const REFRESH_TOKEN = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

type Deps = Pick<AppDeps, 'db' | 'config' | 'clock'>;
/** The database or a transaction on it. */
type Executor = Pick<Database, 'insert' | 'update' | 'delete' | 'select'>;

async function issueRefreshToken(db: Executor, sessionId: string): Promise<string> {
  const secret = randomToken();
  const [row] = await db
    .insert(refreshTokens)
    .values({ sessionId, secretHash: await sha256(secret) })
    .returning({ id: refreshTokens.id });
  return `${row?.id}.${secret}`;
}

/**
 * Starts a session (a refresh-token family) for a user who just proved their password, and returns it
 * with its first refresh token. Also drops the user's sessions that ended, so the table stays small.
 */
export async function startSession(
  db: Executor,
  { config, clock }: Omit<Deps, 'db'>,
  userId: number,
  meta: RequestMeta,
) {
  const now = clock.now();
  await db
    .delete(sessions)
    .where(and(eq(sessions.userId, userId), or(lte(sessions.expiresAt, now), sql`${sessions.revokedAt} is not null`)));
  const [session] = await db
    .insert(sessions)
    .values({
      userId,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: new Date(now.getTime() + config.REFRESH_TOKEN_EXPIRE_DAYS * DAY_MS),
      userAgent: meta.userAgent,
      ip: meta.ip,
    })
    .returning();
  if (!session) throw new Error('session insert returned no row');
  return { session, refreshToken: await issueRefreshToken(db, session.id) };
}

const invalidRefreshToken = () => unauthorized('Invalid or expired refresh token');

/**
 * Spends a refresh token and returns the next one of its family (RFC 9700 §4.14.2 rotation). A token that
 * was already spent means it leaked, or a client raced itself: the whole family is revoked (§4.14.2 reuse
 * detection), which ends the attacker's and the victim's copies alike.
 */
export async function rotateRefreshToken(
  { db, clock }: Pick<Deps, 'db' | 'clock'>,
  presented: string,
  meta: RequestMeta,
) {
  const match = REFRESH_TOKEN.exec(presented);
  if (!match) throw invalidRefreshToken();
  const [, tokenId, secret] = match as unknown as [string, string, string];
  const now = clock.now();
  const [found] = await db
    .select({ token: refreshTokens, session: sessions, user: users })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(refreshTokens.id, tokenId))
    .limit(1);
  if (!found || !constantTimeEqual(found.token.secretHash, await sha256(secret))) throw invalidRefreshToken();
  const { token, session, user } = found;
  if (session.revokedAt || session.expiresAt <= now || user.disabled) throw invalidRefreshToken();

  const rotated = await db.transaction(async (tx) => {
    // Conditional on spent_at being null, so of two concurrent uses exactly one wins.
    const spent = await tx
      .update(refreshTokens)
      .set({ spentAt: now })
      .where(and(eq(refreshTokens.id, token.id), isNull(refreshTokens.spentAt)))
      .returning({ id: refreshTokens.id });
    if (spent.length === 0) return null;
    await tx.update(sessions).set({ lastUsedAt: now }).where(eq(sessions.id, session.id));
    await recordAudit(tx, meta, 'token_refreshed', { userId: user.id, details: { session_id: session.id } });
    return issueRefreshToken(tx, session.id);
  });
  if (rotated === null) {
    await db.transaction(async (tx) => {
      await tx.update(sessions).set({ revokedAt: now }).where(eq(sessions.id, session.id));
      await recordAudit(tx, meta, 'refresh_reuse_detected', { userId: user.id, details: { session_id: session.id } });
    });
    throw invalidRefreshToken();
  }
  return { user, session, refreshToken: rotated };
}

/** Revokes one of the user's live sessions; false when there is no such live session. */
export async function revokeSession(db: Executor, userId: number, sessionId: string, now: Date): Promise<boolean> {
  const revoked = await db
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  return revoked.length > 0;
}

/** Revokes every live session of the user: all their refresh tokens and access tokens stop working. */
export async function revokeAllSessions(db: Executor, userId: number, now: Date): Promise<number> {
  const revoked = await db
    .update(sessions)
    .set({ revokedAt: now })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  return revoked.length;
}

export async function listLiveSessions(db: Database, userId: number, now: Date): Promise<Session[]> {
  return db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)))
    .orderBy(desc(sessions.lastUsedAt));
}

// Every authenticated request runs this: one round trip, two primary-key lookups, prepared once per database.
const authQueries = new WeakMap<Database, ReturnType<typeof prepareAuthLookup>>();
const prepareAuthLookup = (db: Database) =>
  db
    .select({ user: users, session: { revokedAt: sessions.revokedAt, expiresAt: sessions.expiresAt } })
    .from(users)
    .innerJoin(sessions, and(eq(sessions.id, sql.placeholder('sessionId')), eq(sessions.userId, users.id)))
    .where(eq(users.id, sql.placeholder('userId')))
    .limit(1)
    .prepare('auth_lookup');

/**
 * The user behind an access token, if the token's session is still live and the user enabled; null
 * otherwise. This is what makes logout, password change, disabling and deleting take effect at once.
 */
export async function findAuthenticatedUser(
  db: Database,
  userId: number,
  sessionId: string,
  now: Date,
): Promise<User | null> {
  let query = authQueries.get(db);
  if (!query) {
    query = prepareAuthLookup(db);
    authQueries.set(db, query);
  }
  const [row] = await query.execute({ userId, sessionId });
  if (!row || row.user.disabled || row.session.revokedAt !== null || row.session.expiresAt <= now) return null;
  return row.user;
}
