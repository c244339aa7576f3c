/**
 * Access tokens: short-lived HS256 JWTs naming their user (`sub`) and session (`sid`), signed and verified
 * with hono/jwt on WebCrypto. The key is imported once per app (given a string, hono/jwt would re-import
 * the raw key on every call).
 */
import { sign, verify } from 'hono/jwt';
import type { Config } from '../config';
import { MAX_USER_ID } from '../db/schema';
import { type Clock, epochSeconds } from '../lib/clock';
import { isUuid } from '../lib/ids';

const ALGORITHM = 'HS256';
const MAX_TOKEN_LENGTH = 4096; // ours are ~300 bytes; anything far larger is not worth parsing

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

export interface IssuedAccessToken {
  token: string;
  /** Seconds until it expires. */
  expiresIn: number;
  claims: AccessTokenClaims;
}

export interface AccessTokens {
  issue(input: { userId: number; sessionId: string }): Promise<IssuedAccessToken>;
  /** The claims of a token that is ours and current by signature, algorithm, issuer, audience and time; else null. */
  verify(token: string): Promise<AccessTokenClaims | null>;
}

export function createAccessTokens({ config, clock }: { config: Config; clock: Clock }): AccessTokens {
  let key: Promise<CryptoKey> | undefined;
  const signingKey = () => {
    key ??= crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode(config.SECRET_KEY),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign', 'verify'],
    );
    return key;
  };

  return {
    async issue({ userId, sessionId }) {
      const now = epochSeconds(clock);
      const expiresIn = config.ACCESS_TOKEN_EXPIRE_MINUTES * 60;
      const claims: AccessTokenClaims = {
        sub: String(userId),
        iat: now,
        nbf: now,
        exp: now + expiresIn,
        jti: crypto.randomUUID(),
        iss: config.JWT_ISSUER,
        aud: config.JWT_AUDIENCE,
        sid: sessionId,
      };
      return { token: await sign({ ...claims }, await signingKey(), ALGORITHM), expiresIn, claims };
    },

    // hono/jwt checks signature, algorithm, issuer and audience; the time claims are checked here against the
    // injected clock (hono/jwt would use Date.now() and accepts tokens with no `exp` at all; RFC 8725 §3.10).
    async verify(token) {
      if (token.length > MAX_TOKEN_LENGTH) return null;
      let payload: Record<string, unknown>;
      try {
        payload = await verify(token, await signingKey(), {
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
      if (typeof jti !== 'string' || !isUuid(sid)) return null;
      if (!isTime(exp) || exp <= now) return null;
      if (nbf !== undefined && (!isTime(nbf) || nbf > now)) return null;
      if (!isTime(iat) || iat > now) return null;
      return payload as unknown as AccessTokenClaims;
    },
  };
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
