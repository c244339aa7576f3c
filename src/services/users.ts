import { eq, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { type User, users } from '../db/schema';
import type { AppDeps } from '../deps';
import { AppError } from '../lib/errors';
import type { UserPublic } from '../schemas/user';
import { MAX_PASSWORD_BYTES } from '../schemas/user';

type Deps = Pick<AppDeps, 'db' | 'hasher'>;

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

/** Inserts the user; a concurrent or earlier registration of the same email is a 409, never a 500. */
export async function createUser({ db, hasher }: Deps, input: { email: string; password: string }): Promise<User> {
  const email = normalizeEmail(input.email);
  const passwordHash = await hasher.hash(input.password);
  // ON CONFLICT DO NOTHING instead of check-then-insert: the unique index decides races atomically.
  const [created] = await db.insert(users).values({ email, passwordHash }).onConflictDoNothing().returning();
  if (!created) throw new AppError(409, 'Email already registered', { type: '/problems/email-taken' });
  return created;
}

// Every authenticated request runs this lookup: prepared once per database, so the SQL is built only once.
const userByIdQueries = new WeakMap<Database, ReturnType<typeof prepareUserById>>();
const prepareUserById = (db: Database) =>
  db
    .select()
    .from(users)
    .where(eq(users.id, sql.placeholder('id')))
    .limit(1)
    .prepare('user_by_id');

export async function findUserById({ db }: Pick<AppDeps, 'db'>, id: number): Promise<User | undefined> {
  let query = userByIdQueries.get(db);
  if (!query) {
    query = prepareUserById(db);
    userByIdQueries.set(db, query);
  }
  const [user] = await query.execute({ id });
  return user;
}

async function findUserByEmail({ db }: Pick<AppDeps, 'db'>, email: string): Promise<User | undefined> {
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

/**
 * Returns the user when the email and password match an enabled account, null otherwise.
 * Unknown emails, wrong passwords and disabled accounts look the same from outside: same result and
 * one bcrypt verify each, so neither the answer nor its timing reveals which emails exist.
 */
export async function authenticate(deps: Deps, email: string, password: string): Promise<User | null> {
  const user = await findUserByEmail(deps, email);
  // Longer passwords could only "match" through bcrypt's silent truncation, and no account has one.
  const acceptable = new TextEncoder().encode(password).length <= MAX_PASSWORD_BYTES && !password.includes('\0');
  const hash = user && acceptable ? user.passwordHash : await dummyHash(deps.hasher);
  const matches = await deps.hasher.verify(acceptable ? password : '', hash);
  if (!user || !acceptable || !matches || user.disabled) return null;
  return user;
}

/** Sets last_login_time, never moving it backwards when logins of one user race. */
export async function recordLogin({ db }: Pick<AppDeps, 'db'>, userId: number, at: Date): Promise<User> {
  const [user] = await db
    .update(users)
    .set({ lastLoginTime: sql`greatest(${users.lastLoginTime}, ${at.toISOString()}::timestamptz)` })
    .where(eq(users.id, userId))
    .returning();
  if (!user) throw new AppError(401, 'Incorrect email or password', { headers: { 'WWW-Authenticate': 'Bearer' } });
  return user;
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
