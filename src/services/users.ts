/** Accounts: registration, lookup, password change and the admin's changes, each audited in its transaction. */
import { and, asc, count, eq, ilike, sql } from 'drizzle-orm';
import type { AccessChanges } from '../access/listener';
import { type AccessScope, inAccessTransaction } from '../access/transaction';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { isUniqueViolation } from '../db/errors';
import { MAX_USER_ID, ROLES, type Role, type User, users } from '../db/schema';
import type { PasswordHasher } from '../hashing/hasher';
import type { Clock } from '../lib/clock';
import { normalizeEmail } from '../lib/email';
import { assertPasswordPolicy } from '../lib/password-policy';
import { AppError } from '../lib/problems';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { recordAudit } from './audit';
import { enqueueMail } from './outbox';
import { hashOptions, withCurrentPassword } from './passwords';
import { revokeAllSessions } from './sessions';

export { MAX_USER_ID, ROLES, type Role, type User };

const userNotFound = () => new AppError('not-found', { detail: 'No such user' });

/** Told after a transaction that queued mail has committed, so this instance's sender starts on it at once. */
export interface MailQueuedHook {
  mailQueued?: () => void;
}

/**
 * Inserts the user and its `register` audit event in one transaction, with the verification mail unless
 * EMAIL_VERIFICATION=off or `emailVerified` (an operator vouches for the address: the CLI's create-admin).
 * A concurrent or earlier registration of the same email is a 409, never a 500. The password has passed
 * the policy already (the request schema, or the CLI's parse of it).
 */
export async function createUser(
  ctx: {
    db: Database;
    hasher: PasswordHasher;
    clock: Clock;
    config: Pick<Config, 'EMAIL_VERIFICATION'>;
  } & MailQueuedHook,
  input: {
    email: string;
    password: string;
    role?: Role;
    meta: RequestMeta;
    actorId?: number | null;
    /** Runs first inside the transaction (e.g. "no admin exists yet"); throwing aborts the creation. */
    guard?: (tx: Database) => Promise<void>;
    /** Extra `details` of the `register` audit event. */
    auditDetails?: Record<string, unknown>;
    emailVerified?: boolean;
  },
): Promise<User> {
  const { db, hasher, clock } = ctx;
  const email = normalizeEmail(input.email);
  const passwordHash = await hasher.hash(input.password, hashOptions(input.meta));
  const mailLink = !input.emailVerified && ctx.config.EMAIL_VERIFICATION !== 'off';
  const user = await db.transaction(async (tx) => {
    await input.guard?.(tx);
    // ON CONFLICT DO NOTHING instead of check-then-insert: the unique index decides races atomically.
    const [created] = await tx
      .insert(users)
      .values({
        email,
        passwordHash,
        role: input.role ?? 'user',
        emailVerifiedAt: input.emailVerified ? clock.now() : null,
      })
      .onConflictDoNothing()
      .returning();
    if (!created) throw new AppError('email-taken');
    // The link's token is minted when the sender prepares the mail (services/recovery.ts prepareLinkMail).
    if (mailLink) await enqueueMail({ db: tx, clock }, { template: 'verify-email', to: email, params: {} });
    await recordAudit(
      { db: tx },
      {
        event: 'register',
        meta: input.meta,
        userId: created.id,
        actorId: input.actorId ?? null,
        details: { role: created.role, ...input.auditDetails },
      },
    );
    // A registration whose request was answered already, or whose client left, rolls back: a retry must not
    // find its email taken by an account its client never heard of.
    throwIfAbandoned(input.meta);
    return created;
  });
  if (mailLink) ctx.mailQueued?.();
  return user;
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
  { db, changed }: AccessScope,
  { userId, from, to }: { userId: number; from: string; to: string },
): Promise<void> {
  const replaced = await db
    .update(users)
    .set({ passwordHash: to })
    .where(and(eq(users.id, userId), eq(users.passwordHash, from)))
    .returning({ id: users.id });
  // The view keeps the whole row, and the current-password check of a password change reads the hash from it.
  if (replaced.length > 0) changed({ kind: 'user', userId });
}

/** Sets last_login_time, never moving it backwards when logins of one user race. */
export async function recordLogin({ db, changed }: AccessScope, { userId, at }: { userId: number; at: Date }) {
  await db
    .update(users)
    .set({ lastLoginTime: sql`greatest(${users.lastLoginTime}, ${at.toISOString()}::timestamptz)` })
    .where(eq(users.id, userId));
  changed({ kind: 'user', userId }); // GET /users/me shows it
}

/**
 * Checks the new password against the policy and the current password, then replaces it: every session
 * ends (all earlier tokens stop working) and the owner is told by mail. The current password is checked like
 * a login (services/passwords.ts withCurrentPassword).
 */
export async function changePassword(
  ctx: { access: AccessChanges; clock: Clock } & Parameters<typeof withCurrentPassword>[0] & MailQueuedHook,
  input: { user: User; currentPassword: string; newPassword: string; meta: RequestMeta },
): Promise<void> {
  const { user, meta } = input;
  // The blocklist and the email-name rule need the caller's email, which the body schema cannot see; checked
  // before the current password, like every other new_password rule (a 422 reveals nothing about either).
  await assertPasswordPolicy(input.newPassword, user.email, 'new_password');
  await withCurrentPassword(
    ctx,
    { user, password: input.currentPassword, meta, action: 'password_change' },
    async (options) => {
      const passwordHash = await ctx.hasher.hash(input.newPassword, options);
      await inAccessTransaction(ctx, async (scope) => {
        await replacePassword({ ...scope, clock: ctx.clock }, { user, passwordHash, via: 'change', meta });
        throwIfAbandoned(meta); // a change whose request was answered already (or whose client left) rolls back
      });
    },
  );
  ctx.mailQueued?.();
}

/**
 * Stores a new password hash, ends every session, queues the "your password was changed" notice and audits
 * it, all in the caller's transaction. `via: 'reset'`: the change came through a reset link, which reached
 * the address, so it counts as verified too.
 */
export async function replacePassword(
  { db, clock, changed }: AccessScope & { clock: Clock },
  input: { user: Pick<User, 'id' | 'email'>; passwordHash: string; via: 'change' | 'reset'; meta: RequestMeta },
): Promise<void> {
  const { user, passwordHash, via, meta } = input;
  const now = clock.now().toISOString();
  await db
    .update(users)
    .set({
      passwordHash,
      ...(via === 'reset' ? { emailVerifiedAt: sql`coalesce(${users.emailVerifiedAt}, ${now}::timestamptz)` } : {}),
    })
    .where(eq(users.id, user.id));
  changed({ kind: 'user', userId: user.id });
  await enqueueMail({ db, clock }, { template: 'password-changed', to: user.email, params: {} });
  const sessionsRevoked = await revokeAllSessions({ db, clock, changed }, { userId: user.id });
  await recordAudit(
    { db },
    {
      event: via === 'reset' ? 'password_reset' : 'password_changed',
      meta,
      userId: user.id,
      actorId: user.id,
      details: { sessions_revoked: sessionsRevoked },
    },
  );
}

/** Marks the user's address verified, if it is still `email`; false when the account has moved on. */
export async function markEmailVerified(
  { db, clock, changed }: AccessScope & { clock: Clock },
  { userId, email }: { userId: number; email: string },
): Promise<boolean> {
  const marked = await db
    .update(users)
    .set({ emailVerifiedAt: sql`coalesce(${users.emailVerifiedAt}, ${clock.now().toISOString()}::timestamptz)` })
    .where(and(eq(users.id, userId), eq(users.email, email)))
    .returning({ id: users.id });
  if (marked.length > 0) changed({ kind: 'user', userId }); // the public user shows email_verified
  return marked.length > 0;
}

/**
 * Moves the user to a new (confirmed, so verified) address. 409 when another account has it by now; the
 * unique index decides, so two accounts confirming one address at once cannot both get it. The 409 aborts
 * the caller's transaction, which is what it wants: nothing of the change stays.
 */
export async function changeEmail(
  { db, clock, changed }: AccessScope & { clock: Clock },
  { userId, email }: { userId: number; email: string },
): Promise<void> {
  try {
    await db.update(users).set({ email, emailVerifiedAt: clock.now() }).where(eq(users.id, userId));
    changed({ kind: 'user', userId });
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError('email-taken');
    throw error;
  }
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
  { db, clock, access }: { db: Database; clock: Clock; access: AccessChanges },
  input: { userId: number; changes: { role?: Role; disabled?: boolean }; actorId: number | null; meta: RequestMeta },
): Promise<User> {
  const { userId, changes, meta } = input;
  return inAccessTransaction({ db, access }, async (scope) => {
    const tx = scope.db;
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update');
    if (!user) throw userNotFound();
    const next = { ...user, ...changes };
    if (isEnabledAdmin(user) && !isEnabledAdmin(next)) await assertAnotherEnabledAdmin(tx, user.id);
    const [updated] = await tx
      .update(users)
      .set({ role: next.role, disabled: next.disabled })
      .where(eq(users.id, userId))
      .returning();
    scope.changed({ kind: 'user', userId });
    const audit = { meta, userId, actorId: input.actorId };
    if (next.role !== user.role) {
      await recordAudit({ db: tx }, { ...audit, event: 'role_changed', details: { from: user.role, to: next.role } });
    }
    if (next.disabled && !user.disabled) {
      const sessionsRevoked = await revokeAllSessions({ ...scope, clock }, { userId });
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
  { db, access }: { db: Database; access: AccessChanges },
  { userId, actorId, meta }: { userId: number; actorId: number | null; meta: RequestMeta },
): Promise<void> {
  await inAccessTransaction({ db, access }, async ({ db: tx, changed }) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update');
    if (!user) throw userNotFound();
    if (isEnabledAdmin(user)) await assertAnotherEnabledAdmin(tx, user.id);
    await tx.delete(users).where(eq(users.id, userId)); // its sessions go with it (ON DELETE CASCADE)
    changed({ kind: 'user', userId });
    await recordAudit({ db: tx }, { event: 'user_deleted', meta, userId, actorId, details: { email: user.email } });
  });
}

/** For the CLI (no acting user): sets the role of the user with this email. */
export async function setRoleByEmail(
  ctx: { db: Database; clock: Clock; access: AccessChanges },
  { email, role, meta }: { email: string; role: Role; meta: RequestMeta },
): Promise<User> {
  const user = await findUserByEmail(ctx, { email });
  if (!user) throw userNotFound();
  return updateUser(ctx, { userId: user.id, changes: { role }, actorId: null, meta });
}

// Any constant works as long as every instance uses the same one: it names the lock, nothing else.
const FIRST_ADMIN_LOCK_ID = 72_0_2_2026;

/** Whether any enabled admin exists: while none does, nobody can administer the service through the API. */
export async function hasEnabledAdmin({ db }: { db: Database }): Promise<boolean> {
  const [admin] = await db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.role, 'admin'), eq(users.disabled, false)))
    .limit(1);
  return admin !== undefined;
}

/**
 * Creates the first admin, and only while no enabled admin exists (409 `admin-exists` otherwise). The check
 * and the insert share a transaction under an advisory lock, so two bootstraps racing cannot both create
 * one. Audited as `register` with `{role: "admin", bootstrap: true}`.
 */
export async function createFirstAdmin(
  ctx: Parameters<typeof createUser>[0],
  input: { email: string; password: string; meta: RequestMeta },
): Promise<User> {
  return createUser(ctx, {
    ...input,
    role: 'admin',
    // Whoever holds the bootstrap token typed this address as an operator: vouched, like the CLI's create-admin.
    emailVerified: true,
    auditDetails: { bootstrap: true },
    guard: async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${FIRST_ADMIN_LOCK_ID})`);
      if (await hasEnabledAdmin({ db: tx })) throw new AppError('admin-exists');
    },
  });
}
