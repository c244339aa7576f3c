/**
 * What a password check costs, and rehashing on login (src/services/passwords.ts). The cost is measured as
 * bcrypt work, not wall time: the apps here hash with the real Bun pool, wrapped to add up 2^cost for every
 * hash it is asked to verify, which is what a verification costs; so "the same timing" is an exact equality
 * that a loaded machine cannot blur.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { users } from '../src/db/schema';
import { bcryptCost } from '../src/hashing/bcrypt';
import { createBunHasher } from '../src/hashing/bun';
import type { PasswordHasher } from '../src/hashing/hasher';
import { createTestApp, login, registerUser, TEST_PASSWORD, type TestApp, testDatabase, uniqueEmail } from './helpers';

const COST = 6; // the apps' BCRYPT_COST
const pool = createBunHasher({ cost: COST, threads: 1 });
afterAll(() => pool.close());
await testDatabase(); // made once per process (seconds for PGlite): not inside the first test's timeout

/** A real hasher that also adds up the bcrypt work of every verification: 2^cost each. */
function measuredHasher(inner: PasswordHasher) {
  let work = 0;
  const hasher: PasswordHasher = {
    hash: (password, options) => inner.hash(password, options),
    verify: (password, hash, options) => {
      work += 2 ** (bcryptCost(hash) ?? 0);
      return inner.verify(password, hash, options);
    },
  };
  return { hasher, work: () => work };
}

async function measuredApp() {
  const measured = measuredHasher(pool);
  const test = await createTestApp({ env: { BCRYPT_COST: String(COST) }, hasher: measured.hasher });
  /** The bcrypt work of one request. */
  const workOf = async (request: () => Response | Promise<Response>, status: number) => {
    const before = measured.work();
    const res = await request();
    expect(res.status).toBe(status);
    return measured.work() - before;
  };
  return { ...test, workOf };
}

/** Registers a user, then stores its password as a hash of `cost` (and ident), as an import or an old cost left it. */
async function userStoredAt(
  app: TestApp,
  db: Awaited<ReturnType<typeof measuredApp>>['deps']['db'],
  cost: number,
  ident = '$2b$',
) {
  const { email, user } = await registerUser(app);
  const hash = Bun.password.hashSync(TEST_PASSWORD, { algorithm: 'bcrypt', cost }).replace(/^\$2b\$/, ident);
  await db.update(users).set({ passwordHash: hash }).where(eq(users.id, user.id));
  return { email, userId: user.id, hash };
}

describe('every failed check costs the same', () => {
  test('an unknown email costs one hash at BCRYPT_COST, as does a wrong password of an account stored at a lower cost', async () => {
    const { app, deps, workOf } = await measuredApp();
    const lower = await userStoredAt(app, deps.db, COST - 2);
    const current = await userStoredAt(app, deps.db, COST);
    const unknown = await workOf(() => login(app, uniqueEmail('ghost'), 'not the password'), 401);
    expect(unknown).toBe(2 ** COST);
    expect(await workOf(() => login(app, lower.email, 'not the password'), 401)).toBe(unknown);
    expect(await workOf(() => login(app, current.email, 'not the password'), 401)).toBe(unknown);
    // A password no account can have (over 72 bytes) is checked against a dummy all the same.
    expect(await workOf(() => login(app, lower.email, 'x'.repeat(73)), 401)).toBe(unknown);
  });

  test('a disabled account with the right password costs what a wrong password costs', async () => {
    const { app, deps, workOf } = await measuredApp();
    const lower = await userStoredAt(app, deps.db, COST - 1);
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, lower.userId));
    const unknown = await workOf(() => login(app, uniqueEmail('ghost'), TEST_PASSWORD), 401);
    expect(await workOf(() => login(app, lower.email, TEST_PASSWORD), 401)).toBe(unknown);
  });

  test('once a stored hash of a higher cost has been checked, every failed check costs that much', async () => {
    const { app, deps, workOf } = await measuredApp();
    const higher = await userStoredAt(app, deps.db, COST + 1);
    const lower = await userStoredAt(app, deps.db, COST - 2);
    expect(await workOf(() => login(app, higher.email, 'not the password'), 401)).toBe(2 ** (COST + 1));
    expect(await workOf(() => login(app, uniqueEmail('ghost'), 'not the password'), 401)).toBe(2 ** (COST + 1));
    expect(await workOf(() => login(app, lower.email, 'not the password'), 401)).toBe(2 ** (COST + 1));
  });
});

describe('rehash on login', () => {
  test('a successful login stores a $2b$ hash at BCRYPT_COST in place of one of another cost and ident', async () => {
    const { app, deps, workOf } = await measuredApp();
    const imported = await userStoredAt(app, deps.db, COST - 1, '$2y$'); // as passlib or PHP write them
    expect((await login(app, imported.email, TEST_PASSWORD)).status).toBe(200);
    const [row] = await deps.db.select().from(users).where(eq(users.id, imported.userId));
    expect(row?.passwordHash).toStartWith(`$2b$0${COST}$`);
    expect(row?.passwordHash).not.toBe(imported.hash);
    // The next login verifies the new hash: one hash at BCRYPT_COST, and nothing to rehash.
    expect(await workOf(() => login(app, imported.email, TEST_PASSWORD), 200)).toBe(2 ** COST);
  });

  test('a hash already at BCRYPT_COST is left as it is', async () => {
    const { app, deps } = await measuredApp();
    const current = await userStoredAt(app, deps.db, COST);
    expect((await login(app, current.email, TEST_PASSWORD)).status).toBe(200);
    const [row] = await deps.db.select().from(users).where(eq(users.id, current.userId));
    expect(row?.passwordHash).toBe(current.hash);
  });
});
