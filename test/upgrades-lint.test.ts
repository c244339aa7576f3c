/**
 * The migration lint of `bun run lint` (scripts/lint-migrations.ts): statements that lock an existing table
 * or break the previous release fail a migration declared online, unless allowed with a reason.
 */
import { describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lintMigrations, lintStatements, type Rule, splitStatements, type Upgrades } from '../scripts/lint-migrations';

const EXISTING = () => new Set(['users', 'sessions']);
const rulesOf = (sql: string, existing = EXISTING()) => lintStatements(sql, existing).map((f) => f.rule);

describe('statements an online migration may not run on an existing table', () => {
  const bad: [string, Rule][] = [
    ['CREATE INDEX "users_created_idx" ON "users" USING btree ("created_at");', 'create-index'],
    ['CREATE UNIQUE INDEX users_x ON public.users (x)', 'create-index'],
    ['ALTER TABLE "users" ALTER COLUMN "email" SET DATA TYPE varchar(320);', 'alter-column-type'],
    ['ALTER TABLE users ALTER email TYPE varchar(320)', 'alter-column-type'],
    ['ALTER TABLE "sessions" ALTER COLUMN "ip" SET NOT NULL;', 'set-not-null'],
    ['ALTER TABLE "users" ADD COLUMN "tenant" integer NOT NULL;', 'add-column-not-null'],
    ['ALTER TABLE "users" ADD COLUMN "uid" uuid DEFAULT gen_random_uuid() NOT NULL;', 'add-column-not-null'],
    ['ALTER TABLE "users" DROP COLUMN "last_login_time";', 'drop'],
    ['DROP TABLE "sessions";', 'drop'],
    ['DROP TYPE "public"."user_role";', 'drop'],
    ['ALTER TABLE "users" RENAME COLUMN "email" TO "address";', 'rename'],
    ['ALTER TABLE "users" RENAME TO "accounts";', 'rename'],
    ['ALTER TYPE "public"."user_role" RENAME VALUE \'user\' TO \'member\';', 'rename'],
    ['ALTER TABLE "users" ADD CONSTRAINT "users_email_len" CHECK (length(email) < 320);', 'add-constraint'],
    [
      'ALTER TABLE "sessions" ADD CONSTRAINT "s_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id");',
      'add-constraint',
    ],
    ['ALTER TABLE "users" ADD CONSTRAINT "users_email_key" UNIQUE ("email");', 'add-constraint'],
    ['TRUNCATE "sessions";', 'table-lock'],
    ['LOCK TABLE users IN ACCESS EXCLUSIVE MODE;', 'table-lock'],
  ];
  for (const [sql, rule] of bad) {
    test(`${rule}: ${sql}`, () => expect(rulesOf(sql)).toContain(rule));
  }
});

describe('what an online migration may do', () => {
  const good = [
    'CREATE INDEX CONCURRENTLY "users_created_idx" ON "users" ("created_at");',
    'ALTER TABLE "sessions" ADD COLUMN "amr" text[] DEFAULT \'{pwd}\'::text[] NOT NULL;',
    'ALTER TABLE "sessions" ADD COLUMN "mfa_at" timestamp (3) with time zone;',
    'ALTER TABLE "users" ADD COLUMN "created" timestamp DEFAULT now() NOT NULL;',
    'ALTER TABLE "users" ADD CONSTRAINT "users_email_len" CHECK (length(email) < 320) NOT VALID;',
    'ALTER TABLE "sessions" ADD CONSTRAINT "s_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") NOT VALID;',
    'ALTER TABLE "users" ADD CONSTRAINT "users_email_key" UNIQUE USING INDEX "users_email_idx";',
    'ALTER TYPE "public"."audit_event" ADD VALUE \'mfa_enabled\';',
    'CREATE TRIGGER "t" AFTER UPDATE ON "users" FOR EACH ROW EXECUTE FUNCTION "f"();',
    'DROP TRIGGER IF EXISTS "t" ON "users";',
  ];
  for (const sql of good) test(sql, () => expect(rulesOf(sql)).toEqual([]));

  test('a table created in the same migration is new: its indexes, constraints and NOT NULL columns are free', () => {
    const sql = `CREATE TABLE "totp" ("user_id" integer NOT NULL, "secret" text NOT NULL);
      --> statement-breakpoint
      ALTER TABLE "totp" ADD CONSTRAINT "totp_user_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id");
      --> statement-breakpoint
      CREATE UNIQUE INDEX "totp_user_key" ON "totp" USING btree ("user_id");
      ALTER TABLE "totp" ADD COLUMN "label" text NOT NULL;`;
    const existing = EXISTING();
    expect(rulesOf(sql, existing)).toEqual([]);
    // …and existing from then on, for the migrations after it.
    expect(existing.has('totp')).toBe(true);
    expect(rulesOf('CREATE INDEX "totp_label" ON "totp" ("label");', existing)).toEqual(['create-index']);
  });

  test('semicolons inside function bodies, strings and comments do not split statements', () => {
    const sql = `CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no; really'; END $$;
      -- DROP TABLE users; (a comment)
      SELECT 'a;b'`;
    expect(splitStatements(sql)).toHaveLength(2);
    expect(rulesOf(sql)).toEqual([]);
  });
});

describe('the declarations in upgrades.json', () => {
  function folderWith(migrations: Record<string, string>, upgrades: Upgrades): string {
    const dir = mkdtempSync(join(tmpdir(), 'lint-migrations-'));
    mkdirSync(join(dir, 'meta'));
    const entries = Object.keys(migrations).map((tag, idx) => ({ idx, tag }));
    writeFileSync(join(dir, 'meta/_journal.json'), JSON.stringify({ entries }));
    for (const [tag, sql] of Object.entries(migrations)) writeFileSync(join(dir, `${tag}.sql`), sql);
    writeFileSync(join(dir, 'upgrades.json'), JSON.stringify(upgrades));
    return dir;
  }
  const lint = (migrations: Record<string, string>, upgrades: Upgrades) => {
    const dir = folderWith(migrations, upgrades);
    try {
      return lintMigrations(dir);
    } finally {
      rmSync(dir, { recursive: true });
    }
  };
  const init = { '0000_init': 'CREATE TABLE "users" ("id" integer, "email" text);' };
  const first = { '0000_init': { mode: 'offline', reason: 'the first schema' } } as const;
  const index = { ...init, '0001_index': 'CREATE INDEX "users_email_idx" ON "users" ("email");' };

  test('this repository’s migrations pass', () => {
    expect(lintMigrations(join(import.meta.dir, '..', 'drizzle'))).toEqual([]);
  });

  test('an online migration with a locking statement fails, naming the migration, the statement and the way out', () => {
    const complaints = lint(index, { ...first, '0001_index': { mode: 'online', reason: 'an index' } });
    expect(complaints).toHaveLength(1);
    expect(complaints[0]).toContain('0001_index is declared online');
    expect(complaints[0]).toContain('CREATE INDEX "users_email_idx"');
    expect(complaints[0]).toContain('allow "create-index"');
  });

  test('declared offline, or the rule allowed with a reason, it passes; allowed without a reason, it does not', () => {
    expect(lint(index, { ...first, '0001_index': { mode: 'offline', reason: 'users is locked briefly' } })).toEqual([]);
    const allowing = (reason: string): Upgrades => ({
      ...first,
      '0001_index': { mode: 'online', reason: 'an index', allow: [{ rule: 'create-index', reason }] },
    });
    expect(lint(index, allowing('users has a few thousand rows: the build takes milliseconds'))).toEqual([]);
    expect(lint(index, allowing(' ')).join('\n')).toContain('allows create-index without a reason');
  });

  test('a migration without a declaration, or a declaration without a migration, fails', () => {
    expect(lint(index, first)).toEqual([
      '0001_index: declare it in drizzle/upgrades.json as "online" or "offline", with a reason',
    ]);
    expect(lint(init, { ...first, '0009_gone': { mode: 'online', reason: 'x' } })).toEqual([
      'upgrades.json declares 0009_gone, which is not in the journal',
    ]);
  });
});
