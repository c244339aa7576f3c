/**
 * Passkeys (WebAuthn Level 3, through @simplewebauthn/server): registering one while logged in, the assertion
 * a passkey login checks, listing and removing them. The login's tokens come from services/auth.ts like every
 * other grant's. Challenges live in the database (webauthn_challenges), so a ceremony begun on one instance
 * finishes on any other; each is spent by the one DELETE that finds it.
 */
import '../lib/reflect-metadata'; // first: before @simplewebauthn/server (lib/reflect-metadata.ts says why)
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { decodeClientDataJSON, isoBase64URL } from '@simplewebauthn/server/helpers';
import { and, asc, eq, gt, lt, lte } from 'drizzle-orm';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { isUniqueViolation } from '../db/errors';
import {
  type Passkey,
  passkeys,
  type User,
  users,
  type WebauthnCeremony,
  type WebauthnChallenge,
  webauthnChallenges,
} from '../db/schema';
import type { Clock } from '../lib/clock';
import { sha256 } from '../lib/crypto';
import { AppError } from '../lib/problems';
import type { RequestMeta } from '../lib/request-meta';
import { recordAudit } from './audit';

export type { Passkey };

/** How long a ceremony may take, from its options to its verification: the browser's timeout too. */
const CEREMONY_TTL_MS = 5 * 60 * 1000; // 5 minutes
export const DEFAULT_PASSKEY_NAME = 'Passkey';
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/; // 32 random bytes in base64url, as @simplewebauthn/server makes them

interface PasskeyDeps {
  db: Database;
  clock: Clock;
  config: Pick<Config, 'WEBAUTHN_RP_ID' | 'WEBAUTHN_ORIGINS' | 'WEBAUTHN_RP_NAME' | 'SECRET_KEY'>;
}

/**
 * The WebAuthn user handle of a user: their id, as text. It is no secret (the credential id finds the passkey)
 * and it is the same for all their passkeys, so an authenticator keeps one discoverable credential per account.
 */
const userHandle = (userId: number) => String(userId);

/** Stores a new challenge, and drops the expired ones so that unfinished ceremonies do not pile up. */
async function storeChallenge(
  { db, clock }: Pick<PasskeyDeps, 'db' | 'clock'>,
  row: Omit<WebauthnChallenge, 'expiresAt'>,
): Promise<void> {
  const now = clock.now();
  await db.delete(webauthnChallenges).where(lte(webauthnChallenges.expiresAt, now));
  await db.insert(webauthnChallenges).values({ ...row, expiresAt: new Date(now.getTime() + CEREMONY_TTL_MS) });
}

/**
 * Spends the challenge a response signed, if it is a live one of this ceremony (and, for a registration,
 * of this user): deleted as it is found, so a replayed response, here or on another instance, finds nothing.
 */
async function spendChallenge(
  { db, clock }: Pick<PasskeyDeps, 'db' | 'clock'>,
  { clientDataJSON, ceremony, userId }: { clientDataJSON: string; ceremony: WebauthnCeremony; userId?: number },
): Promise<WebauthnChallenge | undefined> {
  let challenge: unknown;
  try {
    challenge = decodeClientDataJSON(clientDataJSON).challenge;
  } catch {
    return undefined;
  }
  // Ours are 32 bytes in base64url; anything else is no challenge of ours (and a NUL would not reach the query).
  if (typeof challenge !== 'string' || !CHALLENGE.test(challenge)) return undefined;
  const conditions = [
    eq(webauthnChallenges.challenge, challenge),
    eq(webauthnChallenges.ceremony, ceremony),
    gt(webauthnChallenges.expiresAt, clock.now()),
  ];
  if (userId !== undefined) conditions.push(eq(webauthnChallenges.userId, userId));
  const [row] = await db
    .delete(webauthnChallenges)
    .where(and(...conditions))
    .returning();
  return row;
}

/** The caller's passkeys, oldest first. */
export async function listPasskeys({ db }: { db: Database }, { userId }: { userId: number }): Promise<Passkey[]> {
  return db
    .select()
    .from(passkeys)
    .where(eq(passkeys.userId, userId))
    .orderBy(asc(passkeys.createdAt), asc(passkeys.id));
}

/**
 * The options of a registration (navigator.credentials.create): the user's passkeys are excluded, so one
 * authenticator is not registered twice; user verification is required, and a discoverable credential
 * preferred, so the passkey can log in without an email (one that is not discoverable needs the email form).
 */
export async function passkeyRegistrationOptions(
  ctx: PasskeyDeps,
  { user, name }: { user: User; name?: string },
): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const { config } = ctx;
  const existing = await listPasskeys(ctx, { userId: user.id });
  const options = await generateRegistrationOptions({
    rpName: config.WEBAUTHN_RP_NAME,
    rpID: config.WEBAUTHN_RP_ID,
    userName: user.email,
    userDisplayName: user.email,
    userID: new TextEncoder().encode(userHandle(user.id)),
    timeout: CEREMONY_TTL_MS,
    attestationType: 'none',
    excludeCredentials: existing.map((passkey) => ({ id: passkey.credentialId, transports: passkey.transports })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
  });
  await storeChallenge(ctx, {
    challenge: options.challenge,
    ceremony: 'registration',
    userId: user.id,
    passkeyName: name ?? DEFAULT_PASSKEY_NAME,
  });
  return options;
}

/**
 * Verifies a registration response against the caller's own live challenge and stores the passkey. Any
 * failure is the one 400: a challenge of another user, spent or expired, a wrong origin or RP id, no user
 * verification, a credential registered already.
 */
export async function registerPasskey(
  ctx: PasskeyDeps,
  { user, response, meta }: { user: User; response: RegistrationResponseJSON; meta: RequestMeta },
): Promise<Passkey> {
  const { db, config } = ctx;
  const challenge = await spendChallenge(ctx, {
    clientDataJSON: response.response.clientDataJSON,
    ceremony: 'registration',
    userId: user.id,
  });
  if (!challenge) throw new AppError('passkey-rejected', { detail: 'No registration of yours is in progress' });
  let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verified = await verifyRegistrationResponse({
      response,
      expectedChallenge: challenge.challenge,
      expectedOrigin: config.WEBAUTHN_ORIGINS,
      expectedRPID: config.WEBAUTHN_RP_ID,
      requireUserVerification: true,
    });
  } catch {
    throw new AppError('passkey-rejected');
  }
  if (!verified.verified) throw new AppError('passkey-rejected');
  const { credential, credentialDeviceType, credentialBackedUp } = verified.registrationInfo;
  try {
    return await db.transaction(async (tx) => {
      const [passkey] = await tx
        .insert(passkeys)
        .values({
          userId: user.id,
          credentialId: credential.id,
          publicKey: isoBase64URL.fromBuffer(credential.publicKey),
          counter: credential.counter,
          transports: credential.transports ?? [],
          deviceType: credentialDeviceType,
          backedUp: credentialBackedUp,
          name: challenge.passkeyName ?? DEFAULT_PASSKEY_NAME,
          createdAt: ctx.clock.now(),
        })
        .returning();
      if (!passkey) throw new Error('INSERT … RETURNING returned no row');
      await recordAudit(
        { db: tx },
        { event: 'passkey_added', meta, userId: user.id, actorId: user.id, details: { passkey_id: passkey.id } },
      );
      return passkey;
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new AppError('passkey-rejected', { detail: 'This passkey is registered already' });
    }
    throw error;
  }
}

/**
 * The options of a passkey login (navigator.credentials.get). Without an email: any discoverable passkey of
 * this RP. With one: that account's passkeys; an email with none (unknown, or without passkeys) gets one
 * made-up credential id, derived from SECRET_KEY and the email so it is the same on every call, so the answer
 * does not tell which emails have passkeys.
 */
export async function passkeyLoginOptions(
  ctx: PasskeyDeps,
  { email }: { email?: string },
): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const { db, config } = ctx;
  let userId: number | null = null;
  let allowCredentials: { id: string; transports?: string[] }[] | undefined;
  if (email !== undefined) {
    const owned = await db
      .select({ userId: users.id, credentialId: passkeys.credentialId, transports: passkeys.transports })
      .from(users)
      .innerJoin(passkeys, eq(passkeys.userId, users.id))
      .where(eq(users.email, email))
      .orderBy(asc(passkeys.createdAt));
    userId = owned[0]?.userId ?? null;
    allowCredentials =
      owned.length > 0
        ? owned.map((row) => ({ id: row.credentialId, transports: row.transports }))
        : [{ id: await sha256(`${config.SECRET_KEY}|passkey-decoy|${email}`) }];
  }
  const options = await generateAuthenticationOptions({
    rpID: config.WEBAUTHN_RP_ID,
    allowCredentials,
    timeout: CEREMONY_TTL_MS,
    userVerification: 'required',
  });
  await storeChallenge(ctx, { challenge: options.challenge, ceremony: 'authentication', userId, passkeyName: null });
  return options;
}

export type PasskeyAssertion =
  | { ok: true; user: User; passkey: Passkey }
  /** `user`: whose passkey it was, when the credential is one of ours (the failure is filed under them). */
  | { ok: false; user?: User; reason: string };

/**
 * Checks a login response: a live authentication challenge (spent here), a known passkey of an enabled user
 * (of the email's user, when the options named one), the user handle, origin, RP id, user presence and
 * verification and the signature; then the sign counter, which must increase when either it or the stored one
 * is non-zero (WebAuthn §6.1.1: otherwise two copies of the key are in use). A refused counter is audited as a
 * possible clone. What failed is for the audit log only: the caller answers every failure alike.
 */
export async function checkPasskeyAssertion(
  ctx: PasskeyDeps,
  { response, meta }: { response: AuthenticationResponseJSON; meta: RequestMeta },
): Promise<PasskeyAssertion> {
  const { db, clock, config } = ctx;
  const challenge = await spendChallenge(ctx, {
    clientDataJSON: response.response.clientDataJSON,
    ceremony: 'authentication',
  });
  if (!challenge) return { ok: false, reason: 'challenge' };
  const [found] = await db
    .select({ passkey: passkeys, user: users })
    .from(passkeys)
    .innerJoin(users, eq(users.id, passkeys.userId))
    .where(eq(passkeys.credentialId, response.id));
  if (!found) return { ok: false, reason: 'unknown_credential' };
  const { passkey, user } = found;
  if (user.disabled) return { ok: false, user, reason: 'disabled' };
  if (challenge.userId !== null && challenge.userId !== user.id) return { ok: false, user, reason: 'other_user' };
  const handle = response.response.userHandle;
  if (handle !== undefined && handle !== isoBase64URL.fromUTF8String(userHandle(user.id))) {
    return { ok: false, user, reason: 'user_handle' };
  }
  let newCounter: number;
  try {
    const verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge.challenge,
      expectedOrigin: config.WEBAUTHN_ORIGINS,
      expectedRPID: config.WEBAUTHN_RP_ID,
      // The stored counter is checked below, once the signature is known to be good: the library would refuse
      // an unsigned low counter before the signature, and a forged response must not be reported as a clone.
      credential: { id: passkey.credentialId, publicKey: isoBase64URL.toBuffer(passkey.publicKey), counter: 0 },
      requireUserVerification: true,
    });
    if (!verified.verified) return { ok: false, user, reason: 'signature' };
    newCounter = verified.authenticationInfo.newCounter;
  } catch {
    return { ok: false, user, reason: 'invalid_response' };
  }
  // One conditional UPDATE: of two logins with the same counter on two instances, only one moves it. A counter
  // of 0 means the authenticator keeps none (synced passkeys), which is fine only while the stored one is 0 too.
  const counterMoves = newCounter === 0 ? eq(passkeys.counter, 0) : lt(passkeys.counter, newCounter);
  const [updated] = await db
    .update(passkeys)
    .set({ counter: newCounter, lastUsedAt: clock.now() })
    .where(and(eq(passkeys.id, passkey.id), counterMoves))
    .returning();
  if (!updated) {
    await recordAudit(ctx, {
      event: 'passkey_counter_rollback',
      meta,
      userId: user.id,
      details: { passkey_id: passkey.id, stored_counter: passkey.counter, presented_counter: newCounter },
    });
    return { ok: false, user, reason: 'counter' };
  }
  return { ok: true, user, passkey: updated };
}

/** Removes one of the caller's passkeys; someone else's answers exactly like a missing one (404). */
export async function removePasskey(
  { db }: { db: Database },
  { userId, passkeyId, meta }: { userId: number; passkeyId: string; meta: RequestMeta },
): Promise<void> {
  const removed = await db.transaction(async (tx) => {
    const [row] = await tx
      .delete(passkeys)
      .where(and(eq(passkeys.id, passkeyId), eq(passkeys.userId, userId)))
      .returning({ id: passkeys.id });
    if (!row) return false;
    await recordAudit(
      { db: tx },
      { event: 'passkey_removed', meta, userId, actorId: userId, details: { passkey_id: passkeyId } },
    );
    return true;
  });
  if (!removed) throw new AppError('not-found', { detail: 'No such passkey' });
}
