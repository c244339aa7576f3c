/**
 * The transactional outbox (README "Email"): mail is a row written in the transaction of the change that
 * causes it, so a committed change always has its mail and a rolled-back one never does. A sender
 * (src/mail/sender.ts) claims due rows one at a time, delivers them and records the outcome here.
 *
 * Delivery is at-least-once: a sender that dies between the SMTP server's acceptance and `completeMail`
 * leaves the row `sending` until its lease ends, and the next claim sends it again, with the same
 * Message-ID (`<message_id@MAIL_FROM domain>`), so a duplicate is recognisable as one.
 */
import { and, asc, count, desc, eq, inArray, lte, min, sql } from 'drizzle-orm';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { type MailOutboxRow, type MailStatus, mailOutbox } from '../db/schema';
import type { Clock } from '../lib/clock';

export type { MailOutboxRow, MailStatus };

/**
 * What each template is queued with. A link mail is queued without its token: the sender mints the token when
 * it prepares the message (services/recovery.ts prepareLinkMail), so the request that queued it wrote the
 * same row whether or not an account qualifies, and the link's lifetime starts when the mail goes out.
 */
export interface MailParams {
  /** To the address to verify, if an enabled, unverified account has it by then. */
  'verify-email': Record<string, never>;
  /** To the address, if an enabled account has it by then. */
  'password-reset': Record<string, never>;
  'password-changed': Record<string, never>;
  /** To the new address, for this account. */
  'email-change-confirm': { userId: number };
  'email-change-notice': { newEmail: string };
  /** A login (or a change) used one of the account's recovery codes; `left` are unused. */
  'recovery-code-used': { left: number };
  /** TOTP was turned off by the owner, or every factor removed by an admin (or the CLI). */
  'second-factor-removed': { byAdmin: boolean };
  test: Record<string, never>;
}
export type MailTemplate = keyof MailParams;

/** The templates whose mail carries a link, and so a token minted when the mail is prepared. */
export type LinkTemplate = 'verify-email' | 'password-reset' | 'email-change-confirm';

/** What a prepared link mail carries besides its queued params: the link's token and its lifetime. */
export interface LinkParams {
  token: string;
  /** ISO 8601; a retry after this mints a fresh token, so mail never goes out with a dead link. */
  expiresAt: string;
  expiresMinutes: number;
}

export type OutgoingMail = { [T in MailTemplate]: { template: T; to: string; params: MailParams[T] } }[MailTemplate];

/**
 * Queues one message. Pass the transaction of the change that causes it as `db`: the mail commits or rolls
 * back with the change. Nothing is sent here, so a slow or failing SMTP server never touches the request.
 */
export async function enqueueMail(
  { db, clock }: { db: Pick<Database, 'insert'>; clock: Clock },
  mail: OutgoingMail,
): Promise<void> {
  // Due from the app's clock, not the database's: the sender compares with the same clock.
  const now = clock.now();
  await db
    .insert(mailOutbox)
    .values({ template: mail.template, recipient: mail.to, params: mail.params, createdAt: now, nextAttemptAt: now });
}

const BACKOFF_BASE_SECONDS = 30;
const BACKOFF_CAP_SECONDS = 60 * 60; // 1 hour

/** Seconds to wait after the `attempt`-th failed attempt: 30 s doubling (1 m, 2 m, … 32 m), at most 1 h. */
export const retryDelaySeconds = (attempt: number): number =>
  Math.min(BACKOFF_BASE_SECONDS * 2 ** Math.max(0, attempt - 1), BACKOFF_CAP_SECONDS);

/**
 * How long a claim holds a message: twice the longest send, so a live sender always finishes (or gives up)
 * before another may take the message over, plus a margin for the database round trips.
 */
export const leaseSeconds = (config: Pick<Config, 'MAIL_SEND_TIMEOUT_SECONDS'>): number =>
  2 * config.MAIL_SEND_TIMEOUT_SECONDS + 5;

interface OutboxDeps {
  db: Database;
  clock: Clock;
}

type SenderDeps = OutboxDeps & { config: Pick<Config, 'MAIL_SEND_TIMEOUT_SECONDS' | 'MAIL_MAX_ATTEMPTS'> };

/** A message a sender holds: the row as claimed (its `attempts` already counts this attempt). */
export type ClaimedMail = MailOutboxRow;

/**
 * Takes the next due message, if any: a pending one whose retry time has come, or one whose sender's lease
 * ran out (it died mid-send). One statement, so claim and lease commit together; `FOR UPDATE SKIP LOCKED`
 * lets several senders (instances) claim at once without ever taking the same row, and without waiting on
 * each other. The attempt is counted here, before sending: a message that kills its sender every time still
 * runs out of attempts instead of looping forever.
 */
export async function claimNextMail({ db, clock, config }: SenderDeps): Promise<ClaimedMail | null> {
  const now = clock.now();
  const due = db
    .select({ id: mailOutbox.id })
    .from(mailOutbox)
    .where(and(inArray(mailOutbox.status, ['pending', 'sending']), lte(mailOutbox.nextAttemptAt, now)))
    .orderBy(asc(mailOutbox.nextAttemptAt), asc(mailOutbox.id))
    .limit(1)
    .for('update', { skipLocked: true });
  const [claimed] = await db
    .update(mailOutbox)
    .set({
      status: 'sending',
      attempts: sql`${mailOutbox.attempts} + 1`,
      nextAttemptAt: new Date(now.getTime() + leaseSeconds(config) * 1000),
    })
    .where(eq(mailOutbox.id, sql`(${due})`))
    .returning();
  return claimed ?? null;
}

/**
 * The claim is still ours: the row is `sending` with the attempt we claimed. A sender whose lease ran out
 * and was taken over finds it is not, and records nothing (the newer claim decides).
 */
const stillClaimed = (mail: Pick<ClaimedMail, 'id' | 'attempts'>) =>
  and(eq(mailOutbox.id, mail.id), eq(mailOutbox.status, 'sending'), eq(mailOutbox.attempts, mail.attempts));

/** Records a delivery. `params` (which may hold a link token) is emptied: a sent message keeps no secret. */
export async function completeMail({ db, clock }: OutboxDeps, mail: Pick<ClaimedMail, 'id' | 'attempts'>) {
  const done = await db
    .update(mailOutbox)
    .set({ status: 'sent', sentAt: clock.now(), params: {}, lastError: null })
    .where(stillClaimed(mail))
    .returning({ id: mailOutbox.id });
  return done.length > 0;
}

/**
 * Records a failed attempt: `dead` when the failure is permanent (the server refused this message) or the
 * attempts are used up, else `pending` again after the backoff. Returns the new status, or null when the
 * claim was no longer ours.
 */
export async function failMail(
  { db, clock, config }: SenderDeps,
  { mail, error, permanent }: { mail: Pick<ClaimedMail, 'id' | 'attempts'>; error: string; permanent: boolean },
): Promise<'pending' | 'dead' | null> {
  const dead = permanent || mail.attempts >= config.MAIL_MAX_ATTEMPTS;
  const status = dead ? 'dead' : 'pending';
  const nextAttemptAt = new Date(clock.now().getTime() + (dead ? 0 : retryDelaySeconds(mail.attempts) * 1000));
  const updated = await db
    .update(mailOutbox)
    .set({ status, nextAttemptAt, lastError: error.slice(0, 500) })
    .where(stillClaimed(mail))
    .returning({ id: mailOutbox.id });
  return updated.length > 0 ? status : null;
}

/** Stores the params a prepared message goes out with (its link token), if the claim is still ours. */
export async function recordMailParams(
  { db }: { db: Database },
  { mail, params }: { mail: Pick<ClaimedMail, 'id' | 'attempts'>; params: Record<string, unknown> },
): Promise<boolean> {
  const updated = await db
    .update(mailOutbox)
    .set({ params })
    .where(stillClaimed(mail))
    .returning({ id: mailOutbox.id });
  return updated.length > 0;
}

/** Records that no account qualified for the message when it was prepared: nothing is sent, nothing kept. */
export async function skipMail({ db, clock }: OutboxDeps, mail: Pick<ClaimedMail, 'id' | 'attempts'>) {
  await db
    .update(mailOutbox)
    .set({ status: 'skipped', sentAt: clock.now(), params: {}, lastError: null })
    .where(stillClaimed(mail));
}

/** Queues a dead message (or, without `id`, every dead message) again with fresh attempts; returns how many. */
export async function retryDeadMail({ db, clock }: OutboxDeps, { id }: { id?: number } = {}): Promise<number> {
  const isDead = eq(mailOutbox.status, 'dead');
  const retried = await db
    .update(mailOutbox)
    .set({ status: 'pending', attempts: 0, nextAttemptAt: clock.now() })
    .where(id === undefined ? isDead : and(isDead, eq(mailOutbox.id, id)))
    .returning({ id: mailOutbox.id });
  return retried.length;
}

export interface OutboxStats {
  /** Messages waiting to be sent (pending, or in a sender's hands right now). */
  depth: number;
  sending: number;
  dead: number;
  /** Seconds since the oldest waiting message was queued; 0 when none waits. */
  oldestAgeSeconds: number;
}

/** The numbers an operator (and, later, /metrics) watches: a growing depth or age means mail is not going out. */
export async function outboxStats({ db, clock }: OutboxDeps): Promise<OutboxStats> {
  const rows = await db
    .select({ status: mailOutbox.status, n: count(), oldest: min(mailOutbox.createdAt) })
    .from(mailOutbox)
    .where(inArray(mailOutbox.status, ['pending', 'sending', 'dead']))
    .groupBy(mailOutbox.status);
  const of = (status: MailStatus) => rows.find((row) => row.status === status);
  const waiting = [of('pending'), of('sending')].filter((row) => row !== undefined);
  const oldest = Math.min(...waiting.map((row) => new Date(row.oldest ?? clock.now()).getTime()));
  return {
    depth: waiting.reduce((sum, row) => sum + row.n, 0),
    sending: of('sending')?.n ?? 0,
    dead: of('dead')?.n ?? 0,
    oldestAgeSeconds: waiting.length === 0 ? 0 : Math.max(0, Math.round((clock.now().getTime() - oldest) / 1000)),
  };
}

/** The newest messages in one status, for the operator's `cli mail status` (no params: they may hold a token). */
export async function listMail({ db }: { db: Database }, { status, limit }: { status: MailStatus; limit: number }) {
  return db
    .select({
      id: mailOutbox.id,
      template: mailOutbox.template,
      recipient: mailOutbox.recipient,
      attempts: mailOutbox.attempts,
      createdAt: mailOutbox.createdAt,
      nextAttemptAt: mailOutbox.nextAttemptAt,
      lastError: mailOutbox.lastError,
    })
    .from(mailOutbox)
    .where(eq(mailOutbox.status, status))
    .orderBy(desc(mailOutbox.id))
    .limit(limit);
}

const SENT_MAIL_KEPT_DAYS = 7;

/** Deletes sent and skipped messages older than a week (`cli prune`); returns how many. Dead ones wait for the operator. */
export async function deleteOldSentMail({ db, clock }: OutboxDeps): Promise<number> {
  const before = new Date(clock.now().getTime() - SENT_MAIL_KEPT_DAYS * 24 * 60 * 60 * 1000);
  const deleted = await db
    .delete(mailOutbox)
    .where(and(inArray(mailOutbox.status, ['sent', 'skipped']), lte(mailOutbox.sentAt, before)))
    .returning({ id: mailOutbox.id });
  return deleted.length;
}
