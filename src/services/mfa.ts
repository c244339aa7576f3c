/**
 * The second factor (API.md "Second factor"): TOTP (RFC 6238) with recovery codes, the second step of a
 * login (`mfa_token`, finished by grant_type=mfa_otp), the admin policy and step-up. A token of a passkey
 * login (`amr: ["webauthn"]`) counts as one that used a second factor.
 *
 * Every code check counts like a password check (rate-limit/lockout.ts): a wrong code is a failed attempt of
 * the account from that address, so codes cannot be guessed faster than passwords. A TOTP code is accepted
 * once: the step of the last accepted code is stored, and a code of that step or an earlier one is refused
 * (RFC 6238 §5.2), atomically, so two requests racing with one code cannot both pass.
 */
import { and, count, eq, exists, isNotNull, isNull, lt, lte, or, sql } from 'drizzle-orm';
import QRCode from 'qrcode';
import { type AccessScope, inAccessTransaction } from '../access/transaction';
import type { Config } from '../config';
import type { Database } from '../db/database';
import {
  mfaChallenges,
  type Passkey,
  passkeys,
  recoveryCodes,
  type Session,
  totpFactors,
  type User,
  users,
  webauthnChallenges,
} from '../db/schema';
import { base64url, randomToken, sha256 } from '../lib/crypto';
import { clientKey } from '../lib/ip';
import { deriveHmacKey, deriveKeyEncryptionKey, seal, unseal } from '../lib/key-crypto';
import { AppError } from '../lib/problems';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { matchTotp, randomTotpSecret, toBase32, totpUri } from '../lib/totp';
import { beginPasswordAttempt } from '../rate-limit/lockout';
import { recordAudit } from './audit';
import type { ServiceContext } from './context';
import { recordSuccessfulLogin } from './login';
import { enqueueMail } from './outbox';
import { listPasskeys } from './passkeys';
import { withCurrentPassword } from './passwords';
import { revokeAllSessions } from './sessions';
import { findUserByEmail } from './users';

/** RFC 8176 methods that are a second factor: a one-time code (TOTP or a recovery code), or a passkey. */
export const SECOND_FACTOR_METHODS = ['otp', 'webauthn'] as const;
export type SecondFactorMethod = (typeof SECOND_FACTOR_METHODS)[number];
/** A login finished with a TOTP or a recovery code: both are one-time passwords (RFC 8176 §2 `otp`). */
export const OTP_AMR = ['pwd', 'otp'];

const MINUTE_MS = 60_000;
const MFA_TOKEN_TTL_MS = 5 * MINUTE_MS; // long enough to find the phone, short enough to be useless later
/** Wrong codes one mfa_token takes; the next answer ends it (and each counted toward the account lockout). */
export const MFA_TOKEN_MAX_FAILURES = 5;
export const RECOVERY_CODE_COUNT = 10;
// 32 symbols (no 0/o, 1/l: read off paper), 10 of them: 50 bits per code.
const RECOVERY_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const RECOVERY_CODE_LENGTH = 10;
const TOTP_CODE = /^[0-9]{6}$/;
// HKDF `info` labels (lib/key-crypto.ts): keys for one purpose can never open another's data.
export const TOTP_SECRET_INFO = 'hono-postgres-auth/totp-secrets/v1';
const RECOVERY_CODE_INFO = 'hono-postgres-auth/recovery-codes/v1';

type Ctx = Pick<
  ServiceContext,
  | 'db'
  | 'access'
  | 'clock'
  | 'config'
  | 'hasher'
  | 'hashCosts'
  | 'rateLimits'
  | 'logger'
  | 'attempts'
  | 'mailQueued'
  | 'metrics'
>;

export const hasSecondFactorMethod = (amr: readonly string[]): boolean =>
  SECOND_FACTOR_METHODS.some((method) => amr.includes(method));

/**
 * How a user proves a second factor, by RFC 8176 name: `otp` (a confirmed TOTP, and its recovery codes) and
 * `webauthn` (a passkey); empty without one. With any, their logins need it, and so do sensitive actions.
 */
export async function secondFactorMethods(
  { db }: { db: Database },
  { userId }: { userId: number },
): Promise<SecondFactorMethod[]> {
  const confirmedTotp = db
    .select({ one: sql`1` })
    .from(totpFactors)
    .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt)));
  const anyPasskey = db.select({ one: sql`1` }).from(passkeys).where(eq(passkeys.userId, userId));
  const [row] = await db
    .select({ otp: sql<boolean>`${exists(confirmedTotp)}`, webauthn: sql<boolean>`${exists(anyPasskey)}` })
    .from(users)
    .where(eq(users.id, userId));
  return SECOND_FACTOR_METHODS.filter((method) => row?.[method] === true);
}

/** Whether the user has a second factor (a confirmed TOTP or a passkey). */
export async function hasSecondFactor(ctx: { db: Database }, { userId }: { userId: number }): Promise<boolean> {
  return (await secondFactorMethods(ctx, { userId })).length > 0;
}

/**
 * MFA_REQUIRED_FOR_ADMINS: an admin whose token carries no second factor may only enrol one (and read who
 * they are, log out). Decided from the token's `amr` alone: an admin with a factor cannot log in without it,
 * and a session started before their enrolment stays restricted until they log in with it.
 */
export const isEnrolmentPending = (
  config: Pick<Config, 'MFA_REQUIRED_FOR_ADMINS'>,
  user: Pick<User, 'role'>,
  amr: readonly string[],
): boolean => config.MFA_REQUIRED_FOR_ADMINS && user.role === 'admin' && !hasSecondFactorMethod(amr);

/** Step-up (RFC 9470): a sensitive action of a user with a second factor needs a token that used it. */
export async function needsStepUp(
  ctx: { db: Database },
  { user, amr }: { user: Pick<User, 'id'>; amr: readonly string[] },
): Promise<boolean> {
  return !hasSecondFactorMethod(amr) && (await hasSecondFactor(ctx, { userId: user.id }));
}

export type PasskeySummary = Pick<Passkey, 'id' | 'name' | 'createdAt' | 'lastUsedAt'>;

export interface MfaSummary {
  totp: { enabled: boolean; createdAt: Date | null };
  passkeys: PasskeySummary[];
  recoveryCodesLeft: number;
}

/** GET /users/me/mfa: the user's factors, never a secret. */
export async function getMfaSummary({ db }: { db: Database }, { userId }: { userId: number }): Promise<MfaSummary> {
  const [[factor], [left], keys] = await Promise.all([
    db
      .select({ confirmedAt: totpFactors.confirmedAt })
      .from(totpFactors)
      .where(and(eq(totpFactors.userId, userId), isNotNull(totpFactors.confirmedAt))),
    db
      .select({ n: count() })
      .from(recoveryCodes)
      .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt))),
    listPasskeys({ db }, { userId }),
  ]);
  return {
    totp: { enabled: factor !== undefined, createdAt: factor?.confirmedAt ?? null },
    passkeys: keys.map(({ id, name, createdAt, lastUsedAt }) => ({ id, name, createdAt, lastUsedAt })),
    recoveryCodesLeft: left?.n ?? 0,
  };
}

// Derived once per SECRET_KEY and purpose: HKDF is cheap, but WebCrypto shares Bun's pool with bcrypt.
const derivedKeys = new Map<string, Promise<CryptoKey>>();
const memo = (key: string, derive: () => Promise<CryptoKey>) => {
  const known = derivedKeys.get(key);
  if (known) return known;
  const derived = derive();
  derivedKeys.set(key, derived);
  return derived;
};

const totpKey = (config: Pick<Config, 'SECRET_KEY'>) =>
  memo(`${TOTP_SECRET_INFO}\0${config.SECRET_KEY}`, () => deriveKeyEncryptionKey(config.SECRET_KEY, TOTP_SECRET_INFO));

/** The AAD of a sealed secret: the row it belongs to, so a secret copied onto another user's row opens nothing. */
export const totpBinding = (userId: number) => `totp:${userId}`;

async function openTotpSecret(config: Pick<Config, 'SECRET_KEY'>, factor: { userId: number; secret: string }) {
  return unseal(await totpKey(config), totpBinding(factor.userId), factor.secret);
}

/**
 * Recovery codes are stored as HMAC-SHA-256 under a key derived from SECRET_KEY. A fast keyed hash is enough
 * where bcrypt is needed for passwords: a code is 50 random bits, not a human choice, so there is no
 * dictionary to try, and without SECRET_KEY a copy of the table cannot even be checked offline; online
 * guesses are limited like passwords. It also lets the lookup be an index probe on (user, hash).
 */
const recoveryKey = (config: Pick<Config, 'SECRET_KEY'>) =>
  memo(`${RECOVERY_CODE_INFO}\0${config.SECRET_KEY}`, () => deriveHmacKey(config.SECRET_KEY, RECOVERY_CODE_INFO));

/** Lower case, without the hyphen and spaces people copy with it. */
const normalizeRecoveryCode = (code: string) => code.toLowerCase().replace(/[\s-]/g, '');

async function hashRecoveryCode(config: Pick<Config, 'SECRET_KEY'>, userId: number, code: string) {
  const message = new TextEncoder().encode(`${userId}:${normalizeRecoveryCode(code)}`);
  return base64url(new Uint8Array(await crypto.subtle.sign('HMAC', await recoveryKey(config), message)));
}

function randomRecoveryCode(): string {
  // 256 is a multiple of 32: each byte picks a symbol without bias.
  const symbols = [...crypto.getRandomValues(new Uint8Array(RECOVERY_CODE_LENGTH))].map(
    (byte) => RECOVERY_ALPHABET[byte % RECOVERY_ALPHABET.length],
  );
  return `${symbols.slice(0, 5).join('')}-${symbols.slice(5).join('')}`;
}

/** Replaces the user's recovery codes by a new set (the old ones stop working) and returns it, shown once. */
async function replaceRecoveryCodes(
  { db, config }: { db: Database; config: Pick<Config, 'SECRET_KEY'> },
  { userId }: { userId: number },
): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, randomRecoveryCode);
  await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  const hashes = await Promise.all(codes.map((code) => hashRecoveryCode(config, userId, code)));
  await db.insert(recoveryCodes).values(hashes.map((codeHash) => ({ userId, codeHash })));
  return codes;
}

type CodeUse = { method: 'totp' } | { method: 'recovery'; left: number };

interface SpendInput {
  userId: number;
  code: string;
  /** Confirming an enrolment: the pending factor's code, never a recovery code. */
  pending?: boolean;
  /** The form field said which kind (`otp` or `recovery_code`). */
  only?: CodeUse['method'];
}

/**
 * Spends `code` for the user in the caller's transaction: a TOTP code (of the confirmed factor, or with
 * `pending` of the enrolment being confirmed) whose step is later than the last one accepted, or an unused
 * recovery code. Null when it is neither.
 */
async function spendCode(
  { db, clock, config }: { db: Database; clock: ServiceContext['clock']; config: Pick<Config, 'SECRET_KEY'> },
  { userId, code, pending = false, only }: SpendInput,
): Promise<CodeUse | null> {
  const now = clock.now();
  // Apps show `123 456`; people copy the space.
  const digits = code.replace(/\s/g, '');
  if (only !== 'recovery' && TOTP_CODE.test(digits)) {
    const [factor] = await db
      .select()
      .from(totpFactors)
      .where(
        and(
          eq(totpFactors.userId, userId),
          pending ? isNull(totpFactors.confirmedAt) : isNotNull(totpFactors.confirmedAt),
        ),
      )
      .for('update');
    const secret = factor ? await openTotpSecret(config, factor) : null;
    const step = secret ? matchTotp(secret, digits, now) : null;
    if (step === null) return null;
    // Conditional on a later step than the last accepted: the replay guard, atomic under the row lock.
    const used = await db
      .update(totpFactors)
      .set({ lastUsedStep: step })
      .where(
        and(eq(totpFactors.userId, userId), or(isNull(totpFactors.lastUsedStep), lt(totpFactors.lastUsedStep, step))),
      )
      .returning({ userId: totpFactors.userId });
    return used.length > 0 ? { method: 'totp' } : null;
  }
  if (pending || only === 'totp' || normalizeRecoveryCode(code).length !== RECOVERY_CODE_LENGTH) return null;
  const spent = await db
    .update(recoveryCodes)
    .set({ usedAt: now })
    .where(
      and(
        eq(recoveryCodes.userId, userId),
        eq(recoveryCodes.codeHash, await hashRecoveryCode(config, userId, code)),
        isNull(recoveryCodes.usedAt),
      ),
    )
    .returning({ id: recoveryCodes.id });
  if (spent.length === 0) return null;
  const [left] = await db
    .select({ n: count() })
    .from(recoveryCodes)
    .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)));
  return { method: 'recovery', left: left?.n ?? 0 };
}

/** Audits and mails the use of a recovery code (the owner learns at once if it was not them). */
async function noteRecoveryCodeUse(
  { db, clock }: Pick<ServiceContext, 'clock'> & { db: Database },
  { user, left, meta }: { user: Pick<User, 'id' | 'email'>; left: number; meta: RequestMeta },
) {
  await recordAudit({ db }, { event: 'recovery_code_used', meta, userId: user.id, details: { left } });
  await enqueueMail({ db, clock }, { template: 'recovery-code-used', to: user.email, params: { left } });
}

/**
 * Checks a code of the caller's second factor for a bearer action, as an attempt on the account (a wrong
 * code is a failed attempt: audited `mfa_failed`, 400 `wrong-code`), and runs `work` in the transaction
 * that spent it. A right code gives the attempt's points back without marking the address known: only a
 * finished login does that.
 */
async function withCode<T>(
  ctx: Ctx,
  input: { user: User; code: string; meta: RequestMeta; action: string; pending?: boolean },
  work: (scope: AccessScope, use: CodeUse) => Promise<T>,
): Promise<T> {
  const { user, code, meta, action, pending } = input;
  const attempt = await beginPasswordAttempt(ctx, { account: user.email, address: clientKey(meta.ip) });
  let outcome: { done: T } | { wrong: true };
  try {
    outcome = await inAccessTransaction(ctx, async (scope) => {
      const use = await spendCode({ ...ctx, db: scope.db }, { userId: user.id, code, pending });
      throwIfAbandoned(meta);
      if (!use) {
        await recordAudit(scope, { event: 'mfa_failed', meta, userId: user.id, actorId: user.id, details: { action } });
        return { wrong: true } as const;
      }
      if (use.method === 'recovery')
        await noteRecoveryCodeUse({ ...ctx, db: scope.db }, { user, left: use.left, meta });
      return { done: await work(scope, use) };
    });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  if ('wrong' in outcome) {
    await attempt.settle('failed');
    throw new AppError('wrong-code');
  }
  await attempt.settle('unchecked');
  ctx.mailQueued?.();
  return outcome.done;
}

export interface TotpEnrolment {
  /** Base32, for typing into an authenticator app by hand. */
  secret: string;
  otpauthUri: string;
  qrSvg: string;
}

/**
 * POST /users/me/mfa/totp: a new secret, pending until a first code confirms it (an earlier pending one is
 * replaced). Needs the current password, checked like a login. 409 when TOTP is enabled already.
 */
export async function beginTotpEnrolment(
  ctx: Ctx,
  { user, currentPassword, meta }: { user: User; currentPassword: string; meta: RequestMeta },
): Promise<TotpEnrolment> {
  if (await hasSecondFactor(ctx, { userId: user.id })) throw new AppError('mfa-already-enabled');
  await withCurrentPassword(ctx, { user, password: currentPassword, meta, action: 'totp_enrol' }, async () => {});
  const secret = randomTotpSecret();
  const sealed = await seal(await totpKey(ctx.config), totpBinding(user.id), secret);
  const now = ctx.clock.now();
  // Only over a pending row: of an enrolment and a confirmation racing, the confirmed factor stays.
  const stored = await ctx.db
    .insert(totpFactors)
    .values({ userId: user.id, secret: sealed, createdAt: now })
    .onConflictDoUpdate({
      target: totpFactors.userId,
      set: { secret: sealed, createdAt: now, confirmedAt: null, lastUsedStep: null },
      setWhere: isNull(totpFactors.confirmedAt),
    })
    .returning({ userId: totpFactors.userId });
  if (stored.length === 0) throw new AppError('mfa-already-enabled');
  const otpauthUri = totpUri(secret, { issuer: ctx.config.APP_NAME, account: user.email });
  const qrSvg = await QRCode.toString(otpauthUri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  return { secret: toBase32(secret), otpauthUri, qrSvg };
}

/** POST /users/me/mfa/totp/confirm: a first code enables the pending factor; returns the recovery codes, once. */
export async function confirmTotpEnrolment(
  ctx: Ctx,
  { user, code, meta }: { user: User; code: string; meta: RequestMeta },
): Promise<string[]> {
  const [pending] = await ctx.db
    .select({ userId: totpFactors.userId })
    .from(totpFactors)
    .where(and(eq(totpFactors.userId, user.id), isNull(totpFactors.confirmedAt)));
  if (!pending) throw new AppError('mfa-not-enabled', { detail: 'No TOTP enrolment is pending: start one first' });
  return withCode(ctx, { user, code, meta, action: 'totp_confirm', pending: true }, async ({ db }) => {
    await db.update(totpFactors).set({ confirmedAt: ctx.clock.now() }).where(eq(totpFactors.userId, user.id));
    await recordAudit({ db }, { event: 'totp_enabled', meta, userId: user.id, actorId: user.id });
    return replaceRecoveryCodes({ db, config: ctx.config }, { userId: user.id });
  });
}

const assertTotpEnabled = async (ctx: Ctx, userId: number) => {
  if (!(await hasSecondFactor(ctx, { userId }))) throw new AppError('mfa-not-enabled');
};

/**
 * DELETE /users/me/mfa/totp: the current password and a code (TOTP, or a recovery code for a lost phone);
 * the factor and the recovery codes go.
 */
export async function disableTotp(
  ctx: Ctx,
  { user, currentPassword, code, meta }: { user: User; currentPassword: string; code: string; meta: RequestMeta },
): Promise<void> {
  await assertTotpEnabled(ctx, user.id);
  await withCurrentPassword(ctx, { user, password: currentPassword, meta, action: 'totp_disable' }, async () => {});
  await withCode(ctx, { user, code, meta, action: 'totp_disable' }, async ({ db }) => {
    await db.delete(totpFactors).where(eq(totpFactors.userId, user.id));
    await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, user.id));
    await db.delete(mfaChallenges).where(eq(mfaChallenges.userId, user.id));
    await recordAudit({ db }, { event: 'totp_disabled', meta, userId: user.id, actorId: user.id });
    // The owner hears of it at once: a thief with the password and a code would turn it off first.
    await enqueueMail(
      { db, clock: ctx.clock },
      { template: 'second-factor-removed', to: user.email, params: { byAdmin: false } },
    );
  });
}

/** POST /users/me/mfa/recovery-codes: a new set of ten; the old set stops working. */
export async function regenerateRecoveryCodes(
  ctx: Ctx,
  { user, currentPassword, code, meta }: { user: User; currentPassword: string; code: string; meta: RequestMeta },
): Promise<string[]> {
  await assertTotpEnabled(ctx, user.id);
  await withCurrentPassword(ctx, { user, password: currentPassword, meta, action: 'recovery_codes' }, async () => {});
  return withCode(ctx, { user, code, meta, action: 'recovery_codes' }, async ({ db }) => {
    await recordAudit({ db }, { event: 'recovery_codes_regenerated', meta, userId: user.id, actorId: user.id });
    return replaceRecoveryCodes({ db, config: ctx.config }, { userId: user.id });
  });
}

/**
 * DELETE /users/{id}/mfa (admin), for a user who lost every factor: every factor and recovery code goes,
 * and every session ends (a session that logged in with the lost factor must not outlive it).
 * `actorId` is the admin, or null for the operator's CLI.
 */
export async function resetSecondFactor(
  ctx: Pick<ServiceContext, 'db' | 'access' | 'clock' | 'mailQueued'>,
  { userId, actorId, meta }: { userId: number; actorId: number | null; meta: RequestMeta },
): Promise<{ sessionsRevoked: number }> {
  const reset = await inAccessTransaction(ctx, async (scope) => {
    const { db } = scope;
    const [user] = await db
      .select({ id: users.id, email: users.email })
      .from(users)
      .where(eq(users.id, userId))
      .for('update');
    if (!user) throw new AppError('not-found', { detail: 'No such user' });
    await db.delete(totpFactors).where(eq(totpFactors.userId, userId));
    await db.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
    await db.delete(mfaChallenges).where(eq(mfaChallenges.userId, userId));
    await db.delete(passkeys).where(eq(passkeys.userId, userId));
    await db.delete(webauthnChallenges).where(eq(webauthnChallenges.userId, userId));
    const sessionsRevoked = await revokeAllSessions({ ...scope, clock: ctx.clock }, { userId });
    await recordAudit(scope, {
      event: 'mfa_reset',
      meta,
      userId,
      actorId,
      details: { sessions_revoked: sessionsRevoked },
    });
    await enqueueMail(
      { db, clock: ctx.clock },
      { template: 'second-factor-removed', to: user.email, params: { byAdmin: true } },
    );
    return { sessionsRevoked };
  });
  ctx.mailQueued?.();
  return reset;
}

/**
 * For the CLI (`reset-mfa --email`): the same for the user with this email. The way back for the only admin
 * under MFA_REQUIRED_FOR_ADMINS who lost every factor, when no other admin can call DELETE /users/{id}/mfa.
 */
export async function resetSecondFactorByEmail(
  ctx: Pick<ServiceContext, 'db' | 'access' | 'clock' | 'mailQueued'>,
  { email, meta }: { email: string; meta: RequestMeta },
): Promise<{ email: string; sessionsRevoked: number }> {
  const user = await findUserByEmail(ctx, { email });
  if (!user) throw new AppError('not-found', { detail: 'No such user' });
  return { email: user.email, ...(await resetSecondFactor(ctx, { userId: user.id, actorId: null, meta })) };
}

/** An mfa_token that can no longer be used: spent, or past its five minutes. */
const endedChallenge = (now: Date) => or(isNotNull(mfaChallenges.spentAt), lte(mfaChallenges.expiresAt, now));

/**
 * After a right password of a user with a second factor: a single-use `mfa_token` (256 bits; only its
 * SHA-256 is stored) for their user, their client address and client, for 5 minutes. The user's ended
 * challenges are deleted on the way, so the table stays small.
 */
export async function issueMfaChallenge(
  { db, clock }: Pick<ServiceContext, 'db' | 'clock'>,
  { userId, clientId, meta }: { userId: number; clientId: string | null; meta: RequestMeta },
): Promise<string> {
  const token = randomToken();
  const now = clock.now();
  await db.transaction(async (tx) => {
    await tx.delete(mfaChallenges).where(and(eq(mfaChallenges.userId, userId), endedChallenge(now)));
    await tx.insert(mfaChallenges).values({
      userId,
      tokenHash: await sha256(token),
      ip: meta.ip,
      clientId,
      createdAt: now,
      expiresAt: new Date(now.getTime() + MFA_TOKEN_TTL_MS),
    });
    await recordAudit({ db: tx }, { event: 'mfa_required', meta, userId });
  });
  return token;
}

/** Deletes every spent or expired mfa_token (`cli prune`); returns how many. A new challenge drops its user's. */
export async function deleteEndedMfaChallenges({ db, clock }: Pick<ServiceContext, 'db' | 'clock'>): Promise<number> {
  const deleted = await db.delete(mfaChallenges).where(endedChallenge(clock.now())).returning({ id: mfaChallenges.id });
  return deleted.length;
}

const invalidMfaToken = () => new AppError('invalid-mfa-token');

/**
 * grant_type=mfa_otp: finishes the login an `mfa_token` began, with a TOTP code or a recovery code.
 * - The token must be live (unspent, unexpired, fewer than 5 wrong codes), of an enabled user, and used
 *   from the address it was issued to; anything else is 400 invalid_grant.
 * - Each code is an attempt on the account (rate-limit/lockout.ts), reserved before the check: a wrong one
 *   is a failed login (401), and locked accounts get 429 before any code is checked.
 * - The token's failure count goes up before the code is checked, in the statement that locks its row, so
 *   parallel guesses with one token get at most 5 checks between them, never more.
 */
export async function completeMfaChallenge(
  ctx: Ctx,
  { mfaToken, code, method, meta }: { mfaToken: string; code: string; method: CodeUse['method']; meta: RequestMeta },
): Promise<{ user: User; session: Session; refreshToken: string }> {
  const [found] = await ctx.db
    .select({ challenge: mfaChallenges, user: users })
    .from(mfaChallenges)
    .innerJoin(users, eq(users.id, mfaChallenges.userId))
    .where(eq(mfaChallenges.tokenHash, await sha256(mfaToken)))
    .limit(1);
  const now = ctx.clock.now();
  if (!found || found.user.disabled || !isLiveChallenge(found.challenge, now)) throw invalidMfaToken();
  // Bound to the address the password came from: an mfa_token that leaked (a log, a proxy) is no use elsewhere.
  if (found.challenge.ip !== meta.ip) throw invalidMfaToken();
  const { challenge, user } = found;

  const attempt = await beginPasswordAttempt(ctx, { account: user.email, address: clientKey(meta.ip) });
  type Outcome = { dead: true } | { wrong: true } | { session: Session; refreshToken: string };
  let outcome: Outcome;
  try {
    outcome = await inAccessTransaction(ctx, async (scope): Promise<Outcome> => {
      const { db } = scope;
      const [claimed] = await db
        .update(mfaChallenges)
        .set({ failures: sql`${mfaChallenges.failures} + 1` })
        .where(
          and(
            eq(mfaChallenges.id, challenge.id),
            isNull(mfaChallenges.spentAt),
            sql`${mfaChallenges.expiresAt} > ${now.toISOString()}::timestamptz`,
            lt(mfaChallenges.failures, MFA_TOKEN_MAX_FAILURES),
          ),
        )
        .returning({ failures: mfaChallenges.failures });
      if (!claimed) return { dead: true };
      const use = await spendCode({ ...ctx, db }, { userId: user.id, code, only: method });
      throwIfAbandoned(meta);
      if (!use) {
        await recordAudit(scope, {
          event: 'mfa_failed',
          meta,
          userId: user.id,
          details: { action: 'login', failures: claimed.failures },
        });
        return { wrong: true };
      }
      // The right code: the count taken for it is given back, and the token is spent.
      await db
        .update(mfaChallenges)
        .set({ spentAt: now, failures: sql`${mfaChallenges.failures} - 1` })
        .where(eq(mfaChallenges.id, challenge.id));
      if (use.method === 'recovery') await noteRecoveryCodeUse({ ...ctx, db }, { user, left: use.left, meta });
      const started = await recordSuccessfulLogin(
        { ...ctx, ...scope },
        { userId: user.id, meta, amr: OTP_AMR, clientId: challenge.clientId },
      );
      return started;
    });
  } catch (error) {
    await attempt.settle('unchecked');
    throw error;
  }
  if ('dead' in outcome) {
    await attempt.settle('unchecked');
    throw invalidMfaToken();
  }
  if ('wrong' in outcome) {
    await attempt.settle('failed');
    throw new AppError('invalid-otp');
  }
  await attempt.settle('succeeded');
  ctx.mailQueued?.();
  return { user, ...outcome };
}

const isLiveChallenge = (challenge: { spentAt: Date | null; expiresAt: Date; failures: number }, now: Date) =>
  challenge.spentAt === null && challenge.expiresAt > now && challenge.failures < MFA_TOKEN_MAX_FAILURES;
