/**
 * The bcryptjs pool that Node and Deno use (Workers use bcryptjs directly): hashes interoperate with
 * Bun.password's and verify the original FastAPI app's passlib hashes, so users move between runtimes and
 * imported accounts log in everywhere.
 */
import { afterAll, expect, test } from 'bun:test';
import { createBunHasher } from '../src/hashing/bun';
import { createPortableHasher } from '../src/hashing/portable';

// Normal priority: these tests are about results, and on a busy machine idle-priority workers would get the
// CPU only when nothing else wants it (bun-hasher.test.ts checks the priority itself).
const portable = createPortableHasher({ cost: 4, threads: 1, lowPriority: false });
const bun = createBunHasher({ cost: 4, threads: 1, lowPriority: false });
afterAll(() => Promise.all([portable.close(), bun.close()]));
// The passlib hash is cost 12: ≈ 250 ms of bcryptjs on a worker at idle priority, which a loaded machine
// starves for seconds (2.5 s seen with a load of 7 on 2 cores).
const COST_12_TIMEOUT_MS = 30_000;

test(
  'verifies passlib $2b$ and $2y$ hashes from the original app',
  async () => {
    // passlib.hash.bcrypt.hash("password", rounds=12, ident="2b")
    expect(await portable.verify('password', '$2b$12$bIRGj4QPPoSUMWsJE.4Pk.T1qTpDWz7HhMnuiQhGzGinKPsx/HQdq')).toBe(
      true,
    );
    // passlib bcrypt.using(rounds=4, ident='2y').hash('Yet another legacy 3')
    const legacy = '$2y$04$7WjVXKtqbe0vYrSC31IS6.k.IKk.9wcHTXf0aSJKY0MkLwyR2vhs.';
    expect(await portable.verify('Yet another legacy 3', legacy)).toBe(true);
    expect(await portable.verify('Yet another legacy 4', legacy)).toBe(false);
  },
  COST_12_TIMEOUT_MS,
);

test('a hash made by Bun verifies with bcryptjs, and the other way round', async () => {
  const password = 'zwölf Boxkämpfer jagen Viktor';
  const fromBun = await bun.hash(password);
  const fromPortable = await portable.hash(password);
  expect(fromPortable).toStartWith('$2b$04$');
  expect(await portable.verify(password, fromBun)).toBe(true);
  expect(await bun.verify(password, fromPortable)).toBe(true);
  expect(await bun.verify(`${password}!`, fromPortable)).toBe(false);
});
