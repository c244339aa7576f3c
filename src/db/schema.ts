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
  'password_change_failed',
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
