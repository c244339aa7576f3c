import { sign, verify } from 'hono/jwt';
import type { Config } from '../config';
import type { User } from '../db/schema';
import type { Clock } from '../deps';

const ALGORITHM = 'HS256';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_TOKEN_LENGTH = 4096; // ours are ~300 bytes; anything far larger is not worth parsing
const MAX_USER_ID = 2 ** 31 - 1; // users.id is a PostgreSQL integer

export interface AccessTokenClaims {
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  iss: string;
  aud: string;
  /** The session (refresh-token family) the token belongs to: revoking it revokes the token. */
  sid: string;
}

interface TokenDeps {
  config: Config;
  clock: Clock;
}

const epochSeconds = (clock: Clock) => Math.floor(clock.now().getTime() / 1000);

// Imported once per secret: given a string, hono/jwt re-imports the raw key through WebCrypto on every call.
const hmacKeys = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    hmacKeys.set(secret, key);
  }
  return key;
}

export async function issueAccessToken({ config, clock }: TokenDeps, user: Pick<User, 'id'>, sessionId: string) {
  const now = epochSeconds(clock);
  const expiresIn = config.ACCESS_TOKEN_EXPIRE_MINUTES * 60;
  const claims: AccessTokenClaims = {
    sub: String(user.id),
    iat: now,
    nbf: now,
    exp: now + expiresIn,
    jti: crypto.randomUUID(),
    iss: config.JWT_ISSUER,
    aud: config.JWT_AUDIENCE,
    sid: sessionId,
  };
  return { token: await sign({ ...claims }, await hmacKey(config.SECRET_KEY), ALGORITHM), expiresIn, claims };
}

/**
 * Verifies signature, algorithm, issuer and audience with hono/jwt, then the time claims against the
 * injected clock (hono/jwt would use Date.now() and accepts tokens with no `exp` at all; RFC 8725 §3.10).
 * Returns null for any token that is not one of ours and current.
 */
export async function verifyAccessToken(
  { config, clock }: TokenDeps,
  token: string,
): Promise<AccessTokenClaims | null> {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  let payload: Record<string, unknown>;
  try {
    payload = await verify(token, await hmacKey(config.SECRET_KEY), {
      alg: ALGORITHM,
      iss: config.JWT_ISSUER,
      aud: config.JWT_AUDIENCE,
      exp: false,
      nbf: false,
      iat: false,
    });
  } catch {
    return null;
  }
  const now = epochSeconds(clock);
  const { sub, exp, nbf, iat, jti, sid } = payload;
  // Found by fuzzing: ten digits can exceed users.id, a PostgreSQL integer, and the lookup then failed with
  // "integer out of range" (a 500). Only a holder of the key can sign such a token (another service or an
  // older version sharing SECRET_KEY), but it is still a token that is not ours: refuse it like any other.
  if (typeof sub !== 'string' || !/^[1-9][0-9]{0,9}$/.test(sub) || Number(sub) > MAX_USER_ID) return null;
  if (typeof jti !== 'string' || typeof sid !== 'string' || !UUID.test(sid)) return null;
  if (!isTime(exp) || exp <= now) return null;
  if (nbf !== undefined && (!isTime(nbf) || nbf > now)) return null;
  if (!isTime(iat) || iat > now) return null;
  return payload as unknown as AccessTokenClaims;
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
