/**
 * Signing keys (API.md "Tokens"): published as a JWKS, verifiable with the JWKS and a standard library alone,
 * sealed at rest, rotated without a failed request, retired at once everywhere. On a database of this file's
 * own: rotations move each instance's clock, and keys must not leak into the rest of the suite.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { signingKeys } from '../src/db/schema';
import { deriveKeyEncryptionKey, unseal } from '../src/lib/key-crypto';
import { type KeyInfo, listSigningKeys, retireSigningKey, rotateIfDue, rotateSigningKey } from '../src/services/keys';
import {
  bearer,
  createTestClock,
  decodeJwt,
  expectUnauthorized,
  json,
  loginAs,
  TEST_SECRET_KEY,
  type TestApp,
} from './helpers';
import { isolatedDatabase, isolatedPostgresDatabase, startInstance, type TestInstance } from './instances';
import { runCli } from './server-process';

const database = await isolatedDatabase('keys');
const started: TestInstance[] = [];
afterAll(async () => {
  for (const instance of started) await instance.close();
  await database.drop();
});

async function instance(env: Record<string, string> = {}, clock = createTestClock()) {
  const made = await startInstance(database, { env, clock });
  started.push(made);
  return made;
}

const ISSUER = 'hono-postgres-auth';
const JWKS_MAX_AGE_SECONDS = 300;
const ACCESS_TOKEN_SECONDS = 15 * 60;
const SKEW_SECONDS = 60; // services/keys.ts CLOCK_SKEW_SECONDS
const me = (app: TestApp, token: string) => app.request('/users/me', { headers: bearer(token) });
const jwksOf = async (app: TestApp) =>
  json<{ keys: Record<string, unknown>[] }>(await app.request('/.well-known/jwks.json'));
const kidOf = (token: string) => decodeJwt(token).header.kid as string;

const a = await instance();

describe('GET /.well-known/jwks.json', () => {
  test('publishes the ES256 public key with kid, alg and use, cacheable for JWKS_MAX_AGE_SECONDS', async () => {
    const res = await a.app.request('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe(`public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    const { keys } = await json<{ keys: Record<string, unknown>[] }>(res);
    expect(keys.length).toBeGreaterThanOrEqual(1);
    for (const key of keys) {
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']); // no private `d`
    }
  });

  test('holds the key that signed a fresh token', async () => {
    const { token } = await loginAs(a.app);
    expect((await jwksOf(a.app)).keys.map((k) => k.kid)).toContain(kidOf(token));
  });
});

describe('a token verified with only the JWKS and a standard library (jose)', () => {
  test('verifies, with typ at+jwt, our issuer and audience', async () => {
    const { token, user } = await loginAs(a.app);
    const jwks = createLocalJWKSet((await jwksOf(a.app)) as Parameters<typeof createLocalJWKSet>[0]);
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: ISSUER,
      audience: ISSUER,
      typ: 'at+jwt',
      algorithms: ['ES256'],
      currentDate: a.clock.now(),
    });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload.sub).toBe(String(user.id));
  });

  test('fails for a token changed after signing', async () => {
    const { token } = await loginAs(a.app);
    const [header, , signature] = token.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ sub: '1', iss: ISSUER, aud: ISSUER })).toString('base64url')}.${signature}`;
    const jwks = createLocalJWKSet((await jwksOf(a.app)) as Parameters<typeof createLocalJWKSet>[0]);
    await expect(jwtVerify(forged, jwks, { currentDate: a.clock.now() })).rejects.toThrow();
  });
});

describe('keys at rest', () => {
  test('the private half is stored sealed: SECRET_KEY opens it, another key does not, and it is not the JWK', async () => {
    const rows = await database.db.select().from(signingKeys);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.privateKey).toStartWith('v1.');
      expect(JSON.stringify(row.publicJwk)).not.toContain('"d"');
      expect(await unseal(await deriveKeyEncryptionKey(TEST_SECRET_KEY), row.kid, row.privateKey)).not.toBeNull();
      const other = await deriveKeyEncryptionKey('another-secret-key-that-is-also-32-bytes-long');
      expect(await unseal(other, row.kid, row.privateKey)).toBeNull();
      // Bound to its row: sealed for one kid, it does not open as another's.
      expect(await unseal(await deriveKeyEncryptionKey(TEST_SECRET_KEY), `${row.kid}x`, row.privateKey)).toBeNull();
    }
  });

  test('an instance whose SECRET_KEY cannot open the key makes its own, and tokens of both verify', async () => {
    const own = await isolatedDatabase('keys_secret');
    const first = await startInstance(own);
    try {
      const clock = createTestClock(first.clock.now().getTime());
      const second = await startInstance(own, {
        env: { SECRET_KEY: 'a-rotated-secret-key-that-is-at-least-32-bytes' },
        clock,
      });
      try {
        const keys = await listSigningKeys({ ...first.deps, db: own.db });
        expect(keys).toHaveLength(2);
        // It publishes its key first, then signs with it (both instances' clocks move: time passes for both).
        for (const each of [clock, first.clock]) each.advance((JWKS_MAX_AGE_SECONDS + 1) * 1000);
        const { token } = await loginAs(second.app);
        expect(kidOf(token)).toBe(keys[1]?.kid as string);
        expect((await me(first.app, token)).status).toBe(200); // the first verifies it from the public half
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
      await own.drop();
    }
  });
});

describe('rotation', () => {
  test('publishes the new key at once, signs with it only after JWKS_MAX_AGE_SECONDS, and no request fails', async () => {
    const clock = createTestClock(a.clock.now().getTime() + 10 * 60_000);
    const b = await instance({}, clock);
    const { token: before } = await loginAs(b.app);
    const rotated = (await rotateSigningKey({ ...b.deps, db: database.db })) as KeyInfo;
    expect(rotated.state).toBe('pending');
    expect((await jwksOf(b.app)).keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kidOf(before), rotated.kid]));

    const { token: stillOld } = await loginAs(b.app);
    expect(kidOf(stillOld)).toBe(kidOf(before)); // verifiers' cached JWKS may not have the new key yet
    clock.advance(JWKS_MAX_AGE_SECONDS * 1000);
    const { token: fresh } = await loginAs(b.app);
    expect(kidOf(fresh)).toBe(rotated.kid);
    for (const token of [before, stillOld, fresh]) expect((await me(b.app, token)).status).toBe(200);
  });

  test('keeps the old key published until its last token has expired, then drops it', async () => {
    const clock = createTestClock(a.clock.now().getTime() + 60 * 60_000);
    const b = await instance({}, clock);
    await rotateSigningKey({ ...b.deps, db: database.db });
    clock.advance((JWKS_MAX_AGE_SECONDS - 1) * 1000);
    const { token: last } = await loginAs(b.app); // the old key's last token, a second before the switch
    clock.advance(1000);
    expect(kidOf((await loginAs(b.app)).token)).not.toBe(kidOf(last)); // the new key signs from here
    clock.advance((ACCESS_TOKEN_SECONDS - 2) * 1000);
    expect((await me(b.app, last)).status).toBe(200); // still in its lifetime
    expect((await jwksOf(b.app)).keys.map((k) => k.kid)).toContain(kidOf(last));
    clock.advance((SKEW_SECONDS + 3) * 1000); // past the last token's expiry and the skew allowed verifiers
    expect((await jwksOf(b.app)).keys.map((k) => k.kid)).not.toContain(kidOf(last));
  });

  test('KEY_ROTATION_DAYS rotates once the newest key is that old, and exactly once', async () => {
    const clock = createTestClock(a.clock.now().getTime() + 2 * 60 * 60_000);
    const b = await instance({ KEY_ROTATION_DAYS: '1' }, clock);
    const deps = { ...b.deps, db: database.db };
    expect(await rotateIfDue(deps)).toBeNull();
    clock.advance(24 * 60 * 60_000 + JWKS_MAX_AGE_SECONDS * 1000);
    const [first, second] = await Promise.all([rotateIfDue(deps), rotateIfDue(deps)]);
    expect([first, second].filter((k) => k !== null)).toHaveLength(1); // the lock and the re-check inside it
    expect(await rotateIfDue(deps)).toBeNull(); // the new key is young
  });
});

describe('retire (the emergency path)', () => {
  test('every token of the key fails at once, here and on another instance, and a successor signs', async () => {
    const clock = createTestClock(a.clock.now().getTime() + 3 * 60 * 60_000);
    const b = await instance({}, clock);
    const c = await instance({}, createTestClock(clock.now().getTime()));
    const rotated = (await rotateSigningKey({ ...b.deps, db: database.db })) as KeyInfo;
    for (const each of [clock, c.clock]) each.advance(JWKS_MAX_AGE_SECONDS * 1000);
    const { token } = await loginAs(b.app);
    expect(kidOf(token)).toBe(rotated.kid);
    expect((await me(c.app, token)).status).toBe(200); // c has verified and remembered it

    await retireSigningKey({ ...b.deps, db: database.db }, { kid: rotated.kid });
    await expectUnauthorized(await me(b.app, token));
    await expectSoon(async () => (await me(c.app, token)).status === 401);
    expect((await jwksOf(b.app)).keys.map((k) => k.kid)).not.toContain(rotated.kid);
    const { token: next } = await loginAs(b.app);
    expect(kidOf(next)).not.toBe(rotated.kid);
    expect((await me(c.app, next)).status).toBe(200);
  });
});

describe('other algorithms', () => {
  test('EdDSA: an Ed25519 key (OKP) that signs after its max-age, and tokens jose verifies from the JWKS', async () => {
    const own = await isolatedDatabase('keys_eddsa');
    try {
      const e = await startInstance(own, { env: { JWT_ALGORITHM: 'EdDSA' } });
      try {
        // The database has an ES256 key already: changing the algorithm publishes the new key first.
        expect(decodeJwt((await loginAs(e.app)).token).header.alg).toBe('ES256');
        e.clock.advance((JWKS_MAX_AGE_SECONDS + 1) * 1000);
        const { token } = await loginAs(e.app);
        expect(decodeJwt(token).header.alg).toBe('EdDSA');
        const jwks = await jwksOf(e.app);
        expect(jwks.keys.find((k) => k.kid === kidOf(token))).toMatchObject({
          kty: 'OKP',
          crv: 'Ed25519',
          alg: 'EdDSA',
          use: 'sig',
        });
        const set = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
        await jwtVerify(token, set, { issuer: ISSUER, audience: ISSUER, typ: 'at+jwt', currentDate: e.clock.now() });
        expect((await me(e.app, token)).status).toBe(200);
      } finally {
        await e.close();
      }
    } finally {
      await own.drop();
    }
  });

  test('HS256: nothing is published, and tokens are signed with SECRET_KEY', async () => {
    const h = await instance({ JWT_ALGORITHM: 'HS256' });
    expect((await jwksOf(h.app)).keys).toEqual([]);
    const { token } = await loginAs(h.app);
    expect(decodeJwt(token).header).toMatchObject({ alg: 'HS256', typ: 'at+jwt' });
    const key = new TextEncoder().encode(TEST_SECRET_KEY);
    await jwtVerify(token, key, { issuer: ISSUER, audience: ISSUER, currentDate: h.clock.now() });
  });
});

describe('bun run cli keys', () => {
  test('list shows each key and its state; rotate adds one; retire revokes it; the private half never shows', async () => {
    // The CLI opens the database itself, so it gets one it can reach by URL (PostgreSQL runs wherever the suite does).
    const own = await isolatedPostgresDatabase('keys_cli');
    const first = await startInstance(own);
    try {
      const env = { DATABASE_URL: own.url, SECRET_KEY: TEST_SECRET_KEY };
      const listed = await runCli(['keys', 'list'], env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain('\tactive\t');
      const rotated = await runCli(['keys', 'rotate'], env);
      expect(rotated.code).toBe(0);
      const kid = /rotated: (\S+)/.exec(rotated.stdout)?.[1] as string;
      expect(rotated.stdout).toContain(`${kid}\tES256\tpending\t`);
      const retired = await runCli(['keys', 'retire', kid], env);
      expect(retired.code).toBe(0);
      expect(retired.stdout).toContain(`${kid}\tES256\trevoked\t`);
      const [row] = await own.db.select().from(signingKeys).where(eq(signingKeys.kid, kid));
      expect(row?.revokedAt).not.toBeNull();
      const unknown = await runCli(['keys', 'retire', 'no-such-kid'], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no signing key no-such-kid');
      // A thumbprint may begin with `-` (base64url): it is still the kid, never an option.
      const dashed = await runCli(['keys', 'retire', '-no-such-kid'], env);
      expect(dashed.code).toBe(1);
      expect(dashed.stderr).toContain('no signing key -no-such-kid');
      const noSecret = await runCli(['keys', 'list'], { DATABASE_URL: own.url, SECRET_KEY: '' });
      expect(noSecret.code).toBe(2);
      const sealed = (await own.db.select().from(signingKeys)).map((r) => r.privateKey.split('.')[2] as string);
      for (const output of [listed, rotated, retired]) {
        for (const secret of sealed) expect(output.stdout + output.stderr).not.toContain(secret);
      }
    } finally {
      await first.close();
      await own.drop();
    }
  }, 30_000);
});

/** What another instance hears through its listener: true within the invalidation bound of API.md (1 s). */
async function expectSoon(check: () => Promise<boolean>, ms = 1_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await Bun.sleep(10);
  }
}
