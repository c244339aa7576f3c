/**
 * Account recovery and address ownership (README "Email"): forgotten passwords, verifying an address,
 * moving to a new one. Each change and the mail it causes commit in one transaction (the outbox); the
 * links carry single-use tokens (link-tokens.ts).
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../db/database';
import { auditEvents, linkTokens, mailOutbox, users } from '../db/schema';
import { normalizeEmail } from '../lib/email';
import { assertPasswordPolicy, isAcceptablePassword } from '../lib/password-policy';
import { AppError } from '../lib/problems';
import type { RequestMeta } from '../lib/request-meta';
import { consumeLimit, resetLimit } from '../rate-limit/limits';
import { recordAudit } from './audit';
import type { ServiceContext } from './context';
import {
  EMAIL_LINK_EXPIRE_MINUTES,
  findLiveLinkToken,
  invalidToken,
  issueLinkToken,
  type LinkTokenPurpose,
  newLinkToken,
  spendLinkToken,
  spendUserLinkTokens,
} from './link-tokens';
import { enqueueMail, type OutgoingMail } from './outbox';
import { changeEmail, markEmailVerified, replacePassword, type User } from './users';

type Ctx = Pick<ServiceContext, 'db' | 'clock' | 'config' | 'hasher' | 'rateLimits' | 'logger' | 'mailQueued'>;

/**
 * Mails a link to `address` if it belongs to an account matching `condition`, with the same statements,
 * in the same order, whether it does or not: the condition is inside each INSERT … SELECT, so PostgreSQL
 * alone decides whether a row is written and no JavaScript branch (nor an extra round trip) depends on it.
 * That is what keeps an unknown, a disabled and a known address indistinguishable by timing: the work
 * differs by whether two index entries are written, not by a query. The audit row is always written, filed
 * under the user when there is one, so an admin sees requests against an account, and unknown addresses too.
 */
async function mailLinkIfEligible(
  tx: Database,
  { now }: { now: Date },
  input: {
    address: string;
    condition: SQL;
    purpose: LinkTokenPurpose;
    minutes: number;
    mail: (token: string) => OutgoingMail;
    audit?: { event: 'password_reset_requested'; meta: RequestMeta };
  },
): Promise<void> {
  const { token, tokenHash } = await newLinkToken();
  const mail = input.mail(token);
  const expiresAt = new Date(now.getTime() + input.minutes * 60_000).toISOString();
  const nowText = now.toISOString();
  const account = sql`from ${users} where lower(${users.email}) = ${input.address} and ${input.condition}`;
  await tx.execute(sql`
    insert into ${linkTokens} (purpose, user_id, email, token_hash, expires_at)
    select ${input.purpose}::link_token_purpose, ${users.id}, ${users.email}, ${tokenHash}, ${expiresAt}::timestamptz ${account}`);
  await tx.execute(sql`
    insert into ${mailOutbox} (template, recipient, params, created_at, next_attempt_at)
    select ${mail.template}, ${users.email}, ${JSON.stringify(mail.params)}::jsonb, ${nowText}::timestamptz,
           ${nowText}::timestamptz ${account}`);
  if (input.audit) {
    const { meta } = input.audit;
    await tx.execute(sql`
      insert into ${auditEvents} (event, user_id, ip, user_agent, details)
      values (${input.audit.event}::audit_event, (select ${users.id} from ${users} where lower(${users.email}) = ${input.address}),
              ${meta.ip}, ${meta.userAgent}, ${JSON.stringify({ email: input.address.slice(0, 254) })}::jsonb)`);
  }
}

/**
 * POST /password/forgot. The same answer, and the same work (see mailLinkIfEligible), for an unknown, a
 * disabled and a known address: nobody learns from it which addresses have accounts. Counted per address
 * (3 an hour, from any IP) before anything else, so nobody can make us mail-bomb an inbox.
 */
export async function requestPasswordReset(ctx: Ctx, { email, meta }: { email: string; meta: RequestMeta }) {
  const address = normalizeEmail(email);
  await consumeLimit(ctx, 'recoveryPerEmail', address);
  const minutes = ctx.config.PASSWORD_RESET_EXPIRE_MINUTES;
  await ctx.db.transaction((tx) =>
    mailLinkIfEligible(
      tx,
      { now: ctx.clock.now() },
      {
        address,
        condition: sql`not ${users.disabled}`,
        purpose: 'password_reset',
        minutes,
        mail: (token) => ({ template: 'password-reset', to: address, params: { token, expiresMinutes: minutes } }),
        audit: { event: 'password_reset_requested', meta },
      },
    ),
  );
  ctx.mailQueued?.();
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
  await ctx.db.transaction(async (tx) => {
    const scoped = { ...ctx, db: tx };
    // Conditional on the token being unspent: of two resets racing with one link, exactly one wins.
    if (!(await spendLinkToken(scoped, { id: link.id }))) throw invalidToken();
    await spendUserLinkTokens(scoped, { userId: user.id, purpose: 'password_reset' });
    const sessionsRevoked = await replacePassword(scoped, { userId: user.id, passwordHash });
    await enqueueMail(scoped, { template: 'password-changed', to: user.email, params: {} });
    await recordAudit(scoped, {
      event: 'password_reset',
      meta,
      userId: user.id,
      actorId: user.id,
      details: { sessions_revoked: sessionsRevoked },
    });
  });
  ctx.mailQueued?.();
  await resetLimit(ctx, 'loginFailures', user.email);
}

/**
 * POST /email/verify: a verification link marks the address verified; an address-change link moves the
 * account to the new address (409 if another account has it by now; the link then stays unspent and
 * answers the same until it expires).
 */
export async function verifyEmail(ctx: Ctx, { token, meta }: { token: string; meta: RequestMeta }): Promise<void> {
  const { link, user } = await findLiveLinkToken(ctx, { token, purposes: ['email_verify', 'email_change'] });
  await ctx.db.transaction(async (tx) => {
    const scoped = { ...ctx, db: tx };
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
 * that address, with the same answer and work for every address (so an unverified user locked out by
 * EMAIL_VERIFICATION=required can ask, and nobody else learns anything). Earlier links stay valid.
 */
export async function resendVerification(
  ctx: Ctx,
  input: { user: User; meta: RequestMeta } | { email: string; meta: RequestMeta },
): Promise<void> {
  const address = 'user' in input ? input.user.email : normalizeEmail(input.email);
  await consumeLimit(ctx, 'recoveryPerEmail', address);
  if (ctx.config.EMAIL_VERIFICATION === 'off') return;
  await ctx.db.transaction((tx) =>
    mailLinkIfEligible(
      tx,
      { now: ctx.clock.now() },
      {
        address,
        condition: sql`not ${users.disabled} and ${users.emailVerifiedAt} is null`,
        purpose: 'email_verify',
        minutes: EMAIL_LINK_EXPIRE_MINUTES,
        mail: (token) => ({ template: 'verify-email', to: address, params: { token } }),
      },
    ),
  );
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
  const matches =
    isAcceptablePassword(input.currentPassword) && (await ctx.hasher.verify(input.currentPassword, user.passwordHash));
  if (!matches) throw new AppError('wrong-password');
  // Per target address like the other mail-sending requests: a logged-in user cannot mail-bomb an inbox.
  await consumeLimit(ctx, 'recoveryPerEmail', newEmail);
  await ctx.db.transaction(async (tx) => {
    const scoped = { ...ctx, db: tx };
    const token = await issueLinkToken(scoped, {
      purpose: 'email_change',
      userId: user.id,
      email: newEmail,
      minutes: EMAIL_LINK_EXPIRE_MINUTES,
    });
    await enqueueMail(scoped, { template: 'email-change-confirm', to: newEmail, params: { token } });
    await enqueueMail(scoped, { template: 'email-change-notice', to: user.email, params: { newEmail } });
  });
  ctx.mailQueued?.();
}
