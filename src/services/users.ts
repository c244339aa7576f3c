import { and, asc, count, eq, ilike, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { type Role, type User, users } from '../db/schema';
import type { AppDeps } from '../deps';
import { AppError } from '../lib/errors';
import { assertPasswordPolicy } from '../lib/password-policy';
import type { UserPublic } from '../schemas/user';
import { MAX_PASSWORD_BYTES } from '../schemas/user';
import { type RequestMeta, recordAudit } from './audit';
import { revokeAllSessions } from './sessions';

type Deps = Pick<AppDeps, 'db' | 'hasher'>;

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

const notFound = () => new AppError(404, 'No such user', { type: '/problems/not-found' });

/**
 * Inserts the user and its `register` audit event in one transaction. A concurrent or earlier
 * registration of the same email is a 409, never a 500.
 */
export async function createUser(
  { db, hasher }: Deps,
  input: { email: string; password: string; role?: Role },
  meta: RequestMeta,
  actorId: number | null = null,
): Promise<User> {
  const email = normalizeEmail(input.email);
  const passwordHash = await hasher.hash(input.password);
  return db.transaction(async (tx) => {
    // ON CONFLICT DO NOTHING instead of check-then-insert: the unique index decides races atomically.
    const [created] = await tx
      .insert(users)
      .values({ email, passwordHash, role: input.role ?? 'user' })
      .onConflictDoNothing()
      .returning();
    if (!created) throw new AppError(409, 'Email already registered', { type: '/problems/email-taken' });
    await recordAudit(tx, meta, 'register', { userId: created.id, actorId, details: { role: created.role } });
    return created;
  });
}

export async function getUser({ db }: Pick<AppDeps, 'db'>, id: number): Promise<User> {
  const [user] = await db.select().from(users).where(eq(users.id, id)).limit(1);
  if (!user) throw notFound();
  return user;
}

export async function findUserByEmail({ db }: Pick<AppDeps, 'db'>, email: string): Promise<User | undefined> {
  const [user] = await db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, normalizeEmail(email)))
    .limit(1);
  return user;
}

// A real bcrypt hash at the configured cost, made once per hasher, so an unknown email costs one verify too.
const dummyHashes = new WeakMap<object, Promise<string>>();
function dummyHash(hasher: Deps['hasher']): Promise<string> {
  let hash = dummyHashes.get(hasher);
  if (!hash) {
    hash = hasher.hash(crypto.randomUUID());
    dummyHashes.set(hasher, hash);
  }
  return hash;
}

/** Longer passwords could only "match" through bcrypt's silent truncation, and no account has one. */
const isAcceptablePassword = (password: string) =>
  new TextEncoder().encode(password).length <= MAX_PASSWORD_BYTES && !password.includes('\0');

export type Authentication =
  | { user: User }
  | { user: null /** the account the email names, for the audit log */; accountId: number | null };

/**
 * `user` when the email and password match an enabled account; otherwise null, with the id of the account
 * the email names (if any) for the caller's audit log. Unknown emails, wrong passwords and disabled accounts
 * look the same from outside: same answer and one bcrypt verify each, so neither the answer nor its timing
 * reveals which emails exist.
 */
export async function authenticate(deps: Deps, email: string, password: string): Promise<Authentication> {
  const user = await findUserByEmail(deps, email);
  const acceptable = isAcceptablePassword(password);
  const hash = user && acceptable ? user.passwordHash : await dummyHash(deps.hasher);
  const matches = await deps.hasher.verify(acceptable ? password : '', hash);
  if (!user || !acceptable || !matches || user.disabled) return { user: null, accountId: user?.id ?? null };
  return { user };
}

/** Sets last_login_time, never moving it backwards when logins of one user race. */
export async function recordLogin(db: Pick<Database, 'update'>, userId: number, at: Date): Promise<void> {
  await db
    .update(users)
    .set({ lastLoginTime: sql`greatest(${users.lastLoginTime}, ${at.toISOString()}::timestamptz)` })
    .where(eq(users.id, userId));
}

/**
 * Checks the new password against the policy and the current password, stores the new hash and ends every
 * session: all earlier tokens stop working.
 */
export async function changePassword(
  deps: Pick<AppDeps, 'db' | 'hasher' | 'clock'>,
  user: User,
  input: { current_password: string; new_password: string },
  meta: RequestMeta,
): Promise<void> {
  // The blocklist and the email-name rule need the caller's email, which the body schema cannot see; checked
  // before the current password, like every other new_password rule (a 422 reveals nothing about either).
  await assertPasswordPolicy(input.new_password, user.email, 'new_password');
  const matches =
    isAcceptablePassword(input.current_password) &&
    (await deps.hasher.verify(input.current_password, user.passwordHash));
  if (!matches) {
    throw new AppError(400, 'The current password is incorrect', { type: '/problems/wrong-password' });
  }
  const passwordHash = await deps.hasher.hash(input.new_password);
  await deps.db.transaction(async (tx) => {
    await tx.update(users).set({ passwordHash }).where(eq(users.id, user.id));
    const sessionsRevoked = await revokeAllSessions(tx, user.id, deps.clock.now());
    await recordAudit(tx, meta, 'password_changed', {
      userId: user.id,
      actorId: user.id,
      details: { sessions_revoked: sessionsRevoked },
    });
  });
}

export async function listUsers(
  { db }: Pick<AppDeps, 'db'>,
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
async function assertAnotherEnabledAdmin(tx: Pick<Database, 'select'>, userId: number): Promise<void> {
  const admins = await tx
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.role, 'admin'), eq(users.disabled, false)))
    .for('update');
  if (!admins.some((admin) => admin.id !== userId)) {
    throw new AppError(409, 'This would leave no enabled admin; promote another user first', {
      type: '/problems/last-admin',
    });
  }
}

const isEnabledAdmin = (user: User) => user.role === 'admin' && !user.disabled;

/** Changes role and/or disabled. Disabling ends every session of the user at once. */
export async function updateUser(
  deps: Pick<AppDeps, 'db' | 'clock'>,
  actorId: number | null,
  id: number,
  changes: { role?: Role; disabled?: boolean },
  meta: RequestMeta,
): Promise<User> {
  return deps.db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, id)).for('update');
    if (!user) throw notFound();
    const next = { ...user, ...changes };
    if (isEnabledAdmin(user) && !isEnabledAdmin(next)) await assertAnotherEnabledAdmin(tx, user.id);
    const [updated] = await tx
      .update(users)
      .set({ role: next.role, disabled: next.disabled })
      .where(eq(users.id, id))
      .returning();
    const audit = { userId: id, actorId };
    if (next.role !== user.role) {
      await recordAudit(tx, meta, 'role_changed', { ...audit, details: { from: user.role, to: next.role } });
    }
    if (next.disabled && !user.disabled) {
      const sessionsRevoked = await revokeAllSessions(tx, id, deps.clock.now());
      await recordAudit(tx, meta, 'user_disabled', { ...audit, details: { sessions_revoked: sessionsRevoked } });
    }
    if (!next.disabled && user.disabled) await recordAudit(tx, meta, 'user_enabled', audit);
    return updated as User;
  });
}

/** Deletes the user; their sessions go with them (ON DELETE CASCADE), so their tokens stop working at once. */
export async function deleteUser(
  { db }: Pick<AppDeps, 'db'>,
  actorId: number | null,
  id: number,
  meta: RequestMeta,
): Promise<void> {
  await db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, id)).for('update');
    if (!user) throw notFound();
    if (isEnabledAdmin(user)) await assertAnotherEnabledAdmin(tx, user.id);
    await tx.delete(users).where(eq(users.id, id));
    await recordAudit(tx, meta, 'user_deleted', { userId: id, actorId, details: { email: user.email } });
  });
}

/** For the CLI (no acting user): sets the role of the user with this email. */
export async function setRoleByEmail(
  deps: Pick<AppDeps, 'db' | 'clock'>,
  email: string,
  role: Role,
  meta: RequestMeta,
) {
  const user = await findUserByEmail(deps, email);
  if (!user) throw notFound();
  return updateUser(deps, null, user.id, { role }, meta);
}

export function toPublicUser(user: User): UserPublic {
  return {
    id: user.id,
    email: user.email,
    role: user.role,
    disabled: user.disabled,
    created_at: user.createdAt.toISOString(),
    last_login_time: user.lastLoginTime?.toISOString() ?? null,
  };
}
