/**
 * examples/edge-verifier under workerd (`wrangler dev --local`): a resource server that verifies this
 * service's tokens from its JWKS alone. A real Bun server of ours on a PostgreSQL database of the test's
 * own, a real workerd; forged tokens are signed with the service's own key (read from that database and
 * opened with SECRET_KEY, as only a holder of both could) so that each forgery differs in one thing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { SignJWT } from 'jose';
import { type ServerProcess, startServerProcess } from '../scripts/lib/processes';
import { wranglerReadyLine } from '../scripts/lib/runtimes';
import { createLogger } from '../src/lib/logger';
import { createKeyRing } from '../src/services/keys';
import { decodeJwt, TEST_PASSWORD, TEST_SECRET_KEY, testConfig, uniqueEmail } from './helpers';
import { isolatedPostgresDatabase } from './instances';
import { runCli, START_TIMEOUT_MS, startServer } from './server-process';

const ISSUER = 'hono-postgres-auth';

const database = await isolatedPostgresDatabase('edge');
let auth: ServerProcess;
let edge: ServerProcess;

beforeAll(
  async () => {
    // A one-second JWKS max-age, so the test sees a retired key leave the verifier's cache without waiting 5 minutes.
    auth = await startServer({ DATABASE_URL: database.url, JWKS_MAX_AGE_SECONDS: '1', SECRET_KEY: TEST_SECRET_KEY });
    edge = await startServerProcess(
      'edge-verifier',
      [
        'node_modules/.bin/wrangler',
        'dev',
        '--local',
        '--config',
        'examples/edge-verifier/wrangler.toml',
        '--port',
        '0',
        '--ip',
        '127.0.0.1',
        '--var',
        `JWKS_URL:${auth.url}/.well-known/jwks.json`,
        '--show-interactive-dev-session=false',
      ],
      { env: { WRANGLER_SEND_METRICS: 'false' }, ready: { line: wranglerReadyLine }, timeoutMs: START_TIMEOUT_MS },
    );
  },
  2 * START_TIMEOUT_MS + 30_000,
); // a server start, then wrangler bundling the Worker: each up to a start's timeout

afterAll(async () => {
  await edge?.stop({ group: true });
  await auth?.stop();
  await database.drop();
});

async function loginToken(): Promise<string> {
  const email = uniqueEmail('edge');
  const json = { 'Content-Type': 'application/json' };
  await fetch(`${auth.url}/register`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password: TEST_PASSWORD }),
  });
  const res = await fetch(`${auth.url}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

const whoami = (token?: string) =>
  fetch(`${edge.url}/api/whoami`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });

/** Signs claims with the service's active key, changing what the test says. */
async function signAsService(claims: Record<string, unknown>) {
  const logger = createLogger('silent');
  const ring = createKeyRing({ config: testConfig(), clock: { now: () => new Date() }, logger });
  await ring.reload(database.db);
  const { kid, alg, key } = await ring.signingKey();
  return new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'at+jwt' }).sign(key);
}

describe('the edge verifier (workerd), from the JWKS alone', () => {
  test('accepts a token of the service', async () => {
    const token = await loginToken();
    const res = await whoami(token);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: decodeJwt(token).payload.sub, amr: ['pwd'] });
  });

  test('refuses no token, a tampered one, an expired one and one for another audience', async () => {
    const token = await loginToken();
    const claims = decodeJwt(token).payload;
    const [header, , signature] = token.split('.');
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: '1' })).toString('base64url')}.${signature}`;
    const now = Math.floor(Date.now() / 1000);
    const expired = await signAsService({ ...claims, iat: now - 3600, nbf: now - 3600, exp: now - 60 });
    const elsewhere = await signAsService({ ...claims, aud: 'another-service' });
    const control = await signAsService({ ...claims, iss: ISSUER }); // the forger's control: right in every way
    expect((await whoami(control)).status).toBe(200);
    for (const bad of [undefined, tampered, expired, elsewhere]) expect((await whoami(bad)).status).toBe(401);
  });

  test('refuses the tokens of a retired key once its cached JWKS expires, and takes the successor', async () => {
    const token = await loginToken();
    expect((await whoami(token)).status).toBe(200);
    const { kid } = decodeJwt(token).header as { kid: string };
    const retired = await runCli(['keys', 'retire', kid], { DATABASE_URL: database.url, SECRET_KEY: TEST_SECRET_KEY });
    expect(retired.code).toBe(0);
    await Bun.sleep(1_100); // JWKS_MAX_AGE_SECONDS=1
    expect((await whoami(token)).status).toBe(401);
    const next = await loginToken(); // signed by the successor, a kid the verifier fetches the JWKS again for
    expect(decodeJwt(next).header.kid).not.toBe(kid);
    expect((await whoami(next)).status).toBe(200);
  });
});
