/**
 * `bun run db:generate` drafts the down migration drizzle-kit does not write, and `db:rollback` refuses a
 * missing or unreviewed one with a sentence saying what to do, before it reverts anything.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { draftDownMigration, scaffoldDownMigrations } from '../scripts/db-generate';
import { createPgliteDb } from '../src/db/client-pglite';
import { MIGRATIONS_FOLDER, migrationStatus, rollbackMigrations, runMigrations } from '../src/db/migrate';
import { SERVER_TEST_TIMEOUT_MS } from './server-process';

const NEW_MIGRATION = `CREATE TABLE "widgets" (
	"id" integer PRIMARY KEY NOT NULL,
	"name" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "nickname" text;--> statement-breakpoint
CREATE INDEX "widgets_name_idx" ON "widgets" USING btree ("name");--> statement-breakpoint
UPDATE "users" SET "nickname" = "email";`;

/** A copy of the project's migrations with one more, as drizzle-kit generate would leave it: no down file. */
function withNewMigration(): string {
  const folder = mkdtempSync(join(tmpdir(), 'hpa-generate-'));
  cpSync(MIGRATIONS_FOLDER, folder, { recursive: true });
  const journalPath = join(folder, 'meta/_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { idx: number; when: number }[] };
  const last = journal.entries.at(-1) as { idx: number; when: number };
  journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1000, tag: '9999_widgets' } as never);
  writeFileSync(journalPath, JSON.stringify(journal));
  writeFileSync(join(folder, '9999_widgets.sql'), NEW_MIGRATION);
  return folder;
}

describe('the drafted down migration', () => {
  const folders: string[] = [];
  afterAll(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  test('reverses each statement it can read, newest first, and leaves a TODO for the rest', () => {
    expect(draftDownMigration('9999_widgets', NEW_MIGRATION)).toBe(
      [
        '-- DRAFT: drafted by `bun run db:generate`. Check every statement, finish the TODOs, then delete this line.',
        '-- Reverses 9999_widgets.sql, newest statement first.',
        '-- TODO: undo UPDATE "users" SET "nickname" = "email";',
        '--> statement-breakpoint',
        'DROP INDEX "widgets_name_idx";',
        '--> statement-breakpoint',
        'ALTER TABLE "users" DROP COLUMN "nickname";',
        '--> statement-breakpoint',
        'DROP TABLE "widgets";',
        '',
      ].join('\n'),
    );
  });

  test(
    'is written for the new migration only; rollback refuses it until reviewed, then reverses it exactly',
    async () => {
      const folder = withNewMigration();
      folders.push(folder);
      const before = readFileSync(join(folder, 'down/0000_init.sql'), 'utf8');
      expect(scaffoldDownMigrations(folder)).toEqual([join(folder, 'down/9999_widgets.sql')]);
      expect(readFileSync(join(folder, 'down/0000_init.sql'), 'utf8')).toBe(before);
      expect(scaffoldDownMigrations(folder)).toEqual([]); // run again: nothing more to draft

      const handle = await createPgliteDb();
      try {
        await runMigrations(handle, folder);
        await expect(rollbackMigrations(handle, {}, folder)).rejects.toThrow(
          /9999_widgets\.sql is the draft `bun run db:generate` wrote: check each statement, delete its first line/,
        );
        expect((await migrationStatus(handle.db, folder)).every((m) => m.applied)).toBe(true);

        // Reviewed: the TODO (a data change) needs no undo; the first line goes.
        const downFile = join(folder, 'down/9999_widgets.sql');
        writeFileSync(downFile, readFileSync(downFile, 'utf8').split('\n').slice(1).join('\n'));
        expect(await rollbackMigrations(handle, {}, folder)).toEqual(['9999_widgets']);
        expect((await migrationStatus(handle.db, folder)).at(-1)?.applied).toBe(false);
        await runMigrations(handle, folder); // and up again
      } finally {
        await handle.close();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'rollback without a down file says what to write, and reverts nothing',
    async () => {
      const folder = withNewMigration();
      folders.push(folder);
      const handle = await createPgliteDb();
      try {
        await runMigrations(handle, folder);
        await expect(rollbackMigrations(handle, { to: '0000_init' }, folder)).rejects.toThrow(
          /9999_widgets has no down migration: write .*down\/9999_widgets\.sql with the statements that undo 9999_widgets\.sql/,
        );
        expect((await migrationStatus(handle.db, folder)).every((m) => m.applied)).toBe(true);
      } finally {
        await handle.close();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
