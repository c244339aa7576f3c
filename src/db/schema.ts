import { sql } from 'drizzle-orm';
import { boolean, check, integer, pgEnum, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const ROLES = ['user', 'admin'] as const;
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
