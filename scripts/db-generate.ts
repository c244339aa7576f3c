/**
 * `bun run db:generate [--name <what>] …`: drizzle-kit generate (the arguments go to it as they are), then a
 * drafted `drizzle/down/<tag>.sql` for every migration that has none. drizzle-kit writes no down migrations,
 * and `bun run db:rollback` needs one per migration: the draft undoes what it can read (tables, columns,
 * indexes, constraints, enums), newest statement first, and leaves a TODO for the rest. It starts with a
 * `-- DRAFT` line, and rollback refuses it until someone has checked it and deleted that line;
 * `bun test test/migrations.test.ts` then proves up → down → up.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { DOWN_DRAFT_MARKER } from '../src/db/migrate';

const ROOT = resolve(import.meta.dir, '..');
const BREAKPOINT = '--> statement-breakpoint';

/** The reverse of one statement of an up migration, or a TODO naming it. */
function reverse(statement: string): string {
  const name = String.raw`((?:"[^"]+"\.)?"[^"]+")`;
  const patterns: [RegExp, (m: RegExpExecArray) => string][] = [
    [new RegExp(`^CREATE TABLE (?:IF NOT EXISTS )?${name}`, 'i'), (m) => `DROP TABLE ${m[1]};`],
    [new RegExp(`^CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?${name}`, 'i'), (m) => `DROP INDEX ${m[1]};`],
    [new RegExp(`^CREATE TYPE ${name}`, 'i'), (m) => `DROP TYPE ${m[1]};`],
    [new RegExp(`^CREATE SEQUENCE ${name}`, 'i'), (m) => `DROP SEQUENCE ${m[1]};`],
    [new RegExp(`^ALTER TABLE ${name} ADD COLUMN ${name}`, 'i'), (m) => `ALTER TABLE ${m[1]} DROP COLUMN ${m[2]};`],
    [
      new RegExp(`^ALTER TABLE ${name} ADD CONSTRAINT ${name}`, 'i'),
      (m) => `ALTER TABLE ${m[1]} DROP CONSTRAINT ${m[2]};`,
    ],
    [
      new RegExp(`^ALTER TYPE ${name} ADD VALUE`, 'i'),
      (m) =>
        `-- TODO: PostgreSQL cannot drop a value of an enum: recreate ${m[1]} without it (${firstLine(statement)})`,
    ],
  ];
  const text = statement.trim();
  for (const [pattern, undo] of patterns) {
    const match = pattern.exec(text);
    if (match) return undo(match);
  }
  return `-- TODO: undo ${firstLine(text)}`;
}

const firstLine = (text: string) => text.trim().split('\n')[0]?.slice(0, 160) ?? '';

/** A down migration drafted from an up migration's SQL: each statement reversed, the last one first. */
export function draftDownMigration(tag: string, upSql: string): string {
  const statements = upSql
    .split(BREAKPOINT)
    .map((statement) => statement.trim())
    .filter(Boolean);
  return [
    `${DOWN_DRAFT_MARKER}: drafted by \`bun run db:generate\`. Check every statement, finish the TODOs, then delete this line.`,
    `-- Reverses ${tag}.sql, newest statement first.`,
    statements.reverse().map(reverse).join(`\n${BREAKPOINT}\n`),
    '',
  ].join('\n');
}

/** Writes a draft for each migration of the folder's journal that has no down file; returns the files written. */
export function scaffoldDownMigrations(folder: string): string[] {
  const journal = JSON.parse(readFileSync(join(folder, 'meta/_journal.json'), 'utf8')) as {
    entries: { tag: string }[];
  };
  mkdirSync(join(folder, 'down'), { recursive: true });
  const written: string[] = [];
  for (const { tag } of journal.entries) {
    const downFile = join(folder, 'down', `${tag}.sql`);
    if (existsSync(downFile)) continue;
    writeFileSync(downFile, draftDownMigration(tag, readFileSync(join(folder, `${tag}.sql`), 'utf8')));
    written.push(downFile);
  }
  return written;
}

if (import.meta.main) {
  const generate = Bun.spawnSync([join(ROOT, 'node_modules/.bin/drizzle-kit'), 'generate', ...process.argv.slice(2)], {
    cwd: ROOT,
    stdio: ['inherit', 'inherit', 'inherit'],
  });
  if (generate.exitCode !== 0) process.exit(generate.exitCode ?? 1);
  for (const file of scaffoldDownMigrations(join(ROOT, 'drizzle'))) {
    console.log(
      `drafted ${relative(ROOT, file)}: check it, delete its first line, then \`bun test test/migrations.test.ts\``,
    );
  }
  // A new migration needs its declaration too (README "Upgrades"): the lint names what is missing.
  const { lintMigrations } = await import('./lint-migrations');
  for (const complaint of lintMigrations(join(ROOT, 'drizzle'))) console.log(complaint);
}
