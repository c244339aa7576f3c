import { describe, expect, test } from 'bun:test';
import { eq } from 'drizzle-orm';
import { sign } from 'hono/jwt';
import { users } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  decodeJwt,
  expectUnauthorized,
  json,
  login,
  loginAs,
  TEST_PASSWORD,
  TEST_SECRET_KEY,
  type TokenBody,
} from './helpers';

const { app, clock, deps } = await createTestApp();
const ISSUER = 'hono-postgres-auth';
const ACCESS_TOKEN_SECONDS = 30 * 60; // ACCESS_TOKEN_EXPIRE_MINUTES default

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSeconds = () => Math.floor(clock.now().getTime() / 1000);
const me = (headers: Record<string, string>) => app.request('/users/me', { headers });

/** Claims exactly like the service's own, for a logged-in user and their session; tests change one thing at a time. */
function validClaims({ user, token }: { user: { id: number }; token: string }): Record<string, unknown> {
  const now = nowSeconds();
  return {
    sid: decodeJwt(token).payload.sid,
    sub: String(user.id),
    iat: now,
    nbf: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
    iss: ISSUER,
    aud: ISSUER,
  };
}

describe('access token claims', () => {
  test('carry sub, iat, exp, jti, iss and aud, signed with HS256', async () => {
    // The server's clock (another process's, against TEST_BASE_URL) is read between these two readings of
    // ours; a second boundary may fall between any of them. In process the test clock stands still.
    const before = nowSeconds();
    const { token, user } = await loginAs(app);
    const after = nowSeconds();
    const { header, payload } = decodeJwt(token);
    expect(header.alg).toBe('HS256');
    expect(payload).toMatchObject({ sub: String(user.id), iss: ISSUER, aud: ISSUER });
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
});

describe('bearer verification', () => {
  test('accepts a token forged with the right key and claims (the control for the forgeries below)', async () => {
    const session = await loginAs(app);
    const token = await sign(validClaims(session), TEST_SECRET_KEY, 'HS256');
    expect((await me(bearer(token))).status).toBe(200);
  });

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

  test('rejects a token signed with another key', async () => {
    const session = await loginAs(app);
    const token = await sign(validClaims(session), 'another-secret-key-that-is-also-32-bytes-long', 'HS256');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects an unsigned token (alg none)', async () => {
    const session = await loginAs(app);
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(validClaims(session))}.`;
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token signed with HS512 even with the right key', async () => {
    const session = await loginAs(app);
    const token = await sign(validClaims(session), TEST_SECRET_KEY, 'HS512');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token whose payload was changed after signing', async () => {
    const { token } = await loginAs(app);
    const { user: other } = await loginAs(app);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
    const tampered = `${header}.${b64url({ ...claims, sub: String(other.id) })}.${signature}`;
    await expectUnauthorized(await me(bearer(tampered)));
  });

  test('rejects a token from another issuer', async () => {
    const session = await loginAs(app);
    const token = await sign({ ...validClaims(session), iss: 'someone-else' }, TEST_SECRET_KEY, 'HS256');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token for another audience', async () => {
    const session = await loginAs(app);
    const token = await sign({ ...validClaims(session), aud: 'someone-else' }, TEST_SECRET_KEY, 'HS256');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token without exp', async () => {
    const session = await loginAs(app);
    const { exp: _, ...claims } = validClaims(session);
    const token = await sign(claims, TEST_SECRET_KEY, 'HS256');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a token that is not valid yet (nbf in the future)', async () => {
    const session = await loginAs(app);
    const token = await sign({ ...validClaims(session), nbf: nowSeconds() + 60 }, TEST_SECRET_KEY, 'HS256');
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects a correctly signed token whose sub is past the integer range of user ids (was a 500)', async () => {
    // Regression, found by test/fuzz.test.ts: sub "2147483648" reached the database and failed there.
    const session = await loginAs(app);
    for (const sub of ['2147483648', '9999999999']) {
      const token = await sign({ ...validClaims(session), sub }, TEST_SECRET_KEY, 'HS256');
      await expectUnauthorized(await me(bearer(token)));
    }
  });

  test('rejects the token of a user deleted from the database', async () => {
    const { token, user } = await loginAs(app);
    await deps.db.delete(users).where(eq(users.id, user.id));
    await expectUnauthorized(await me(bearer(token)));
  });

  test('rejects the token of a user disabled since it was issued', async () => {
    const { token, user } = await loginAs(app);
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, user.id));
    await expectUnauthorized(await me(bearer(token)));
  });
});

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
