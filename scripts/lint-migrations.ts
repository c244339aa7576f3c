/**
 * `bun run lint:migrations` (part of `bun run lint`): every migration in drizzle/ is declared in
 * drizzle/upgrades.json as `online` (expand only: safe while the previous release still runs against the new
 * schema, so instances can be upgraded one at a time) or `offline` (stop every instance, migrate, start the
 * new release), with a reason. An online migration must not contain a statement that takes a strong lock
 * on a table that already exists (it would stall every request for as long as it runs) or that the previous
 * release cannot live with; each such statement fails the lint unless the migration is declared offline or
 * the statement's rule is allowed for that migration with a reason (README "Upgrades").
 *
 * Tables created earlier in the same migration are new: nothing reads them yet, so locking them is free.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const RULES = {
  'create-index':
    'CREATE INDEX on an existing table blocks its writes while the index builds (drizzle migrates in a transaction, where CONCURRENTLY is not allowed)',
  'alter-column-type':
    'ALTER COLUMN … TYPE rewrites the table under an exclusive lock, and the previous release may not read the new type',
  'set-not-null':
    'SET NOT NULL scans the table under an exclusive lock, and the previous release may still write NULLs',
  'add-column-not-null':
    'ADD COLUMN … NOT NULL without a constant DEFAULT fails the previous release’s inserts (or, with a volatile default, rewrites the table)',
  drop: 'DROP of a table, column, type or constraint breaks the previous release, which still uses it (contract in a later, offline or post-upgrade migration)',
  rename: 'RENAME breaks the previous release, which still uses the old name',
  'add-constraint':
    'ADD CONSTRAINT on an existing table validates every row under a lock (add CHECK and FOREIGN KEY constraints NOT VALID, VALIDATE later)',
  'table-lock': 'LOCK, TRUNCATE, VACUUM FULL and CLUSTER hold an exclusive lock on the table',
} as const;

export type Rule = keyof typeof RULES;

export interface Finding {
  rule: Rule;
  statement: string;
}

export interface UpgradeEntry {
  mode: 'online' | 'offline';
  reason: string;
  /** Rules this online migration may break, each with why it is safe here. */
  allow?: { rule: Rule; reason: string }[];
}

export type Upgrades = Record<string, UpgradeEntry>;

/** Splits SQL into statements at `;` outside quotes, identifiers, dollar-quoted bodies and comments. */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (char === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
      current += ' ';
      continue;
    }
    if (char === "'" || char === '"') {
      const end = text.indexOf(char, i + 1);
      const stop = end === -1 ? text.length : end;
      current += text.slice(i, stop + 1);
      i = stop;
      continue;
    }
    const dollar = char === '$' ? /^\$\w*\$/.exec(text.slice(i)) : null;
    if (dollar) {
      const tag = dollar[0];
      const end = text.indexOf(tag, i + tag.length);
      const stop = end === -1 ? text.length : end + tag.length;
      current += text.slice(i, stop);
      i = stop - 1;
      continue;
    }
    if (char === ';') {
      if (current.trim()) statements.push(current.trim());
      current = '';
      continue;
    }
    current += char;
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

const NAME = String.raw`(?:"?\w+"?\.)?"?(\w+)"?`; // [schema.]table, quoted or not; captures the table
const VOLATILE_DEFAULT =
  /\bDEFAULT\s+[^,]*\b(gen_random_uuid|random|clock_timestamp|nextval|uuid_generate_\w+|timeofday)\s*\(/i;

/** The table a statement works on, lower case, or null. */
function tableOf(statement: string): string | null {
  const match =
    new RegExp(String.raw`^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?${NAME}`, 'i').exec(statement) ??
    new RegExp(String.raw`^CREATE\s+(?:UNIQUE\s+)?INDEX\b.*?\bON\s+(?:ONLY\s+)?${NAME}`, 'is').exec(statement) ??
    new RegExp(String.raw`^(?:LOCK|TRUNCATE|CLUSTER|VACUUM\s+FULL)\s+(?:TABLE\s+)?(?:ONLY\s+)?${NAME}`, 'i').exec(
      statement,
    );
  return match?.[1]?.toLowerCase() ?? null;
}

/**
 * What an online migration may not do, statement by statement. `existing` is the tables that were there
 * before this migration; it is updated with the tables this migration creates and drops.
 */
export function lintStatements(text: string, existing: Set<string>): Finding[] {
  const findings: Finding[] = [];
  const created = new Set<string>();
  for (const statement of splitStatements(text)) {
    const flat = statement.replace(/\s+/g, ' ');
    const found = (rule: Rule) => findings.push({ rule, statement: flat.slice(0, 200) });
    const createdTable = new RegExp(String.raw`^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?${NAME}`, 'i').exec(flat);
    if (createdTable?.[1]) {
      created.add(createdTable[1].toLowerCase());
      continue;
    }
    if (/^DROP\s/i.test(flat) && !/^DROP\s+(TRIGGER|FUNCTION)\b/i.test(flat)) found('drop');
    if (/^ALTER\s+TYPE\b.*\bRENAME\b/i.test(flat)) found('rename');
    const table = tableOf(flat);
    // Locks on a table nobody reads yet cost nothing; dropping or renaming one still breaks nobody.
    if (table === null || !existing.has(table) || created.has(table)) continue;
    if (/^CREATE\s+(UNIQUE\s+)?INDEX\b/i.test(flat) && !/\bCONCURRENTLY\b/i.test(flat)) found('create-index');
    if (/^(LOCK|TRUNCATE|CLUSTER|VACUUM\s+FULL)\b/i.test(flat)) found('table-lock');
    if (!/^ALTER\s+TABLE\b/i.test(flat)) continue;
    if (/\bALTER\s+(COLUMN\s+)?"?\w+"?\s+(SET\s+DATA\s+)?TYPE\b/i.test(flat)) found('alter-column-type');
    if (/\bSET\s+NOT\s+NULL\b/i.test(flat)) found('set-not-null');
    if (/\bDROP\s+(COLUMN|CONSTRAINT)\b/i.test(flat)) found('drop');
    if (/\bRENAME\b/i.test(flat)) found('rename');
    for (const column of flat.split(/\bADD\s+COLUMN\b/i).slice(1)) {
      const definition = column.split(/,\s*(?=ADD\b|ALTER\b|DROP\b)/i)[0] ?? '';
      const notNull = /\bNOT\s+NULL\b/i.test(definition);
      if ((notNull && !/\bDEFAULT\b/i.test(definition)) || VOLATILE_DEFAULT.test(definition))
        found('add-column-not-null');
    }
    if (/\bADD\s+(CONSTRAINT\s+"?\w+"?\s+)?(CHECK|FOREIGN\s+KEY|UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b/i.test(flat)) {
      const deferredCheck = /\bNOT\s+VALID\b/i.test(flat) && /\b(CHECK|FOREIGN\s+KEY)\b/i.test(flat);
      const onExistingIndex = /\bUSING\s+INDEX\b/i.test(flat);
      if (!deferredCheck && !onExistingIndex) found('add-constraint');
    }
  }
  for (const table of created) existing.add(table);
  for (const statement of splitStatements(text)) {
    const dropped = new RegExp(String.raw`^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?${NAME}`, 'i').exec(statement);
    if (dropped?.[1]) existing.delete(dropped[1].toLowerCase());
  }
  return findings;
}

/** Every complaint about the migrations of `folder` and their declarations in upgrades.json; empty when all is well. */
export function lintMigrations(folder: string): string[] {
  const journal = JSON.parse(readFileSync(join(folder, 'meta/_journal.json'), 'utf8')) as {
    entries: { tag: string }[];
  };
  const upgrades = JSON.parse(readFileSync(join(folder, 'upgrades.json'), 'utf8')) as Upgrades;
  const complaints: string[] = [];
  const tags = journal.entries.map((entry) => entry.tag);
  for (const tag of Object.keys(upgrades)) {
    if (!tags.includes(tag)) complaints.push(`upgrades.json declares ${tag}, which is not in the journal`);
  }
  const existing = new Set<string>();
  for (const tag of tags) {
    const findings = lintStatements(readFileSync(join(folder, `${tag}.sql`), 'utf8'), existing);
    const entry = upgrades[tag];
    if (!entry || !['online', 'offline'].includes(entry.mode) || !entry.reason?.trim()) {
      complaints.push(`${tag}: declare it in drizzle/upgrades.json as "online" or "offline", with a reason`);
      continue;
    }
    if (entry.mode === 'offline') continue;
    const allowed = new Map((entry.allow ?? []).map((allow) => [allow.rule, allow.reason]));
    for (const [rule, reason] of allowed) {
      if (!(rule in RULES)) complaints.push(`${tag}: allows an unknown rule "${rule}"`);
      else if (!reason?.trim()) complaints.push(`${tag}: allows ${rule} without a reason`);
    }
    for (const { rule, statement } of findings) {
      if (allowed.get(rule)?.trim()) continue;
      complaints.push(
        `${tag} is declared online, but: ${RULES[rule]}\n    ${statement}\n    ` +
          `declare it offline, or allow "${rule}" for it with a reason, in drizzle/upgrades.json`,
      );
    }
  }
  return complaints;
}

if (import.meta.main) {
  const complaints = lintMigrations(join(import.meta.dir, '..', 'drizzle'));
  for (const complaint of complaints) console.error(complaint);
  if (complaints.length > 0) process.exit(1);
  console.log('migrations: every one declared; the online ones take no strong lock on an existing table');
}
