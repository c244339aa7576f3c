/**
 * Account recovery and address ownership (README "Email"): forgotten passwords, verifying an address,
 * moving to a new one. Each change and the mail it causes commit in one transaction (the outbox); the
 * links carry single-use tokens (link-tokens.ts), minted when the sender prepares the mail.
 */

import { and, eq, isNull, sql } from 'drizzle-orm';
import { inAccessTransaction } from '../access/transaction';
import type { Database } from '../db/database';
import { auditEvents, users } from '../db/schema';
import { normalizeEmail } from '../lib/email';
import { clientKey } from '../lib/ip';
import { DescribedError } from '../lib/logger';
import { assertPasswordPolicy } from '../lib/password-policy';
import { AppError } from '../lib/problems';
import type { RequestMeta } from '../lib/request-meta';
import { consumeLimit } from '../rate-limit/limits';
import { liftLockout } from '../rate-limit/lockout';
import { recordAudit } from './audit';
import type { ServiceContext } from './context';
import {
  EMAIL_LINK_EXPIRE_MINUTES,
  findLiveLinkToken,
  invalidToken,
  issueLinkToken,
  type LinkTokenPurpose,
  spendLinkToken,
  spendUserLinkTokens,
} from './link-tokens';
import { type ClaimedMail, enqueueMail, type LinkParams, recordMailParams } from './outbox';
import { withCurrentPassword } from './passwords';
import { changeEmail, markEmailVerified, replacePassword, type User } from './users';

type Ctx = Pick<
  ServiceContext,
  | 'db'
  | 'access'
  | 'clock'
  | 'config'
  | 'hasher'
  | 'rateLimits'
  | 'logger'
  | 'mailQueued'
  | 'attempts'
  | 'hashCosts'
  | 'metrics'
>;

/**
 * POST /password/forgot. The same answer and the same work for an unknown, a disabled and a known address:
 * the request writes the same two rows whatever the address (the audit event, filed under the account when
 * there is one, and the queued mail), and the sender decides later, off the request, whether an account
 * qualifies (prepareLinkMail). No branch, no extra statement and no extra row depends on the account, so
 * neither the answer nor its timing tells which addresses have accounts. Counted per address (3 an hour,
 * from any IP) before anything else, so nobody can make us mail-bomb an inbox.
 */
export async function requestPasswordReset(ctx: Ctx, { email, meta }: { email: string; meta: RequestMeta }) {
  const address = normalizeEmail(email);
  await consumeLimit(ctx, 'recoveryPerEmail', address);
  await ctx.db.transaction(async (tx) => {
    await tx.insert(auditEvents).values({
      event: 'password_reset_requested',
      userId: sql`(select ${users.id} from ${users} where lower(${users.email}) = ${address})`,
      ip: meta.ip,
      userAgent: meta.userAgent,
      details: { email: address.slice(0, 254) },
    });
    await enqueueMail({ db: tx, clock: ctx.clock }, { template: 'password-reset', to: address, params: {} });
  });
  ctx.mailQueued?.();
}

const LINK_PURPOSES: Partial<Record<string, LinkTokenPurpose>> = {
  'verify-email': 'email_verify',
  'password-reset': 'password_reset',
  'email-change-confirm': 'email_change',
};

/** The account a link mail is for, if it still qualifies now: enabled, and for verification, unverified. */
async function linkRecipient(tx: Database, mail: ClaimedMail, purpose: LinkTokenPurpose) {
  const enabled = eq(users.disabled, false);
  const userId = (mail.params as { userId?: unknown }).userId;
  if (purpose === 'email_change' && !(Number.isSafeInteger(userId) && (userId as number) > 0)) return undefined;
  const where =
    purpose === 'email_change'
      ? and(eq(users.id, userId as number), enabled)
      : and(
          eq(sql`lower(${users.email})`, mail.recipient),
          enabled,
          purpose === 'email_verify' ? isNull(users.emailVerifiedAt) : undefined,
        );
  const [user] = await tx.select({ id: users.id, email: users.email }).from(users).where(where).limit(1);
  return user;
}

/**
 * Called by the sender before it renders a link mail: mints the link's token, for the account the mail is
 * for, and stores it with the message, in one transaction (a retry then sends the same link; one after the
 * link expired gets a fresh one). Returns the message to render, or null when no account qualifies (an
 * unknown or disabled address, one verified meanwhile): the sender records it `skipped` and sends nothing.
 * Other mail passes through unchanged.
 */
export async function prepareLinkMail(
  ctx: Pick<ServiceContext, 'db' | 'clock' | 'config'>,
  mail: ClaimedMail,
): Promise<ClaimedMail | null> {
  const purpose = LINK_PURPOSES[mail.template];
  if (!purpose) return mail;
  const now = ctx.clock.now();
  const prepared = mail.params as Partial<LinkParams>;
  if (prepared.token && prepared.expiresAt && new Date(prepared.expiresAt) > now) return mail;
  const minutes = purpose === 'password_reset' ? ctx.config.PASSWORD_RESET_EXPIRE_MINUTES : EMAIL_LINK_EXPIRE_MINUTES;
  return ctx.db.transaction(async (tx) => {
    const user = await linkRecipient(tx, mail, purpose);
    if (!user) return null;
    const scoped = { db: tx, clock: ctx.clock };
    const email = purpose === 'email_change' ? mail.recipient : user.email;
    const token = await issueLinkToken(scoped, { purpose, userId: user.id, email, minutes });
    const expiresAt = new Date(now.getTime() + minutes * 60_000).toISOString();
    const params = { ...mail.params, token, expiresAt, expiresMinutes: minutes } satisfies LinkParams;
    // A claim taken over meanwhile (our lease ran out) rolls the token back: the newer claim mints its own.
    if (!(await recordMailParams(scoped, { mail, params }))) throw new ClaimLostError();
    return { ...mail, params };
  });
}

/** The sender's lease on a message ran out while it prepared it; another sender has the message now. */
export class ClaimLostError extends DescribedError {
  override name = 'ClaimLostError';
  constructor() {
    super('the claim on this message was taken over by another sender');
  }
}

/**
 * POST /password/reset: spends the token, stores the new password, ends every session of the user (on
 * every instance: sessions.ts) and mails a notice, in one transaction. The other reset links of the user
 * die too, and the account's failed-login lock is lifted: the mailbox owner is back.
 */
export async function resetPassword(
  ctx: Ctx,
  { token, newPassword, meta }: { token: string; newPassword: string; meta: RequestMeta },
): Promise<void> {
  const { link, user } = await findLiveLinkToken(ctx, { token, purposes: ['password_reset'] });
  await assertPasswordPolicy(newPassword, user.email, 'new_password');
  const passwordHash = await ctx.hasher.hash(newPassword);
  await inAccessTransaction(ctx, async (scope) => {
    const scoped = { ...ctx, ...scope };
    // Conditional on the token being unspent: of two resets racing with one link, exactly one wins.
    if (!(await spendLinkToken(scoped, { id: link.id }))) throw invalidToken();
    await spendUserLinkTokens(scoped, { userId: user.id, purpose: 'password_reset' });
    await replacePassword(scoped, { user, passwordHash, via: 'reset', meta });
  });
  ctx.mailQueued?.();
  await liftLockout(ctx, { account: user.email, address: clientKey(meta.ip) });
}

/**
 * POST /email/verify: a verification link marks the address verified; an address-change link moves the
 * account to the new address (409 if another account has it by now; the link then stays unspent and
 * answers the same until it expires).
 */
export async function verifyEmail(ctx: Ctx, { token, meta }: { token: string; meta: RequestMeta }): Promise<void> {
  const { link, user } = await findLiveLinkToken(ctx, { token, purposes: ['email_verify', 'email_change'] });
  await inAccessTransaction(ctx, async (scope) => {
    const scoped = { ...ctx, ...scope };
    if (!(await spendLinkToken(scoped, { id: link.id }))) throw invalidToken();
    const audit = { meta, userId: user.id, actorId: user.id };
    if (link.purpose === 'email_verify') {
      if (!(await markEmailVerified(scoped, { userId: user.id, email: link.email }))) throw invalidToken();
      await recordAudit(scoped, { ...audit, event: 'email_verified', details: { email: link.email } });
      return;
    }
    await changeEmail(scoped, { userId: user.id, email: link.email });
    // Another pending change of this account must not undo this one later.
    await spendUserLinkTokens(scoped, { userId: user.id, purpose: 'email_change' });
    await recordAudit(scoped, { ...audit, event: 'email_changed', details: { from: user.email, to: link.email } });
  });
}

/**
 * POST /email/verify/resend. With a bearer token, for the caller; with `{email}`, for whichever account has
 * that address, with the same answer and the same work (one queued row) for every address: an unverified
 * user locked out by EMAIL_VERIFICATION=required can ask, and nobody else learns anything. The sender mails a
 * link only if an enabled, unverified account has the address (prepareLinkMail). Earlier links stay valid.
 */
export async function resendVerification(
  ctx: Ctx,
  input: { user: User; meta: RequestMeta } | { email: string; meta: RequestMeta },
): Promise<void> {
  const address = 'user' in input ? input.user.email : normalizeEmail(input.email);
  await consumeLimit(ctx, 'recoveryPerEmail', address);
  if (ctx.config.EMAIL_VERIFICATION === 'off') return;
  await enqueueMail(ctx, { template: 'verify-email', to: address, params: {} });
  ctx.mailQueued?.();
}

/**
 * PUT /users/me/email: needs the current password. Mails a confirmation link to the new address and a
 * notice to the old one; nothing changes until the link is used (POST /email/verify). Whether another
 * account has the new address is not checked here: answering 409 now would tell any logged-in user which
 * addresses are registered. The confirmation answers it, to whoever reads the new address's mail.
 */
export async function requestEmailChange(
  ctx: Ctx,
  input: { user: User; newEmail: string; currentPassword: string; meta: RequestMeta },
): Promise<void> {
  const { user } = input;
  const newEmail = normalizeEmail(input.newEmail);
  if (newEmail === user.email) {
    const detail = 'This is already your email address';
    throw new AppError('validation', { detail: `new_email: ${detail}`, errors: [{ pointer: '#/new_email', detail }] });
  }
  const { currentPassword: password, meta } = input;
  await withCurrentPassword(ctx, { user, password, meta, action: 'email_change' }, async () => {
    // Per target address like the other mail-sending requests: a logged-in user cannot mail-bomb an inbox.
    await consumeLimit(ctx, 'recoveryPerEmail', newEmail);
    await ctx.db.transaction(async (tx) => {
      const scoped = { ...ctx, db: tx };
      await enqueueMail(scoped, { template: 'email-change-confirm', to: newEmail, params: { userId: user.id } });
      await enqueueMail(scoped, { template: 'email-change-notice', to: user.email, params: { newEmail } });
    });
  });
  ctx.mailQueued?.();
}
