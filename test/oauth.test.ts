/**
 * The token endpoints other services use (API.md "Token endpoints for other services"): RFC 8414 metadata,
 * RFC 7009 revocation, RFC 7662 introspection, and the RFC 6749 §5.2 `error` members of the token endpoint.
 */
import { describe, expect, test } from 'bun:test';
import {
  bearer,
  createTestApp,
  decodeJwt,
  expectProblem,
  expectUnauthorized,
  json,
  loginAs,
  loginAsAdmin,
  refresh,
  type TestApp,
  type TokenBody,
} from './helpers';

const CLIENT = { id: 'api-gateway', secret: 'a gateway secret: with colon & plus+' };
const { app, deps, clock } = await createTestApp();
const introspecting = await createTestApp({
  env: { INTROSPECTION_CLIENT_ID: CLIENT.id, INTROSPECTION_CLIENT_SECRET: CLIENT.secret },
  clock,
});

const form = (on: TestApp, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  on.request(path, { method: 'POST', headers, body: new URLSearchParams(fields) });
const me = (on: TestApp, token: string) => on.request('/users/me', { headers: bearer(token) });

/** RFC 6749 §2.3.1: each half form-urlencoded, then `id:secret` in base64. */
const basic = (id: string, secret: string) => {
  const encode = (part: string) => encodeURIComponent(part).replace(/%20/g, '+');
  return { Authorization: `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}` };
};
const introspect = (token: string, headers: Record<string, string> = basic(CLIENT.id, CLIENT.secret), hint?: string) =>
  form(introspecting.app, '/introspect', { token, ...(hint ? { token_type_hint: hint } : {}) }, headers);

describe('GET /.well-known/oauth-authorization-server (RFC 8414)', () => {
  test('names the issuer the tokens carry, and every endpoint', async () => {
    const res = await app.request('/.well-known/oauth-authorization-server');
    expect(res.status).toBe(200);
    const metadata = await json<Record<string, unknown>>(res);
    const { token } = await loginAs(app);
    expect(metadata.issuer).toBe(decodeJwt(token).payload.iss);
    expect(metadata).toMatchObject({
      token_endpoint: 'http://localhost/token',
      jwks_uri: 'http://localhost/.well-known/jwks.json',
      revocation_endpoint: 'http://localhost/revoke',
      introspection_endpoint: 'http://localhost/introspect',
      grant_types_supported: expect.arrayContaining(['password', 'refresh_token']),
      token_endpoint_auth_methods_supported: expect.arrayContaining(['none']),
      access_token_signing_alg_values_supported: ['ES256'],
    });
  });

  test('builds the endpoints and the issuer from PUBLIC_URL when it is set', async () => {
    const { app: public_ } = await createTestApp({ env: { PUBLIC_URL: 'https://auth.example.com/base' } });
    const metadata = await json<Record<string, string>>(
      await public_.request('/.well-known/oauth-authorization-server'),
    );
    expect(metadata.issuer).toBe('https://auth.example.com/base');
    expect(metadata.token_endpoint).toBe('https://auth.example.com/base/token');
    expect(metadata.jwks_uri).toBe('https://auth.example.com/base/.well-known/jwks.json');
  });
});

describe('POST /token errors carry RFC 6749 §5.2 error codes', () => {
  test('a bad refresh token is 400 invalid_grant', async () => {
    const problem = await expectProblem(await refresh(app, 'not-a-refresh-token'), 400, 'invalid-refresh-token');
    expect((problem as { error?: string }).error).toBe('invalid_grant');
  });

  test('an unknown grant_type is 400 unsupported_grant_type', async () => {
    const res = await form(app, '/token', { grant_type: 'client_credentials' });
    const problem = await expectProblem(res, 400, 'unsupported-grant-type');
    expect((problem as { error?: string }).error).toBe('unsupported_grant_type');
  });

  test('a missing field is 422 with invalid_request', async () => {
    const problem = await expectProblem(await form(app, '/token', { username: 'x@example.com' }), 422, 'validation');
    expect((problem as { error?: string }).error).toBe('invalid_request');
  });

  test("a wrong password keeps the original app's 401, with invalid_grant", async () => {
    const { email } = await loginAs(app);
    const problem = await expectProblem(await form(app, '/token', { username: email, password: 'wrong!' }), 401);
    expect((problem as { error?: string }).error).toBe('invalid_grant');
  });

  test('other routes carry no error member', async () => {
    const res = await app.request('/register', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(await expectProblem(res, 422, 'validation')).not.toHaveProperty('error');
  });
});

describe('POST /revoke (RFC 7009)', () => {
  test('a refresh token ends its whole session: its access token and refresh token stop working', async () => {
    const { token, refreshToken } = await loginAs(app);
    const res = await form(app, '/revoke', { token: refreshToken, token_type_hint: 'refresh_token' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    await expectUnauthorized(await me(app, token));
    await expectProblem(await refresh(app, refreshToken), 400, 'invalid-refresh-token');
  });

  test('an access token ends its whole session, whatever the hint says', async () => {
    const { token, refreshToken } = await loginAs(app);
    expect((await me(app, token)).status).toBe(200); // remembered by the view first
    expect((await form(app, '/revoke', { token, token_type_hint: 'refresh_token' })).status).toBe(200);
    await expectUnauthorized(await me(app, token));
    await expectProblem(await refresh(app, refreshToken), 400, 'invalid-refresh-token');
  });

  test("leaves the user's other sessions alone", async () => {
    const { email, password, token } = await loginAs(app);
    const other = await json<TokenBody>(await form(app, '/token', { username: email, password }));
    await form(app, '/revoke', { token });
    expect((await me(app, other.access_token)).status).toBe(200);
  });

  test('answers 200 for a token that is not ours, spent, or already revoked, and for a client_id', async () => {
    const { refreshToken } = await loginAs(app);
    for (const token of ['garbage', `${crypto.randomUUID()}.${'a'.repeat(43)}`, refreshToken, refreshToken]) {
      expect((await form(app, '/revoke', { token, client_id: 'hono-postgres-auth' })).status).toBe(200);
    }
  });

  test('takes multipart too', async () => {
    const { token } = await loginAs(app);
    const body = new FormData();
    body.set('token', token);
    expect((await app.request('/revoke', { method: 'POST', body })).status).toBe(200);
    await expectUnauthorized(await me(app, token));
  });

  test('a missing token is 400 invalid_request', async () => {
    const problem = await expectProblem(await form(app, '/revoke', {}), 400, 'invalid-request');
    expect((problem as { error?: string }).error).toBe('invalid_request');
  });

  test('is audited as the session revoked', async () => {
    const admin = await loginAsAdmin(app, deps);
    const { token, user } = await loginAs(app);
    await form(app, '/revoke', { token });
    const events = await json<{ items: { event: string; details: Record<string, unknown> }[] }>(
      await app.request(`/audit?user_id=${user.id}`, { headers: bearer(admin.token) }),
    );
    expect(events.items[0]).toMatchObject({ event: 'session_revoked', details: { via: 'revoke' } });
  });
});

describe('POST /introspect (RFC 7662)', () => {
  test('without client credentials: 401 invalid_client with the challenges', async () => {
    const { token } = await loginAs(introspecting.app);
    for (const headers of [
      {},
      basic(CLIENT.id, 'wrong secret'),
      basic('someone', CLIENT.secret),
      { Authorization: 'Basic %%%' },
    ]) {
      const res = await introspect(token, headers as Record<string, string>);
      const problem = await expectProblem(res, 401, 'invalid-client');
      expect((problem as { error?: string }).error).toBe('invalid_client');
      expect(res.headers.get('WWW-Authenticate')).toContain('Basic');
    }
  });

  test("a plain user's bearer token is not a credential for it", async () => {
    const caller = await loginAs(introspecting.app);
    const { token } = await loginAs(introspecting.app);
    await expectProblem(await introspect(token, bearer(caller.token)), 401, 'invalid-client');
  });

  test('a live access token: active with its claims, for the client and for an admin', async () => {
    const { token, user } = await loginAs(introspecting.app);
    const admin = await loginAsAdmin(introspecting.app, deps);
    for (const headers of [basic(CLIENT.id, CLIENT.secret), bearer(admin.token)]) {
      const res = await introspect(token, headers);
      expect(res.status).toBe(200);
      expect(res.headers.get('Cache-Control')).toBe('no-store');
      const claims = decodeJwt(token).payload;
      expect(await json<Record<string, unknown>>(res)).toEqual({
        active: true,
        sub: String(user.id),
        sid: claims.sid,
        client_id: 'hono-postgres-auth',
        exp: claims.exp,
        iat: claims.iat,
        iss: claims.iss,
        aud: claims.aud,
        token_type: 'Bearer',
        token_use: 'access_token',
        amr: ['pwd'],
        jti: claims.jti,
      });
    }
  });

  test('a live refresh token: active, token_use refresh_token; once spent, inactive', async () => {
    const { refreshToken, user } = await loginAs(introspecting.app);
    const live = await json<Record<string, unknown>>(await introspect(refreshToken));
    expect(live).toMatchObject({ active: true, sub: String(user.id), token_use: 'refresh_token', amr: ['pwd'] });
    await refresh(introspecting.app, refreshToken);
    expect(await json<Record<string, unknown>>(await introspect(refreshToken, undefined, 'refresh_token'))).toEqual({
      active: false,
    });
  });

  test('anything not live is {active: false} and nothing more: revoked, expired, garbage, forged', async () => {
    const { token: revoked } = await loginAs(introspecting.app);
    await form(introspecting.app, '/revoke', { token: revoked });
    const own = await createTestApp({
      env: { INTROSPECTION_CLIENT_ID: CLIENT.id, INTROSPECTION_CLIENT_SECRET: CLIENT.secret },
    });
    const { token: expiring } = await loginAs(own.app);
    own.clock.advance(15 * 60 * 1000);
    const [header, payload] = (await loginAs(introspecting.app)).token.split('.');
    for (const [on, token] of [
      [introspecting.app, revoked],
      [own.app, expiring],
      [introspecting.app, 'garbage'],
      [introspecting.app, `${header}.${payload}.AAAA`],
    ] as const) {
      const res = await form(on, '/introspect', { token }, basic(CLIENT.id, CLIENT.secret));
      expect(await json<Record<string, unknown>>(res)).toEqual({ active: false });
    }
  });

  test('decides from the database: a token the view remembers is inactive at once after a revocation', async () => {
    const { token } = await loginAs(introspecting.app);
    expect((await me(introspecting.app, token)).status).toBe(200);
    await form(app, '/revoke', { token }); // through another app: this one hears of it a moment later
    expect(await json<Record<string, unknown>>(await introspect(token))).toEqual({ active: false });
  });

  test('a missing token is 400 invalid_request (after the client authenticated)', async () => {
    const res = await form(introspecting.app, '/introspect', {}, basic(CLIENT.id, CLIENT.secret));
    await expectProblem(res, 400, 'invalid-request');
  });
});
