import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { PublicJwk } from '../lib/key-crypto';

export const ROLES = ['user', 'admin'] as const;
/** users.id is a PostgreSQL `integer`: anything larger is not an id of ours (and would fail the query). */
export const MAX_USER_ID = 2 ** 31 - 1;
export type Role = (typeof ROLES)[number];
export const roleEnum = pgEnum('user_role', ROLES);

export const users = pgTable(
  'users',
  {
    id: integer().primaryKey().generatedAlwaysAsIdentity(),
    // Stored trimmed and lower-cased by the service; the CHECK and the unique index on lower(email)
    // keep the table case-insensitively unique even for rows written some other way.
    email: text().notNull(),
    passwordHash: text().notNull(),
    role: roleEnum().notNull().default('user'),
    disabled: boolean().notNull().default(false),
    createdAt: timestamp({ withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastLoginTime: timestamp({ withTimezone: true, precision: 3 }),
    /** When the user proved they read mail at `email` (a verification or reset link); null until then. */
    emailVerifiedAt: timestamp({ withTimezone: true, precision: 3 }),
  },
  (t) => [
    uniqueIndex('users_email_lower_key').on(sql`lower(${t.email})`),
    check('users_email_normalized', sql`${t.email} = lower(btrim(${t.email}))`),
  ],
);

export type User = typeof users.$inferSelect;
export type NewUser = typeof users.$inferInsert;

const timestamptz = () => timestamp({ withTimezone: true, precision: 3 });

/**
 * A session is one refresh-token family: created by a password login, extended by each rotation,
 * ended by logout, password change, disabling or deleting the user. Access tokens name their
 * session (`sid`), so revoking (or deleting) the row stops them at once.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid().primaryKey().defaultRandom(),
    userId: integer()
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: timestamptz().notNull().defaultNow(),
    lastUsedAt: timestamptz().notNull().defaultNow(),
    expiresAt: timestamptz().notNull(),
    revokedAt: timestamptz(),
    userAgent: text(),
    ip: text(),
    /** How the session's user proved who they are (RFC 8176 values: `pwd`, `otp`, `webauthn`); tokens carry it. */
    amr: text().array().notNull().default(sql`'{pwd}'::text[]`),
    /** The OAuth client the session was started for (RFC 9068 `client_id`); the service's own when none named one. */
    clientId: text(),
  },
  (t) => [index('sessions_user_id_idx').on(t.userId)],
);

/** Single-use refresh tokens. Only a SHA-256 of the secret is stored; a spent row stays to detect reuse. */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid().primaryKey().defaultRandom(),
    sessionId: uuid()
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    secretHash: text().notNull(),
    createdAt: timestamptz().notNull().defaultNow(),
    spentAt: timestamptz(),
    /** The token issued when this one was spent: whether it was used yet tells a retry from a replay. */
    replacedBy: uuid(),
  },
  (t) => [index('refresh_tokens_session_id_idx').on(t.sessionId)],
);

export const AUDIT_EVENTS = [
  'register',
  'login_succeeded',
  'login_failed',
  'token_refreshed',
  'refresh_reuse_detected',
  'logout',
  'session_revoked',
  'password_changed',
  'role_changed',
  'user_disabled',
  'user_enabled',
  'user_deleted',
  'password_reset_requested',
  'password_reset',
  'email_verified',
  'email_changed',
  'password_change_failed',
  // The second factor (services/mfa.ts).
  'mfa_required',
  'mfa_failed',
  'totp_enabled',
  'totp_disabled',
  'recovery_code_used',
  'recovery_codes_regenerated',
  'mfa_reset',
  'passkey_added',
  'passkey_removed',
  // A passkey answered with a sign counter that did not increase: a copy of its key may be in use (WebAuthn §6.1.1).
  'passkey_counter_rollback',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];
export const auditEventEnum = pgEnum('audit_event', AUDIT_EVENTS);

/**
 * Append-only record of authentication events (a trigger refuses UPDATE and DELETE). No foreign keys:
 * a deleted user's history must outlive them.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    createdAt: timestamptz().notNull().defaultNow(),
    event: auditEventEnum().notNull(),
    userId: integer(),
    actorId: integer(),
    ip: text(),
    userAgent: text(),
    details: jsonb().$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('audit_events_user_id_idx').on(t.userId, t.id)],
);

export type Session = typeof sessions.$inferSelect;
export type RefreshToken = typeof refreshTokens.$inferSelect;
export type AuditEventRow = typeof auditEvents.$inferSelect;

/**
 * The keys access tokens are signed with (ES256 or EdDSA; none under HS256). The public half is published in
 * the JWKS from `createdAt`; the key signs from `activatesAt` until a newer key activates; it stays published
 * until the last token it signed has expired. `revokedAt` is the emergency stop: its tokens fail at once.
 * The private half is stored encrypted (AES-256-GCM, key derived from SECRET_KEY with HKDF; services/keys.ts).
 */
export const signingKeys = pgTable('signing_keys', {
  kid: text().primaryKey(),
  alg: text().notNull(),
  publicJwk: jsonb().$type<PublicJwk>().notNull(),
  privateKey: text().notNull(),
  createdAt: timestamptz().notNull().defaultNow(),
  activatesAt: timestamptz().notNull(),
  revokedAt: timestamptz(),
});

export type SigningKeyRow = typeof signingKeys.$inferSelect;

/**
 * Rate-limit counters when RATE_LIMIT_STORE=postgres, written by rate-limiter-flexible's RateLimiterDrizzle
 * with one atomic upsert per attempt; the column names (`key`, `points`, `expire`) are the ones it expects.
 * Expired rows are deleted by the limiter every few minutes, so the table stays small.
 */
export const rateLimits = pgTable(
  'rate_limits',
  {
    key: text().primaryKey(),
    points: integer().notNull(),
    expire: timestamptz(),
  },
  (t) => [index('rate_limits_expire_idx').on(t.expire)],
);

export const LINK_TOKEN_PURPOSES = ['password_reset', 'email_verify', 'email_change'] as const;
export type LinkTokenPurpose = (typeof LINK_TOKEN_PURPOSES)[number];
export const linkTokenPurposeEnum = pgEnum('link_token_purpose', LINK_TOKEN_PURPOSES);

/**
 * The single-use tokens mailed in links (password reset, address verification, address change). Only a
 * SHA-256 of the token is stored, so a copy of the table opens nothing. Each is bound to its purpose, its
 * user and the address it was mailed to (`email`: for a change, the new address), and is spent once.
 */
export const linkTokens = pgTable(
  'link_tokens',
  {
    id: uuid().primaryKey().defaultRandom(),
    purpose: linkTokenPurposeEnum().notNull(),
    userId: integer()
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text().notNull(),
    email: text().notNull(),
    createdAt: timestamptz().notNull().defaultNow(),
    expiresAt: timestamptz().notNull(),
    spentAt: timestamptz(),
  },
  (t) => [uniqueIndex('link_tokens_token_hash_key').on(t.tokenHash), index('link_tokens_user_id_idx').on(t.userId)],
);

export type LinkToken = typeof linkTokens.$inferSelect;

export const MAIL_STATUSES = ['pending', 'sending', 'sent', 'skipped', 'dead'] as const;
export type MailStatus = (typeof MAIL_STATUSES)[number];
export const mailStatusEnum = pgEnum('mail_status', MAIL_STATUSES);

/**
 * The transactional outbox: a row is written in the transaction of the change that causes the mail, and a
 * sender (services/outbox.ts, src/mail/sender.ts) delivers it. `next_attempt_at` is when the row is next due:
 * for `pending` the retry time, for `sending` the end of the sender's lease (a sender that died mid-send
 * leaves the row due again then). `params` holds what the template needs, a link token included once the
 * sender minted it, and is emptied once the message is sent; `skipped` is a link mail for which no account
 * qualified when it was prepared (an unknown address asking for a reset). `message_id` is the uuid of the
 * RFC 5322 Message-ID every attempt carries.
 */
export const mailOutbox = pgTable(
  'mail_outbox',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    messageId: uuid().notNull().defaultRandom(),
    template: text().notNull(),
    recipient: text().notNull(),
    params: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    status: mailStatusEnum().notNull().default('pending'),
    attempts: integer().notNull().default(0),
    createdAt: timestamptz().notNull().defaultNow(),
    nextAttemptAt: timestamptz().notNull().defaultNow(),
    sentAt: timestamptz(),
    lastError: text(),
  },
  (t) => [
    uniqueIndex('mail_outbox_message_id_key').on(t.messageId),
    // The sender's claim query reads only due rows in order; sent and dead rows stay out of the index.
    index('mail_outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.status} in ('pending', 'sending')`),
  ],
);

export type MailOutboxRow = typeof mailOutbox.$inferSelect;

/**
 * A user's TOTP factor (RFC 6238), at most one. `secret` is sealed like the signing keys (AES-256-GCM under a
 * key derived from SECRET_KEY with its own HKDF label; services/mfa.ts), bound to the user id. Pending until
 * `confirmedAt` (the first good code); only a confirmed factor is a second factor. `lastUsedStep` is the
 * time step (unix seconds / 30) of the last code accepted: a code of that step or an earlier one is refused,
 * so a code seen over a shoulder or in a log cannot be replayed inside its window (RFC 6238 §5.2).
 */
export const totpFactors = pgTable('totp_factors', {
  userId: integer()
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  secret: text().notNull(),
  createdAt: timestamptz().notNull().defaultNow(),
  confirmedAt: timestamptz(),
  lastUsedStep: bigint({ mode: 'number' }),
});

export type TotpFactor = typeof totpFactors.$inferSelect;

/** Single-use recovery codes, ten per set, stored only as a keyed hash (services/mfa.ts says why a fast one). */
export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    id: uuid().primaryKey().defaultRandom(),
    userId: integer()
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    codeHash: text().notNull(),
    createdAt: timestamptz().notNull().defaultNow(),
    usedAt: timestamptz(),
  },
  (t) => [uniqueIndex('recovery_codes_user_id_code_hash_key').on(t.userId, t.codeHash)],
);

/**
 * The second step of a login: what the password grant of a user with a second factor hands out instead of
 * tokens (`mfa_token`, stored as SHA-256, so a copy of the table finishes no login). Single use, short-lived,
 * bound to its user and the client address it was issued to; `failures` counts wrong codes (5 end it).
 */
export const mfaChallenges = pgTable(
  'mfa_challenges',
  {
    id: uuid().primaryKey().defaultRandom(),
    userId: integer()
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text().notNull(),
    ip: text(),
    clientId: text(),
    createdAt: timestamptz().notNull().defaultNow(),
    expiresAt: timestamptz().notNull(),
    spentAt: timestamptz(),
    failures: integer().notNull().default(0),
  },
  (t) => [
    uniqueIndex('mfa_challenges_token_hash_key').on(t.tokenHash),
    index('mfa_challenges_user_id_idx').on(t.userId),
  ],
);

export type MfaChallenge = typeof mfaChallenges.$inferSelect;

/**
 * Passkeys (WebAuthn public-key credentials), several per user. `credentialId` is the authenticator's id
 * (base64url), what a login response names; `id` is ours, what the API shows. `counter` is the last sign
 * counter seen (an unsigned 32-bit number, so bigint): a login whose counter does not increase is refused.
 */
export const passkeys = pgTable(
  'passkeys',
  {
    id: uuid().primaryKey().defaultRandom(),
    userId: integer()
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    credentialId: text().notNull(),
    /** The COSE public key, base64url. */
    publicKey: text().notNull(),
    counter: bigint({ mode: 'number' }).notNull(),
    transports: text().array().notNull().default(sql`'{}'::text[]`),
    /** `singleDevice` or `multiDevice` (a synced passkey), from the BE flag at registration. */
    deviceType: text().notNull(),
    backedUp: boolean().notNull(),
    name: text().notNull(),
    createdAt: timestamptz().notNull().defaultNow(),
    lastUsedAt: timestamptz(),
  },
  (t) => [uniqueIndex('passkeys_credential_id_key').on(t.credentialId), index('passkeys_user_id_idx').on(t.userId)],
);

export type Passkey = typeof passkeys.$inferSelect;

export const WEBAUTHN_CEREMONIES = ['registration', 'authentication'] as const;
export type WebauthnCeremony = (typeof WEBAUTHN_CEREMONIES)[number];
export const webauthnCeremonyEnum = pgEnum('webauthn_ceremony', WEBAUTHN_CEREMONIES);

/**
 * The challenges of WebAuthn ceremonies in progress, in the database so that any instance can finish a
 * ceremony another one began. Each is bound to its ceremony and, for a registration or a login that named
 * an email, to its user; it is deleted as it is used (one DELETE … RETURNING, so two instances cannot both
 * spend it), and expires unused.
 */
export const webauthnChallenges = pgTable(
  'webauthn_challenges',
  {
    challenge: text().primaryKey(),
    ceremony: webauthnCeremonyEnum().notNull(),
    userId: integer().references(() => users.id, { onDelete: 'cascade' }),
    /** Registration: the name the passkey will get. */
    passkeyName: text(),
    expiresAt: timestamptz().notNull(),
  },
  (t) => [index('webauthn_challenges_expires_at_idx').on(t.expiresAt)],
);

export type WebauthnChallenge = typeof webauthnChallenges.$inferSelect;
