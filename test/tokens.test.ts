import { describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { sign } from 'hono/jwt';
import { SignJWT } from 'jose';
import { users } from '../src/db/schema';
import { createLogger } from '../src/lib/logger';
import { createKeyRing } from '../src/services/keys';
import {
  bearer,
  createTestApp,
  decodeJwt,
  expectUnauthorized,
  expectUnauthorizedSoon,
  json,
  login,
  loginAs,
  TEST_PASSWORD,
  TEST_SECRET_KEY,
  type TestApp,
  type TokenBody,
  testConfig,
} from './helpers';

const { app, clock, deps } = await createTestApp();
const ISSUER = 'hono-postgres-auth';
const ACCESS_TOKEN_SECONDS = 15 * 60; // ACCESS_TOKEN_EXPIRE_MINUTES default under ES256

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);

/** Claims exactly like the service's own, for a logged-in user and their session; tests change one thing at a time. */
function validClaims({ user, token }: { user: { id: number }; token: string }): Record<string, unknown> {
  const now = nowSeconds();
  return {
    sid: decodeJwt(token).payload.sid,
    sub: String(user.id),
    client_id: 'hono-postgres-auth',
    iat: now,
    nbf: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
    iss: ISSUER,
    aud: ISSUER,
    amr: ['pwd'],
  };
}

/**
 * Signs claims as the service would, with the test database's active ES256 key: read from the database and
 * opened with SECRET_KEY, as any holder of both could. The forgeries below change one thing each.
 */
async function signAsService(claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const logger = createLogger('silent');
  const ring = createKeyRing({ config: testConfig(), clock, logger });
  await ring.reload(deps.db);
  const { kid, alg, key } = await ring.signingKey();
  return new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'at+jwt', ...header }).sign(key);
}

describe('access token claims', () => {
  test('carry sub, sid, client_id, iat, exp, jti, iss, aud and amr, signed with ES256 under typ at+jwt and a kid', async () => {
    // The server's clock (another process's, against TEST_BASE_URL) is read between these two readings of
    // ours; a second boundary may fall between any of them. In process the test clock stands still.
    const before = nowSeconds();
    const { token, user } = await loginAs(app);
    const after = nowSeconds();
    const { header, payload } = decodeJwt(token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(header.kid).toBeString();
    expect(payload).toMatchObject({
      sub: String(user.id),
      client_id: 'hono-postgres-auth',
      iss: ISSUER,
      aud: ISSUER,
      amr: ['pwd'],
    });
    expect(payload.sid).toBeString();
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(after);
    expect(payload.exp).toBe((payload.iat as number) + ACCESS_TOKEN_SECONDS);
    expect(payload.jti).toBeString();
  });

  test('get a new jti on every login', async () => {
    const { email, token } = await loginAs(app);
    const again = await login(app, email, TEST_PASSWORD);
    const second = (await json<TokenBody>(again)).access_token;
    expect(decodeJwt(second).payload.jti).not.toBe(decodeJwt(token).payload.jti);
  });

  test('carry the client_id a client named at login', async () => {
    const { email } = await loginAs(app);
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: email, password: TEST_PASSWORD, client_id: 'mobile-app' }),
    });
    const { access_token } = await json<TokenBody>(res);
    expect(decodeJwt(access_token).payload.client_id).toBe('mobile-app');
  });
});

/** The forgeries every signing scheme must refuse, given how to sign claims with the right key. */
function bearerVerification(
  name: string,
  on: () => { app: TestApp; sign: (claims: Record<string, unknown>) => Promise<string> },
) {
  describe(`bearer verification (${name})`, () => {
    const me = (headers: Record<string, string>) => on().app.request('/users/me', { headers });

    test('accepts a token signed with the right key and claims (the control for the forgeries below)', async () => {
      const session = await loginAs(on().app);
      expect((await me(bearer(await on().sign(validClaims(session))))).status).toBe(200);
    });

    test('rejects a token from another issuer', async () => {
      const session = await loginAs(on().app);
      await expectUnauthorized(await me(bearer(await on().sign({ ...validClaims(session), iss: 'someone-else' }))));
    });

    test('rejects a token for another audience', async () => {
      const session = await loginAs(on().app);
      await expectUnauthorized(await me(bearer(await on().sign({ ...validClaims(session), aud: 'someone-else' }))));
    });

    test('rejects a token without exp', async () => {
      const session = await loginAs(on().app);
      const { exp: _, ...claims } = validClaims(session);
      await expectUnauthorized(await me(bearer(await on().sign(claims))));
    });

    test('rejects a token that is not valid yet (nbf in the future)', async () => {
      const session = await loginAs(on().app);
      await expectUnauthorized(await me(bearer(await on().sign({ ...validClaims(session), nbf: nowSeconds() + 60 }))));
    });

    test('rejects a token that lives longer than ours do, whoever signed it (a leaked key mints no endless tokens)', async () => {
      const session = await loginAs(on().app);
      const now = nowSeconds();
      const forever = { ...validClaims(session), iat: now, exp: now + 10 * 365 * 24 * 3600 };
      await expectUnauthorized(await me(bearer(await on().sign(forever))));
    });

    test('rejects a correctly signed token whose sub is past the integer range of user ids (was a 500)', async () => {
      // Regression, found by test/fuzz.test.ts: sub "2147483648" reached the database and failed there.
      const session = await loginAs(on().app);
      for (const sub of ['2147483648', '9999999999']) {
        await expectUnauthorized(await me(bearer(await on().sign({ ...validClaims(session), sub }))));
      }
    });

    test('rejects a token whose payload was changed after signing', async () => {
      const { token } = await loginAs(on().app);
      const { user: other } = await loginAs(on().app);
      const [header, payload, signature] = token.split('.');
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
      const tampered = `${header}.${b64url({ ...claims, sub: String(other.id) })}.${signature}`;
      await expectUnauthorized(await me(bearer(tampered)));
    });

    test('rejects an unsigned token (alg none)', async () => {
      const session = await loginAs(on().app);
      const { header } = decodeJwt(await on().sign(validClaims(session)));
      const token = `${b64url({ ...header, alg: 'none' })}.${b64url(validClaims(session))}.`;
      await expectUnauthorized(await me(bearer(token)));
    });
  });
}

bearerVerification('ES256', () => ({ app, sign: (claims) => signAsService(claims) }));

const hs256 = await createTestApp({ env: { JWT_ALGORITHM: 'HS256' }, clock });
bearerVerification('HS256', () => ({ app: hs256.app, sign: (claims) => signWithSecret(claims) }));

/** HS256 tokens as the original app's scheme makes them: the shared secret, the kid this service derives from it. */
async function signWithSecret(claims: Record<string, unknown>, secret = TEST_SECRET_KEY) {
  const { kid } = await hs256.deps.keys.signingKey();
  const key = new TextEncoder().encode(secret);
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' }).sign(key);
}

describe('bearer verification: keys and algorithms', () => {
  const me = (headers: Record<string, string>, on = app) => on.request('/users/me', { headers });

  test('accepts a token until just before it expires', async () => {
    const own = await createTestApp({ inProcess: true });
    const { token } = await loginAs(own.app);
    own.clock.advance((ACCESS_TOKEN_SECONDS - 1) * 1000);
    expect((await own.app.request('/users/me', { headers: bearer(token) })).status).toBe(200);
  });

  test('rejects an expired token', async () => {
    const own = await createTestApp({ inProcess: true });
    const { token } = await loginAs(own.app);
    own.clock.advance(ACCESS_TOKEN_SECONDS * 1000);
    await expectUnauthorized(await own.app.request('/users/me', { headers: bearer(token) }));
  });

  test('rejects an ES256 token naming a kid that is not ours', async () => {
    const session = await loginAs(app);
    const token = await signAsService(validClaims(session), { kid: 'not-a-key-of-ours' });
    await expectUnauthorized(await me(bearer(token)));
  });

  test("rejects a token whose alg is not its key's: HS256 keyed with the public key (algorithm confusion)", async () => {
    const session = await loginAs(app);
    const { kid } = decodeJwt(await signAsService(validClaims(session))).header as { kid: string };
    const jwks = await json<{ keys: { kid: string }[] }>(await app.request('/.well-known/jwks.json'));
    const publicKey = new TextEncoder().encode(JSON.stringify(jwks.keys.find((k) => k.kid === kid)));
    const token = await new SignJWT(validClaims(session))
      .setProtectedHeader({ alg: 'HS256', kid, typ: 'at+jwt' })
      .sign(publicKey);
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token without typ at+jwt (RFC 9068 §2.1)', async () => {
    const session = await loginAs(app);
    await expectUnauthorized(await me(bearer(await signAsService(validClaims(session), { typ: 'JWT' }))));
  });

  test('rejects an HS256 token signed with another secret', async () => {
    const session = await loginAs(hs256.app);
    const token = await signWithSecret(validClaims(session), 'another-secret-key-that-is-also-32-bytes-long');
    await expectUnauthorized(await me(bearer(token), hs256.app));
  });

  test('rejects an HS512 token even with the right secret', async () => {
    const session = await loginAs(hs256.app);
    const token = await sign(validClaims(session), TEST_SECRET_KEY, 'HS512');
    await expectUnauthorized(await me(bearer(token), hs256.app));
  });

  test('under ES256, rejects an HS256 token signed with SECRET_KEY (no shared secret is a key then)', async () => {
    const session = await loginAs(app);
    await expectUnauthorized(await me(bearer(await signWithSecret(validClaims(session)))));
  });

  test('rejects the token of a user deleted from the database', async () => {
    const { token, user } = await loginAs(app);
    await deps.db.delete(users).where(eq(users.id, user.id));
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects the token of a user disabled since it was issued, even after the view remembered them', async () => {
    const { token, user } = await loginAs(app);
    expect((await me(bearer(token))).status).toBe(200); // now the view holds the user and the session
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, user.id));
    await expectUnauthorizedSoon(() => me(bearer(token)));
  });
});

const me = (headers: Record<string, string>) => app.request('/users/me', { headers });

describe('Authorization header forms', () => {
  test('accepts the scheme in any case, as a client echoing token_type "bearer" sends it (RFC 7235 §2.1)', async () => {
    const { token } = await loginAs(app);
    expect((await me({ Authorization: `bearer ${token}` })).status).toBe(200);
  });

  test('rejects a JWT under the Basic scheme', async () => {
    const { token } = await loginAs(app);
    await expectUnauthorized(await me({ Authorization: `Basic ${token}` }));
  });

  test('rejects a bare token without a scheme', async () => {
    const { token } = await loginAs(app);
    await expectUnauthorized(await me({ Authorization: token }));
  });

  test('rejects Bearer followed by two tokens', async () => {
    const { token } = await loginAs(app);
    await expectUnauthorized(await me({ Authorization: `Bearer ${token} ${token}` }));
  });

  test('rejects an oversized Authorization header', async () => {
    const { token } = await loginAs(app);
    const [header, payload, signature] = token.split('.');
    const padded = `${header}.${payload}${'A'.repeat(8192)}.${signature}`;
    await expectUnauthorized(await me({ Authorization: `Bearer ${padded}` }));
  });

  test('rejects an empty Bearer credential with invalid_token, since a header was sent', async () => {
    await expectUnauthorized(await me({ Authorization: 'Bearer ' }));
  });
});
