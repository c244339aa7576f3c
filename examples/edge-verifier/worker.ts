/**
 * A resource server at the edge that trusts hono-postgres-auth's access tokens with nothing but its JWKS:
 * no shared secret, no database, no call to the auth service per request. `hono/jwk` verifies each token
 * (signature with the key its `kid` names, `alg` from an allow-list, `typ` at+jwt, `iss`, `aud`, `exp`);
 * the JWKS is fetched once and kept for its Cache-Control max-age, and fetched again early when a token
 * names a key it does not have yet (a rotation).
 *
 * The trade: a verifier like this honours revocation only at the token's expiry (15 minutes by default, API.md
 * "Tokens"); a call that must know now asks the service's POST /introspect instead.
 */
import { Hono } from 'hono';
import { jwk } from 'hono/jwk';

interface Env {
  /** e.g. https://auth.example.com/.well-known/jwks.json */
  JWKS_URL: string;
  /** The tokens' `iss` and `aud` (the service's JWT_ISSUER and JWT_AUDIENCE). */
  AUTH_ISSUER: string;
  AUTH_AUDIENCE: string;
}

/** A JWK Set member as the service publishes it (its `/.well-known/jwks.json`). */
type Jwk = { kid: string; kty: string; alg: string } & Record<string, unknown>;
type JwkOptions = Parameters<typeof jwk>[0];

const MIN_REFETCH_MS = 1_000; // a flood of tokens naming unknown kids costs at most one fetch a second

let cached: { keys: Jwk[]; until: number; fetchedAt: number } | undefined;

async function keysFor(env: Env, kid: string | undefined): Promise<Jwk[]> {
  const now = Date.now();
  const known = cached?.keys.some((key) => key.kid === kid);
  const stale = !cached || now >= cached.until || (!known && now - cached.fetchedAt >= MIN_REFETCH_MS);
  if (stale) {
    const res = await fetch(env.JWKS_URL);
    if (!res.ok) throw new Error(`JWKS fetch failed: ${res.status}`);
    const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('Cache-Control') ?? '')?.[1] ?? 0);
    cached = { keys: ((await res.json()) as { keys: Jwk[] }).keys, until: now + maxAge * 1000, fetchedAt: now };
  }
  return cached?.keys ?? [];
}

/** The `kid` of the bearer token's header, to know whether the cached JWKS can have its key. */
function headerKid(authorization: string | undefined): string | undefined {
  const header = authorization?.replace(/^Bearer\s+/i, '').split('.')[0];
  try {
    return header
      ? (JSON.parse(atob(header.replaceAll('-', '+').replaceAll('_', '/'))) as { kid?: string }).kid
      : undefined;
  } catch {
    return undefined;
  }
}

const app = new Hono<{ Bindings: Env }>();

app.use('/api/*', (c, next) =>
  jwk({
    keys: (() => keysFor(c.env, headerKid(c.req.header('Authorization')))) as JwkOptions['keys'],
    alg: ['ES256', 'EdDSA'],
    verification: { iss: c.env.AUTH_ISSUER, aud: c.env.AUTH_AUDIENCE, typ: 'at+jwt' },
  })(c, next),
);

app.get('/api/whoami', (c) => {
  const payload = c.get('jwtPayload') as { sub: string; amr?: string[] };
  return c.json({ sub: payload.sub, amr: payload.amr ?? [] });
});

export default app;
