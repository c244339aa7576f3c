/**
 * Sessions: one refresh-token family each, started by a password login, extended by every rotation, ended
 * by logout, password change, disabling or deleting the user. Access tokens name their session (`sid`),
 * so ending the row ends them at once.
 */
import { and, desc, eq, gt, inArray, isNull, lte, or, type SQL, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { AccessChanges } from '../access/listener';
import { type AccessScope, inAccessTransaction } from '../access/transaction';
import type { LookupRow } from '../access/view';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { refreshTokens, type Session, sessions, signingKeys, type User, users } from '../db/schema';
import type { Clock } from '../lib/clock';
import { constantTimeEqual, randomToken, sha256 } from '../lib/crypto';
import { UUID_PATTERN } from '../lib/ids';
import type { Metrics } from '../lib/metrics';
import { AppError } from '../lib/problems';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { recordAudit } from './audit';

export type { Session };

const DAY_MS = 24 * 60 * 60 * 1000;
const SECOND_MS = 1000;
// `<token id>.<secret>`: the id finds the row, the secret (256 bits) proves possession; only its hash is stored.
const REFRESH_TOKEN = new RegExp(`^(${UUID_PATTERN})\\.([A-Za-z0-9_-]{43})$`);

interface SessionDeps {
  db: Database;
  clock: Clock;
}

async function issueRefreshToken(db: Database, sessionId: string, id: string = crypto.randomUUID()): Promise<string> {
  const secret = randomToken();
  const [row] = await db
    .insert(refreshTokens)
    .values({ id, sessionId, secretHash: await sha256(secret) })
    .returning({ id: refreshTokens.id });
  return `${row?.id}.${secret}`;
}

type Lifetimes = Pick<Config, 'REFRESH_TOKEN_IDLE_DAYS'>;

/** The last use before which a session counts as idle, and so as ended (REFRESH_TOKEN_IDLE_DAYS). */
const idleBefore = (now: Date, config: Lifetimes) => new Date(now.getTime() - config.REFRESH_TOKEN_IDLE_DAYS * DAY_MS);

/**
 * A session has ended once it is revoked, its refresh lifetime has passed (at `expiresAt` exactly, too), or it
 * has not been used for REFRESH_TOKEN_IDLE_DAYS.
 */
const hasEnded = (now: Date, config: Lifetimes): SQL =>
  or(
    lte(sessions.expiresAt, now),
    lte(sessions.lastUsedAt, idleBefore(now, config)),
    sql`${sessions.revokedAt} is not null`,
  ) as SQL;

/** The SQL twin of isLive (below) for the refresh grant, which also ends sessions left idle. */
const isRefreshable = (now: Date, config: Lifetimes): SQL =>
  and(isNull(sessions.revokedAt), gt(sessions.expiresAt, now), gt(sessions.lastUsedAt, idleBefore(now, config))) as SQL;

/** Deletes ended sessions, of one user or of everyone; returns how many. Their rows only served reuse detection. */
export async function deleteEndedSessions(
  { db, clock, config }: SessionDeps & { config: Lifetimes },
  { userId }: { userId?: number } = {},
): Promise<number> {
  const ended = hasEnded(clock.now(), config);
  const deleted = await db
    .delete(sessions)
    .where(userId === undefined ? ended : and(eq(sessions.userId, userId), ended))
    .returning({ id: sessions.id });
  return deleted.length;
}

/**
 * Starts a session for a user who just proved their password, and returns it with its first refresh token.
 * Also drops the user's sessions that ended, so the table stays small, and keeps at most
 * MAX_SESSIONS_PER_USER live: past that, the least recently used are ended (a script logging in in a loop,
 * or a stolen password used again and again, cannot grow the table or the session list without bound).
 * Run it in the login's access transaction.
 */
export async function startSession(
  {
    db,
    clock,
    config,
    changed,
  }: AccessScope & {
    clock: Clock;
    config: Pick<Config, 'REFRESH_TOKEN_EXPIRE_DAYS' | 'REFRESH_TOKEN_IDLE_DAYS' | 'MAX_SESSIONS_PER_USER'>;
  },
  {
    userId,
    meta,
    amr,
    clientId,
  }: {
    userId: number;
    meta: RequestMeta;
    amr: string[];
    /** null: the service's own public client */
    clientId: string | null;
  },
) {
  const now = clock.now();
  await deleteEndedSessions({ db, clock, config }, { userId });
  await endLeastRecentlyUsed({ db, clock, config, changed }, { userId, keep: config.MAX_SESSIONS_PER_USER - 1 });
  const [session] = await db
    .insert(sessions)
    .values({
      userId,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: new Date(now.getTime() + config.REFRESH_TOKEN_EXPIRE_DAYS * DAY_MS),
      userAgent: meta.userAgent,
      ip: meta.ip,
      amr,
      clientId,
    })
    .returning();
  if (!session) throw new Error('session insert returned no row');
  return { session, refreshToken: await issueRefreshToken(db, session.id) };
}

/** Ends the user's live sessions beyond the `keep` most recently used. */
async function endLeastRecentlyUsed(
  { db, clock, config, changed }: AccessScope & { clock: Clock; config: Lifetimes },
  { userId, keep }: { userId: number; keep: number },
): Promise<void> {
  const now = clock.now();
  const surplus = db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isRefreshable(now, config)))
    .orderBy(desc(sessions.lastUsedAt), desc(sessions.createdAt))
    .offset(keep);
  const ended = await db
    .update(sessions)
    .set({ revokedAt: now })
    .where(inArray(sessions.id, surplus))
    .returning({ id: sessions.id });
  for (const { id } of ended) changed({ kind: 'session', sessionId: id, userId });
}

const invalidRefreshToken = () => new AppError('invalid-refresh-token');

/**
 * The refresh token presented, with its session and user, when its secret matches (in constant time);
 * null for anything else. Says nothing about whether it is spent or its session live.
 */
export async function findRefreshToken({ db }: { db: Database }, { presented }: { presented: string }) {
  const match = REFRESH_TOKEN.exec(presented);
  if (!match) return null;
  const [, tokenId, secret] = match as unknown as [string, string, string];
  const [found] = await db
    .select({ token: refreshTokens, session: sessions, user: users })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(refreshTokens.id, tokenId))
    .limit(1);
  if (!found || !constantTimeEqual(found.token.secretHash, await sha256(secret))) return null;
  return found;
}

type Rotation = { refreshToken: string } | { refused: 'ended' | 'grace' | 'reused' };

/**
 * Spends a refresh token and returns the next one of its family (RFC 9700 §4.14.2 rotation). A token that
 * was already spent means it leaked, or a client raced itself:
 * - within REFRESH_REUSE_GRACE_SECONDS of its rotation, while its successor is still unused, it is a second
 *   tab or a retry after a lost answer: refused (400 invalid_grant), and the family lives on (the winner's new
 *   tokens keep working);
 * - otherwise the whole family is revoked (§4.14.2 reuse detection), which ends the attacker's and the
 *   victim's copies alike.
 * The transaction first updates the session row, and only if it is live: that checks liveness and locks the
 * row in one statement, so a logout (or a revocation) that committed first makes this refresh fail, and one
 * that comes later waits for this rotation and then ends its tokens too. Never a pair of dead tokens.
 */
export async function rotateRefreshToken(
  {
    db,
    clock,
    config,
    access,
    metrics,
  }: SessionDeps & {
    access: AccessChanges;
    metrics: Pick<Metrics, 'refreshReuse'>;
    config: Pick<Config, 'REFRESH_TOKEN_IDLE_DAYS' | 'REFRESH_REUSE_GRACE_SECONDS'>;
  },
  { presented, meta }: { presented: string; meta: RequestMeta },
): Promise<{ user: User; session: Session; refreshToken: string }> {
  const found = await findRefreshToken({ db }, { presented });
  if (!found) throw invalidRefreshToken();
  const { token, session, user } = found;
  if (user.disabled) throw invalidRefreshToken();
  const now = clock.now();

  const rotation = await inAccessTransaction({ db, access }, async ({ db: tx, changed }): Promise<Rotation> => {
    const [live] = await tx
      .update(sessions)
      .set({ lastUsedAt: now })
      .where(and(eq(sessions.id, session.id), isRefreshable(now, config)))
      .returning({ id: sessions.id });
    if (!live) return { refused: 'ended' };
    // Conditional on spent_at being null, so of two concurrent uses exactly one wins.
    const successorId = crypto.randomUUID();
    const spent = await tx
      .update(refreshTokens)
      .set({ spentAt: now, replacedBy: successorId })
      .where(and(eq(refreshTokens.id, token.id), isNull(refreshTokens.spentAt)))
      .returning({ id: refreshTokens.id });
    if (spent.length === 1) {
      await recordAudit(
        { db: tx },
        { event: 'token_refreshed', meta, userId: user.id, details: { session_id: session.id } },
      );
      const refreshToken = await issueRefreshToken(tx, session.id, successorId);
      // A client that left, or was answered by the timeout, never receives the new token: roll the rotation
      // back, so the token it holds still works (else its retry would find it spent).
      throwIfAbandoned(meta);
      return { refreshToken };
    }
    if (await isGraceReuse(tx, { tokenId: token.id, now, graceSeconds: config.REFRESH_REUSE_GRACE_SECONDS })) {
      return { refused: 'grace' };
    }
    await tx.update(sessions).set({ revokedAt: now }).where(eq(sessions.id, session.id));
    changed({ kind: 'session', sessionId: session.id, userId: user.id });
    await recordAudit(
      { db: tx },
      { event: 'refresh_reuse_detected', meta, userId: user.id, details: { session_id: session.id } },
    );
    return { refused: 'reused' };
  });
  if ('refused' in rotation) {
    if (rotation.refused === 'reused') metrics.refreshReuse();
    throw invalidRefreshToken();
  }
  return { user, session, refreshToken: rotation.refreshToken };
}

/** Whether a spent token came back within the grace window of its rotation, its successor still unused. */
async function isGraceReuse(
  db: Database,
  { tokenId, now, graceSeconds }: { tokenId: string; now: Date; graceSeconds: number },
): Promise<boolean> {
  if (graceSeconds === 0) return false;
  const successors = alias(refreshTokens, 'successor');
  const [row] = await db
    .select({ spentAt: refreshTokens.spentAt, successorSpentAt: successors.spentAt, successorId: successors.id })
    .from(refreshTokens)
    .leftJoin(successors, eq(successors.id, refreshTokens.replacedBy))
    .where(eq(refreshTokens.id, tokenId))
    .limit(1);
  if (!row?.spentAt || row.successorId === null || row.successorSpentAt !== null) return false;
  return now.getTime() - row.spentAt.getTime() < graceSeconds * SECOND_MS;
}

/** Revokes one of the user's live sessions; false when there is no such live session of theirs. */
export async function revokeSession(
  { db, clock, changed }: AccessScope & { clock: Clock },
  { userId, sessionId }: { userId: number; sessionId: string },
): Promise<boolean> {
  const revoked = await db
    .update(sessions)
    .set({ revokedAt: clock.now() })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  for (const { id } of revoked) changed({ kind: 'session', sessionId: id, userId });
  return revoked.length > 0;
}

/** Revokes every live session of the user: all their refresh tokens and access tokens stop working. */
export async function revokeAllSessions(
  { db, clock, changed }: AccessScope & { clock: Clock },
  { userId }: { userId: number },
): Promise<number> {
  const revoked = await db
    .update(sessions)
    .set({ revokedAt: clock.now() })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)))
    .returning({ id: sessions.id });
  for (const { id } of revoked) changed({ kind: 'session', sessionId: id, userId });
  return revoked.length;
}

/** Revokes the session a token belongs to, whoever's it is (RFC 7009: the token is the credential). */
export async function revokeSessionById(
  { db, clock, changed }: AccessScope & { clock: Clock },
  { sessionId }: { sessionId: string },
): Promise<{ userId: number } | null> {
  const [revoked] = await db
    .update(sessions)
    .set({ revokedAt: clock.now() })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt)))
    .returning({ userId: sessions.userId });
  if (revoked) changed({ kind: 'session', sessionId, userId: revoked.userId });
  return revoked ?? null;
}

/** The user's sessions that can still be refreshed, most recently used first. */
export async function listLiveSessions(
  { db, clock, config }: SessionDeps & { config: Lifetimes },
  { userId }: { userId: number },
): Promise<Session[]> {
  return db
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isRefreshable(clock.now(), config)))
    .orderBy(desc(sessions.lastUsedAt));
}

/**
 * What the database says about an access token's user and session: one round trip, two primary-key lookups
 * and the key check. `row` is null when the session does not exist for that user (it ended and was deleted,
 * or never was); `keyRevoked` says the token's signing key was retired (the session itself may live on).
 */
export type AuthLookup = (input: {
  userId: number;
  sessionId: string;
  kid: string;
}) => Promise<{ row: LookupRow<User>; keyRevoked: boolean }>;

/** Prepared once per database (createApp builds one): every bearer request the view cannot answer runs it. */
export function createAuthLookup(db: Database): AuthLookup {
  const query = db
    .select({
      user: users,
      session: {
        userId: sessions.userId,
        revokedAt: sessions.revokedAt,
        expiresAt: sessions.expiresAt,
        amr: sessions.amr,
        clientId: sessions.clientId,
      },
      // An instance without a listener (Workers, or one whose listener is down) learns of a retired key here.
      keyRevoked: sql<boolean>`exists (select 1 from ${signingKeys} where ${signingKeys.kid} = ${sql.placeholder('kid')} and ${signingKeys.revokedAt} is not null)`,
    })
    .from(users)
    .innerJoin(sessions, and(eq(sessions.id, sql.placeholder('sessionId')), eq(sessions.userId, users.id)))
    .where(eq(users.id, sql.placeholder('userId')))
    .limit(1)
    .prepare('auth_lookup');
  return async ({ userId, sessionId, kid }) => {
    const [found] = await query.execute({ userId, sessionId, kid });
    if (!found) return { row: null, keyRevoked: false };
    return { row: { user: found.user, session: found.session }, keyRevoked: found.keyRevoked };
  };
}

/** Whether a session row, as the view or the database has it, still grants access at `now`. */
export const isLive = (session: { revokedAt: Date | null; expiresAt: Date } | null, now: Date): boolean =>
  session !== null && session.revokedAt === null && session.expiresAt > now;
