/** Accounts: registration, lookup, password change and the admin's changes, each audited in its transaction. */
import { and, asc, count, eq, ilike, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { MAX_USER_ID, ROLES, type Role, type User, users } from '../db/schema';
import type { PasswordHasher } from '../hashing/hasher';
import type { Clock } from '../lib/clock';
import { normalizeEmail } from '../lib/email';
import { clientKey } from '../lib/ip';
import { assertPasswordPolicy } from '../lib/password-policy';
import { AppError } from '../lib/problems';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { beginPasswordAttempt } from '../rate-limit/lockout';
import { recordAudit } from './audit';
import type { ServiceContext } from './context';
import { checkPassword, hashOptions } from './passwords';
import { revokeAllSessions } from './sessions';

export { MAX_USER_ID, ROLES, type Role, type User };

const userNotFound = () => new AppError('not-found', { detail: 'No such user' });

/**
 * Inserts the user and its `register` audit event in one transaction. A concurrent or earlier
 * registration of the same email is a 409, never a 500. The password has passed the policy already
 * (the request schema, or the CLI's parse of it).
 */
export async function createUser(
  { db, hasher }: { db: Database; hasher: PasswordHasher },
  input: { email: string; password: string; role?: Role; meta: RequestMeta; actorId?: number | null },
): Promise<User> {
  const email = normalizeEmail(input.email);
  const passwordHash = await hasher.hash(input.password, hashOptions(input.meta));
  return db.transaction(async (tx) => {
    // ON CONFLICT DO NOTHING instead of check-then-insert: the unique index decides races atomically.
    const [created] = await tx
      .insert(users)
      .values({ email, passwordHash, role: input.role ?? 'user' })
      .onConflictDoNothing()
      .returning();
    if (!created) throw new AppError('email-taken');
    await recordAudit(
      { db: tx },
      {
        event: 'register',
        meta: input.meta,
        userId: created.id,
        actorId: input.actorId ?? null,
        details: { role: created.role },
      },
    );
    // A registration whose request was answered already, or whose client left, rolls back: a retry must not
    // find its email taken by an account its client never heard of.
    throwIfAbandoned(input.meta);
    return created;
  });
}

export async function getUser({ db }: { db: Database }, { userId }: { userId: number }): Promise<User> {
  const [user] = await db.select().from(users).where(eq(users.id, userId)).limit(1);
  if (!user) throw userNotFound();
  return user;
}

export async function findUserByEmail({ db }: { db: Database }, { email }: { email: string }) {
  const [user] = await db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, normalizeEmail(email)))
    .limit(1);
  return user;
}

/** Stores a new hash of the same password (a rehash), unless the hash changed meanwhile. */
export async function replacePasswordHash(
  { db }: { db: Database },
  { userId, from, to }: { userId: number; from: string; to: string },
): Promise<void> {
  await db
    .update(users)
    .set({ passwordHash: to })
    .where(and(eq(users.id, userId), eq(users.passwordHash, from)));
}

/** Sets last_login_time, never moving it backwards when logins of one user race. */
export async function recordLogin({ db }: { db: Database }, { userId, at }: { userId: number; at: Date }) {
  await db
    .update(users)
    .set({ lastLoginTime: sql`greatest(${users.lastLoginTime}, ${at.toISOString()}::timestamptz)` })
    .where(eq(users.id, userId));
}

/**
 * Checks the new password against the policy and the current password, stores the new hash and ends every
 * session: all earlier tokens stop working. The current password is checked like a login (the same per
 * account and per address limits, rate-limit/lockout.ts), and a wrong one is audited: a stolen access token
 * must not become an unlimited oracle for the password, nor, through this change, a takeover.
 */
export async function changePassword(
  ctx: Pick<ServiceContext, 'db' | 'hasher' | 'clock' | 'rateLimits' | 'logger' | 'attempts' | 'hashCosts'>,
  input: { user: User; currentPassword: string; newPassword: string; meta: RequestMeta },
): Promise<void> {
  const { db, hasher, clock } = ctx;
  const { user, meta } = input;
  // The blocklist and the email-name rule need the caller's email, which the body schema cannot see; checked
  // before the current password, like every other new_password rule (a 422 reveals nothing about either).
  await assertPasswordPolicy(input.newPassword, user.email, 'new_password');
  const attempt = await beginPasswordAttempt(ctx, { account: user.email, address: clientKey(meta.ip) });
  const options = hashOptions(meta, { account: user.email, preferred: attempt.known });
  let matches: boolean;
  try {
    matches = await checkPassword(ctx, { user, password: input.currentPassword, options });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  if (!matches) {
    await attempt.settle('failed');
    throwIfAbandoned(meta);
    await recordAudit(ctx, { event: 'password_change_failed', meta, userId: user.id, actorId: user.id });
    throw new AppError('wrong-password');
  }
  try {
    const passwordHash = await hasher.hash(input.newPassword, options);
    await db.transaction(async (tx) => {
      await tx.update(users).set({ passwordHash }).where(eq(users.id, user.id));
      const sessionsRevoked = await revokeAllSessions({ db: tx, clock }, { userId: user.id });
      await recordAudit(
        { db: tx },
        {
          event: 'password_changed',
          meta,
          userId: user.id,
          actorId: user.id,
          details: { sessions_revoked: sessionsRevoked },
        },
      );
      throwIfAbandoned(meta); // a change whose request was answered already (or whose client left) rolls back
    });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  await attempt.settle('succeeded');
}

export async function listUsers(
  { db }: { db: Database },
  { limit, offset, email }: { limit: number; offset: number; email?: string },
) {
  // `email` filters by substring; LIKE's own wildcards in it are matched literally.
  const where = email ? ilike(users.email, `%${normalizeEmail(email).replace(/[\\%_]/g, '\\$&')}%`) : undefined;
  const [items, [totals]] = await Promise.all([
    db.select().from(users).where(where).orderBy(asc(users.id)).limit(limit).offset(offset),
    db.select({ total: count() }).from(users).where(where),
  ]);
  return { items, total: totals?.total ?? 0 };
}

/**
 * Fails with 409 if, without `userId`, no enabled admin would remain. Locks every enabled admin row first
 * (FOR UPDATE), so two admins demoting each other at the same moment cannot both succeed.
 */
async function assertAnotherEnabledAdmin(tx: Database, userId: number): Promise<void> {
  const admins = await tx
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.role, 'admin'), eq(users.disabled, false)))
    .for('update');
  if (!admins.some((admin) => admin.id !== userId)) throw new AppError('last-admin');
}

const isEnabledAdmin = (user: User) => user.role === 'admin' && !user.disabled;

/** Changes role and/or disabled. Disabling ends every session of the user at once. */
export async function updateUser(
  { db, clock }: { db: Database; clock: Clock },
  input: { userId: number; changes: { role?: Role; disabled?: boolean }; actorId: number | null; meta: RequestMeta },
): Promise<User> {
  const { userId, changes, meta } = input;
  return db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update');
    if (!user) throw userNotFound();
    const next = { ...user, ...changes };
    if (isEnabledAdmin(user) && !isEnabledAdmin(next)) await assertAnotherEnabledAdmin(tx, user.id);
    const [updated] = await tx
      .update(users)
      .set({ role: next.role, disabled: next.disabled })
      .where(eq(users.id, userId))
      .returning();
    const audit = { meta, userId, actorId: input.actorId };
    if (next.role !== user.role) {
      await recordAudit({ db: tx }, { ...audit, event: 'role_changed', details: { from: user.role, to: next.role } });
    }
    if (next.disabled && !user.disabled) {
      const sessionsRevoked = await revokeAllSessions({ db: tx, clock }, { userId });
      await recordAudit(
        { db: tx },
        { ...audit, event: 'user_disabled', details: { sessions_revoked: sessionsRevoked } },
      );
    }
    if (!next.disabled && user.disabled) await recordAudit({ db: tx }, { ...audit, event: 'user_enabled' });
    return updated as User;
  });
}

/** Deletes the user; their sessions go with them (ON DELETE CASCADE), so their tokens stop working at once. */
export async function deleteUser(
  { db }: { db: Database },
  { userId, actorId, meta }: { userId: number; actorId: number | null; meta: RequestMeta },
): Promise<void> {
  await db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update');
    if (!user) throw userNotFound();
    if (isEnabledAdmin(user)) await assertAnotherEnabledAdmin(tx, user.id);
    await tx.delete(users).where(eq(users.id, userId));
    await recordAudit({ db: tx }, { event: 'user_deleted', meta, userId, actorId, details: { email: user.email } });
  });
}

/** For the CLI (no acting user): sets the role of the user with this email. */
export async function setRoleByEmail(
  ctx: { db: Database; clock: Clock },
  { email, role, meta }: { email: string; role: Role; meta: RequestMeta },
): Promise<User> {
  const user = await findUserByEmail(ctx, { email });
  if (!user) throw userNotFound();
  return updateUser(ctx, { userId: user.id, changes: { role }, actorId: null, meta });
}
