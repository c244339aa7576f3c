/**
 * The token endpoints other services use (API.md "Token endpoints for other services"): revocation
 * (RFC 7009), introspection (RFC 7662) and the authorization server's metadata (RFC 8414).
 */
import { inAccessTransaction } from '../access/transaction';
import type { Config } from '../config';
import { constantTimeEqual } from '../lib/crypto';
import type { RequestMeta } from '../lib/request-meta';
import { recordAudit } from './audit';
import { authenticateBearer } from './auth';
import type { ServiceContext } from './context';
import { findRefreshToken, isLive, revokeSessionById } from './sessions';

export const TOKEN_TYPE_HINTS = ['access_token', 'refresh_token'] as const;
export type TokenTypeHint = (typeof TOKEN_TYPE_HINTS)[number];

/** The grants POST /token takes; RFC 8414 `grant_types_supported` lists them. */
export const GRANT_TYPES_SUPPORTED = ['password', 'refresh_token', 'mfa_otp'];

/**
 * RFC 7009: whatever token is presented, the answer is the same (200), so revocation reveals nothing. A
 * refresh or access token of ours ends its whole session: every token of that session stops working, here
 * at once and on every other instance within the invalidation bound.
 */
export async function revokeToken(
  ctx: ServiceContext,
  { token, hint, meta }: { token: string; hint?: string; meta: RequestMeta },
): Promise<void> {
  const sessionId = await sessionOf(ctx, { token, hint });
  if (!sessionId) return;
  await inAccessTransaction(ctx, async (scope) => {
    const revoked = await revokeSessionById({ ...scope, clock: ctx.clock }, { sessionId });
    if (!revoked) return;
    await recordAudit(scope, {
      event: 'session_revoked',
      meta,
      userId: revoked.userId,
      details: { session_id: sessionId, via: 'revoke' },
    });
  });
}

/** The session a token of ours belongs to. The hint only says which kind to try first (RFC 7009 §2.1). */
async function sessionOf(ctx: ServiceContext, { token, hint }: { token: string; hint?: string }) {
  const asRefresh = async () => (await findRefreshToken(ctx, { presented: token }))?.session.id;
  const asAccess = async () => (await ctx.tokens.verify(token, { db: ctx.db }))?.claims.sid;
  const [first, second] = hint === 'access_token' ? [asAccess, asRefresh] : [asRefresh, asAccess];
  return (await first()) ?? (await second());
}

export type Introspection =
  | { active: false }
  | {
      active: true;
      sub: string;
      sid: string;
      client_id: string;
      exp: number;
      iat: number;
      iss: string;
      aud: string;
      /** RFC 7662 §2.2: the OAuth token type (RFC 6749 §5.1). */
      token_type: 'Bearer';
      /** Which of ours it is, as RFC 7009's hints name them. */
      token_use: TokenTypeHint;
      amr: string[];
      jti?: string;
    };

const epoch = (date: Date) => Math.floor(date.getTime() / 1000);

/**
 * RFC 7662, for the calls that must know now: decided from the database, never the view, whatever the
 * listener's state. Anything that is not a live token of ours is `{active: false}` and nothing more (§2.2).
 */
export async function introspectToken(
  ctx: ServiceContext,
  { token, hint }: { token: string; hint?: string },
): Promise<Introspection> {
  const inactive = { active: false } as const;
  const { config, clock } = ctx;
  const asRefresh = async (): Promise<Introspection | null> => {
    const found = await findRefreshToken(ctx, { presented: token });
    if (!found) return null;
    const { token: row, session, user } = found;
    if (row.spentAt || !isLive(session, clock.now()) || user.disabled) return inactive;
    return {
      active: true,
      sub: String(user.id),
      sid: session.id,
      client_id: session.clientId ?? config.PUBLIC_CLIENT_ID,
      exp: epoch(session.expiresAt),
      iat: epoch(row.createdAt),
      iss: config.JWT_ISSUER,
      aud: config.JWT_AUDIENCE,
      token_type: 'Bearer',
      token_use: 'refresh_token',
      amr: session.amr,
    };
  };
  const asAccess = async (): Promise<Introspection | null> => {
    // The view stays out of it: a healthy one may lag the database by up to the invalidation bound.
    const authenticated = await authenticateBearer(ctx, token, { fresh: true });
    if (!authenticated) return null;
    const { claims } = authenticated;
    return {
      active: true,
      sub: claims.sub,
      sid: claims.sid,
      client_id: claims.client_id,
      exp: claims.exp,
      iat: claims.iat,
      iss: claims.iss,
      aud: claims.aud,
      token_type: 'Bearer',
      token_use: 'access_token',
      amr: claims.amr,
      jti: claims.jti,
    };
  };
  const [first, second] = hint === 'refresh_token' ? [asRefresh, asAccess] : [asAccess, asRefresh];
  return (await first()) ?? (await second()) ?? inactive;
}

/**
 * HTTP Basic client credentials (RFC 6749 §2.3.1): each half is form-urlencoded before base64, so it is
 * decoded before the comparison; both halves are compared in constant time.
 */
export function isIntrospectionClient(config: Config, authorization: string | undefined): boolean {
  const { INTROSPECTION_CLIENT_ID: id, INTROSPECTION_CLIENT_SECRET: secret } = config;
  if (!id || !secret || !authorization) return false;
  const credentials = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(authorization)?.[1];
  if (!credentials) return false;
  let decoded: string;
  try {
    decoded = atob(credentials);
  } catch {
    return false;
  }
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const formDecode = (part: string) => {
    try {
      return decodeURIComponent(part.replaceAll('+', ' '));
    } catch {
      return null;
    }
  };
  const [givenId, givenSecret] = [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))];
  if (givenId === null || givenSecret === null) return false;
  // Both compared, always: which half was wrong must not show in the timing.
  const idMatches = constantTimeEqual(givenId, id);
  const secretMatches = constantTimeEqual(givenSecret, secret);
  return idMatches && secretMatches;
}

/** RFC 8414 §2 metadata; `base` is PUBLIC_URL, or the origin the request came to when that is unset. */
export function authorizationServerMetadata(config: Config, base: string) {
  const url = (path: string) => new URL(path, `${base.replace(/\/$/, '')}/`).href;
  return {
    issuer: config.JWT_ISSUER,
    token_endpoint: url('token'),
    jwks_uri: url('.well-known/jwks.json'),
    revocation_endpoint: url('revoke'),
    introspection_endpoint: url('introspect'),
    // No authorization endpoint: the service is its own client and logs in with its own grants.
    response_types_supported: [],
    grant_types_supported: GRANT_TYPES_SUPPORTED,
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    // RFC 9068 §2.1: the access tokens' signature algorithm.
    ...(config.JWT_ALGORITHM === 'HS256' ? {} : { access_token_signing_alg_values_supported: [config.JWT_ALGORITHM] }),
  };
}
