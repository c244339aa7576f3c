/**
 * Logging in and out: the password grant, the refresh grant, logout, ending a session, and the bearer check
 * every authenticated request runs. Handlers parse and respond; the rules live here.
 */
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { inAccessTransaction } from '../access/transaction';
import { isDatabaseError } from '../db/errors';
import { epochSeconds } from '../lib/clock';
import { isEmail, normalizeEmail } from '../lib/email';
import { clientKey } from '../lib/ip';
import { describeError } from '../lib/logger';
import type { LoginGrant, LoginOutcome } from '../lib/metrics';
import { AppError } from '../lib/problems';
import { RequestAbandoned, type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { beginPasswordAttempt } from '../rate-limit/lockout';
import { recordAudit } from './audit';
import type { ServiceContext } from './context';
import { recordSuccessfulLogin } from './login';
import { completeMfaChallenge, issueMfaChallenge, secondFactorMethods } from './mfa';
import { checkPasskeyAssertion } from './passkeys';
import { checkPassword, freshHashIfOutdated, hashOptions } from './passwords';
import { isLive, revokeAllSessions, revokeSession, rotateRefreshToken, type Session } from './sessions';
import type { AccessTokenClaims } from './tokens';
import { findUserByEmail, replacePasswordHash, type User } from './users';

const PASSKEY_ONLY_DETAIL =
  'A second factor is required: log in with your passkey (POST /webauthn/login/options, then /webauthn/login/verify)';

/** What a successful grant hands out (RFC 6749 §5.1 names them in the response). */
export interface TokenPair {
  accessToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
  refreshToken: string;
}

async function tokenPair(
  { tokens, config }: Pick<ServiceContext, 'tokens' | 'config'>,
  { user, session, refreshToken }: { user: User; session: Session; refreshToken: string },
): Promise<TokenPair> {
  const { token, expiresIn } = await tokens.issue({
    userId: user.id,
    sessionId: session.id,
    amr: session.amr,
    clientId: session.clientId ?? config.PUBLIC_CLIENT_ID,
  });
  return { accessToken: token, expiresIn, refreshToken };
}

/**
 * The password grant (RFC 6749 §4.3). The attempt is reserved against the account's limits before bcrypt
 * runs (rate-limit/lockout.ts), so a locked account answers 429 without hashing; a success returns the
 * points. Unknown emails, wrong passwords and disabled accounts look the same from outside: the same 401 and
 * the same bcrypt work (services/passwords.ts), so neither the answer nor its timing reveals which emails
 * exist. Nothing is written once the request has been answered without this handler (its timeout, a client
 * that left): the hash is dropped or its result ignored, and the writes check the request's signal.
 */
export const loginWithPassword = (ctx: ServiceContext, input: PasswordGrant): Promise<TokenPair> =>
  counted(ctx, 'password', () => passwordGrant(ctx, input));

/** A login step, counted by its outcome (lib/metrics.ts). */
async function counted(ctx: ServiceContext, grant: LoginGrant, step: () => Promise<TokenPair>): Promise<TokenPair> {
  try {
    const pair = await step();
    ctx.metrics.login(grant, 'ok');
    return pair;
  } catch (error) {
    ctx.metrics.login(grant, loginOutcome(error));
    throw error;
  }
}

/** The outcome label of a login step that failed. */
function loginOutcome(error: unknown): LoginOutcome {
  if (error instanceof RequestAbandoned) return 'abandoned';
  if (!(error instanceof AppError)) return 'error';
  switch (error.code) {
    case 'invalid-credentials':
      return 'bad_credentials';
    case 'mfa-required':
      return 'mfa_required';
    case 'invalid-otp':
      return 'bad_code';
    case 'invalid-mfa-token':
      return 'bad_mfa_token';
    case 'passkey-login-failed':
      return 'bad_passkey';
    case 'rate-limited':
      return 'locked';
    case 'email-unverified':
      return 'email_unverified';
    case 'overloaded':
      return 'overloaded';
    case 'timeout':
      return 'abandoned';
    default:
      return 'error';
  }
}

interface PasswordGrant {
  username: string;
  password: string;
  /** RFC 6749 §4.3 `client_id`, if the client sent one */
  clientId?: string;
  meta: RequestMeta;
}

async function passwordGrant(
  ctx: ServiceContext,
  { username, password, clientId, meta }: PasswordGrant,
): Promise<TokenPair> {
  const email = normalizeEmail(username);
  const attempt = await beginPasswordAttempt(ctx, { account: email, address: clientKey(meta.ip) });
  let user: User | undefined;
  let matches: boolean;
  try {
    user = await findUserByEmail(ctx, { email });
    const options = hashOptions(meta, { account: email, preferred: attempt.known });
    matches = await checkPassword(ctx, { user, password, options });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  if (!user || !matches) {
    await attempt.settle('failed');
    throwIfAbandoned(meta); // a failure nobody will be told of is not logged either
    // The attempted email is kept so an admin can see who is being targeted (only an email: people type
    // passwords into the username field), and for a known one the event is filed under that user too.
    await recordAudit(ctx, {
      event: 'login_failed',
      meta,
      userId: user?.id ?? null,
      details: isEmail(email) ? { email } : {},
    });
    throw new AppError('invalid-credentials');
  }
  // Only once the password matched, so the 403 tells nothing to someone who does not know it. The attempt's
  // points come back (the password was right), but the address is not marked as one the account logs in from.
  if (ctx.config.EMAIL_VERIFICATION === 'required' && user.emailVerifiedAt === null) {
    await attempt.settle('unchecked');
    throw new AppError('email-unverified');
  }
  // The same goes for a second factor: the password alone opens nothing, it earns an mfa_token for the next step
  // (grant_type=mfa_otp), and `methods` says which steps there are: a user whose only factor is a passkey
  // finishes with a passkey login instead, which needs no password at all.
  const methods = await secondFactorMethods(ctx, { userId: user.id });
  if (methods.length > 0) {
    await attempt.settle('unchecked');
    throwIfAbandoned(meta);
    const mfaToken = await issueMfaChallenge(ctx, { userId: user.id, clientId: clientId ?? null, meta });
    throw new AppError('mfa-required', {
      extensions: { mfa_token: mfaToken, methods },
      ...(methods.includes('otp') ? {} : { detail: PASSKEY_ONLY_DETAIL }),
    });
  }
  const account = user; // narrowed, for the transaction's closure
  let started: Awaited<ReturnType<typeof startLogin>>;
  try {
    started = await startLogin(ctx, { user: account, meta, amr: ['pwd'], clientId: clientId ?? null });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  await attempt.settle('succeeded');
  const fresh = await freshHashIfOutdated(ctx, { user, password, meta });
  // Best effort: the login has committed, and the old hash still verifies; the next login tries again.
  if (fresh) {
    await inAccessTransaction(ctx, (scope) =>
      replacePasswordHash(scope, { userId: account.id, from: account.passwordHash, to: fresh }),
    ).catch(() => {});
  }
  return tokenPair(ctx, { user, ...started });
}

/** A login in an access transaction of its own (services/login.ts: the time, the audit event, the session). */
function startLogin(
  ctx: ServiceContext,
  { user, meta, amr, clientId }: { user: User; meta: RequestMeta; amr: string[]; clientId: string | null },
) {
  return inAccessTransaction(ctx, (scope) =>
    recordSuccessfulLogin({ ...ctx, ...scope }, { userId: user.id, meta, amr, clientId }),
  );
}

/**
 * A passkey login (POST /webauthn/login/verify): the assertion checked by services/passkeys.ts, then the same
 * session and tokens as the password grant, with `amr: ["webauthn"]`. Every failure is the same 401 (an unknown
 * credential, a disabled user, a bad signature, a spent challenge), audited with what it was.
 */
export const loginWithPasskey = (ctx: ServiceContext, input: PasskeyLogin): Promise<TokenPair> =>
  counted(ctx, 'passkey', () => passkeyLogin(ctx, input));

interface PasskeyLogin {
  response: AuthenticationResponseJSON;
  meta: RequestMeta;
}

async function passkeyLogin(ctx: ServiceContext, { response, meta }: PasskeyLogin): Promise<TokenPair> {
  const assertion = await checkPasskeyAssertion(ctx, { response, meta });
  if (!assertion.ok) {
    throwIfAbandoned(meta);
    await recordAudit(ctx, {
      event: 'login_failed',
      meta,
      userId: assertion.user?.id ?? null,
      details: { method: 'webauthn', reason: assertion.reason },
    });
    throw new AppError('passkey-login-failed');
  }
  const { user } = assertion;
  if (ctx.config.EMAIL_VERIFICATION === 'required' && user.emailVerifiedAt === null) {
    throw new AppError('email-unverified');
  }
  return tokenPair(ctx, { user, ...(await startLogin(ctx, { user, meta, amr: ['webauthn'], clientId: null })) });
}

/**
 * grant_type=mfa_otp: the second step of a login whose password grant answered `mfa-required`, with a TOTP
 * code or a recovery code (services/mfa.ts completeMfaChallenge has the rules). The tokens carry
 * `amr: ["pwd","otp"]`, and so does the session, so every refresh keeps it.
 */
export async function loginWithSecondFactor(
  ctx: ServiceContext,
  input: { mfaToken: string; code: string; method: 'totp' | 'recovery'; meta: RequestMeta },
): Promise<TokenPair> {
  return counted(ctx, 'mfa_otp', async () => tokenPair(ctx, await completeMfaChallenge(ctx, input)));
}

/** The refresh grant (RFC 6749 §6): spends the refresh token and returns the next pair of its session. */
export async function refreshTokens(
  ctx: ServiceContext,
  { refreshToken, meta }: { refreshToken: string; meta: RequestMeta },
): Promise<TokenPair> {
  return tokenPair(ctx, await rotateRefreshToken(ctx, { presented: refreshToken, meta }));
}

/** Ends the caller's session, or with `all` every session of theirs: their tokens stop working at once. */
export async function logout(
  ctx: ServiceContext,
  { userId, sessionId, all, meta }: { userId: number; sessionId: string; all: boolean; meta: RequestMeta },
): Promise<void> {
  await inAccessTransaction(ctx, async (scope) => {
    const scoped = { ...scope, clock: ctx.clock };
    if (all) await revokeAllSessions(scoped, { userId });
    else await revokeSession(scoped, { userId, sessionId });
    await recordAudit(scope, { event: 'logout', meta, userId, actorId: userId, details: { all } });
  });
}

/** Ends one of the caller's sessions. Someone else's session answers exactly like a missing one (404). */
export async function endSession(
  ctx: ServiceContext,
  { userId, sessionId, meta }: { userId: number; sessionId: string; meta: RequestMeta },
): Promise<void> {
  const ended = await inAccessTransaction(ctx, async (scope) => {
    if (!(await revokeSession({ ...scope, clock: ctx.clock }, { userId, sessionId }))) return false;
    await recordAudit(scope, {
      event: 'session_revoked',
      meta,
      userId,
      actorId: userId,
      details: { session_id: sessionId },
    });
    return true;
  });
  if (!ended) throw new AppError('not-found', { detail: 'No such session' });
}

type BearerContext = Pick<ServiceContext, 'tokens' | 'view' | 'authLookup' | 'clock' | 'db' | 'logger'>;
type BearerOptions = { /** decide from the database alone (introspection) */ fresh?: boolean };

/**
 * The user and claims behind a bearer token: a token that is ours and current, whose session is live and
 * whose user exists and is enabled; null for anything else. A token seen before costs a map lookup instead
 * of a signature check; its user and session come from the view while the view can answer, from the
 * database otherwise (access/view.ts says when).
 * A database that fails meanwhile (down, or a pooler losing a statement) is a 503 to retry, never a 401: a
 * client told its token is bad throws it away and logs its user out, and nothing was learnt about the token.
 */
export async function authenticateBearer(
  ctx: BearerContext,
  token: string,
  options: BearerOptions = {},
): Promise<{ user: User; claims: AccessTokenClaims } | null> {
  try {
    return await checkBearer(ctx, token, options);
  } catch (error) {
    if (!isDatabaseError(error)) throw error;
    ctx.logger.warn('database error in the token check', { error: describeError(error) });
    throw new AppError('database-unavailable');
  }
}

async function checkBearer(
  { tokens, view, authLookup, clock, db }: BearerContext,
  token: string,
  { fresh = false }: BearerOptions,
): Promise<{ user: User; claims: AccessTokenClaims } | null> {
  let verified = fresh ? undefined : view.verifiedToken(token, epochSeconds(clock));
  if (!verified) {
    const checked = await tokens.verify(token, { db });
    if (!checked) return null;
    verified = { ...checked, exp: checked.claims.exp };
    view.rememberToken(token, verified);
  }
  const { claims, kid } = verified;
  const userId = Number(claims.sub);
  let found = fresh ? undefined : view.lookup(userId, claims.sid);
  if (!found) {
    const ticket = view.ticket();
    const { row, keyRevoked } = await authLookup({ userId, sessionId: claims.sid, kid });
    if (keyRevoked) return null;
    view.fill(ticket, userId, claims.sid, row);
    found = row ?? { user: undefined, session: null };
  }
  const { user, session } = found;
  if (!user || user.disabled || !isLive(session, clock.now())) return null;
  return { user, claims };
}
