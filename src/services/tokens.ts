/**
 * Access tokens (API.md "Tokens"): RFC 9068 JWTs, header `typ: at+jwt` and `kid`, signed with the key ring's
 * active key (ES256 or EdDSA, or HS256 with SECRET_KEY). hono/jwt verifies them on WebCrypto; it cannot
 * write a `typ` other than `JWT` or a `kid` with a CryptoKey, so signing uses jose's SignJWT, the smallest
 * standard tool that can (verification stays with hono/jwt, like every verifier of ours).
 */
import { verify } from 'hono/jwt';
import { SignJWT } from 'jose';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { MAX_USER_ID } from '../db/schema';
import { type Clock, epochSeconds } from '../lib/clock';
import { isUuid } from '../lib/ids';
import { CLOCK_SKEW_SECONDS, type KeyRing } from './keys';

const MAX_TOKEN_LENGTH = 4096; // ours are ~500 bytes; anything far larger is not worth parsing
export const ACCESS_TOKEN_TYPE = 'at+jwt'; // RFC 9068 §2.1

export interface AccessTokenClaims {
  /** The user id, as a JSON string. */
  sub: string;
  /** The session (refresh-token family) the token belongs to: revoking it revokes the token. */
  sid: string;
  /** RFC 9068 §2.2: the client the token was issued to. */
  client_id: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  iss: string;
  aud: string;
  /** RFC 8176 authentication methods: `["pwd"]`, `["pwd","otp"]`, `["webauthn"]`. */
  amr: string[];
}

export interface IssuedAccessToken {
  token: string;
  /** Seconds until it expires. */
  expiresIn: number;
  claims: AccessTokenClaims;
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  kid: string;
}

export interface AccessTokens {
  issue(input: { userId: number; sessionId: string; amr: string[]; clientId: string }): Promise<IssuedAccessToken>;
  /**
   * The claims of a token that is ours and current: signed by a key of the ring that is not revoked, with
   * the key's own algorithm, `typ` at+jwt, our issuer and audience, in its time window, and no longer-lived
   * than our tokens are. Null for anything else.
   */
  verify(
    token: string,
    options?: { /** where to look for a key the ring does not know yet */ db?: Database },
  ): Promise<VerifiedAccessToken | null>;
}

export function createAccessTokens({
  config,
  clock,
  keys,
}: {
  config: Config;
  clock: Clock;
  keys: KeyRing;
}): AccessTokens {
  const lifetime = config.ACCESS_TOKEN_EXPIRE_MINUTES * 60;
  return {
    async issue({ userId, sessionId, amr, clientId }) {
      const now = epochSeconds(clock);
      const claims: AccessTokenClaims = {
        sub: String(userId),
        sid: sessionId,
        client_id: clientId,
        iat: now,
        nbf: now,
        exp: now + lifetime,
        jti: crypto.randomUUID(),
        iss: config.JWT_ISSUER,
        aud: config.JWT_AUDIENCE,
        amr,
      };
      const signer = await keys.signingKey();
      const token = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: ACCESS_TOKEN_TYPE })
        .sign(signer.key);
      return { token, expiresIn: lifetime, claims };
    },

    async verify(token, { db } = {}) {
      if (token.length > MAX_TOKEN_LENGTH) return null;
      const kid = headerKid(token);
      const key = kid === null ? null : await keys.verificationKey(kid, db);
      if (!key) return null;
      let payload: Record<string, unknown>;
      try {
        // The algorithm is the key's own (RFC 8725 §3.1): a token cannot choose how it is checked.
        payload = await verify(token, key.key, {
          alg: key.alg,
          typ: ACCESS_TOKEN_TYPE,
          iss: config.JWT_ISSUER,
          aud: config.JWT_AUDIENCE,
          exp: false,
          nbf: false,
          iat: false,
        });
      } catch {
        return null;
      }
      const claims = checkClaims(payload, epochSeconds(clock), lifetime);
      return claims ? { claims, kid: key.kid } : null;
    },
  };
}

/** The `kid` of a compact JWS header, or null when there is none to read. */
function headerKid(token: string): string | null {
  const dot = token.indexOf('.');
  if (dot <= 0) return null;
  try {
    const header = JSON.parse(atob(token.slice(0, dot).replaceAll('-', '+').replaceAll('_', '/'))) as unknown;
    const kid = (header as { kid?: unknown } | null)?.kid;
    return typeof kid === 'string' && kid.length <= 128 ? kid : null;
  } catch {
    return null;
  }
}

/**
 * The time claims against the injected clock (hono/jwt would use Date.now() and accepts a token without `exp`;
 * RFC 8725 §3.10), and the shape of ours. A token that lives longer than ours do was not made by this service,
 * even if it carries a good signature (a leaked key must not mint tokens that never expire).
 */
function checkClaims(payload: Record<string, unknown>, now: number, lifetime: number): AccessTokenClaims | null {
  const { sub, exp, nbf, iat, jti, sid, client_id: clientId, amr } = payload;
  // Found by fuzzing: ten digits can exceed users.id, a PostgreSQL integer, and the lookup then failed with
  // "integer out of range" (a 500). Only a holder of the key can sign such a token, but it is not ours.
  if (typeof sub !== 'string' || !/^[1-9][0-9]{0,9}$/.test(sub) || Number(sub) > MAX_USER_ID) return null;
  if (typeof jti !== 'string' || !isUuid(sid) || typeof clientId !== 'string') return null;
  if (!Array.isArray(amr) || !amr.every((method) => typeof method === 'string')) return null;
  if (!isTime(exp) || exp <= now) return null;
  if (nbf !== undefined && (!isTime(nbf) || nbf > now)) return null;
  if (!isTime(iat) || iat > now) return null;
  if (exp - iat > lifetime + CLOCK_SKEW_SECONDS) return null;
  return payload as unknown as AccessTokenClaims;
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
