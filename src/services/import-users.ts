/**
 * Imports the users of the original FastAPI app (its `user` table: id, email, hashed_password, role,
 * created_at, last_login_time) with their passlib bcrypt hashes kept as they are: nobody's password is
 * known, so nothing is rehashed, and `$2a$`/`$2b$`/`$2y$` hashes verify here unchanged.
 */
import { z } from 'zod';
import type { Database } from '../db/database';
import { ROLES, users } from '../db/schema';
import { BCRYPT_HASH } from '../hashing/bcrypt';
import { EmailRule } from '../lib/email';
import type { RequestMeta } from '../lib/request-meta';
import { describeIssues } from '../lib/validation';
import { recordAuditEvents } from './audit';

/** Rows per transaction: a failure rolls back one batch, and earlier batches stay imported (re-run to resume). */
export const IMPORT_BATCH_SIZE = 500;

// `row_to_json` writes timestamptz with an offset and the reference app's naive `datetime.utcnow()`
// columns without one; a missing offset means UTC there. Fractions past milliseconds are dropped
// (the columns here keep milliseconds).
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

const TimestampSchema = z
  .string()
  .transform((value, ctx) => {
    const match = TIMESTAMP.exec(value.trim());
    const date = match
      ? new Date(`${match[1]}T${match[2]}${(match[3] ?? '').slice(0, 4)}${match[4] ?? 'Z'}`)
      : new Date(Number.NaN);
    if (Number.isNaN(date.getTime())) {
      ctx.addIssue({ code: 'custom', message: 'Invalid timestamp; expected ISO 8601' });
      return z.NEVER;
    }
    return date;
  })
  .nullish();

/** One row of the reference app's `user` table as `row_to_json` writes it; `id` and unknown keys are ignored. */
export const ImportRowSchema = z.object({
  email: EmailRule,
  hashed_password: z.string().regex(BCRYPT_HASH, 'Not a bcrypt hash ($2a$, $2b$ or $2y$)'),
  role: z
    .enum(ROLES, { message: `Role must be one of ${ROLES.join(', ')}` })
    .nullish()
    .transform((role) => role ?? 'user'),
  created_at: TimestampSchema,
  last_login_time: TimestampSchema,
});

/** A row of the input: its 1-based line (or array position) and the parsed JSON, or why it could not be parsed. */
export type ImportInput = { line: number; value: unknown } | { line: number; error: string };

export interface ImportReport {
  imported: { line: number; email: string; id: number }[];
  duplicates: { line: number; email: string }[];
  rejected: { line: number; reason: string }[];
}

/**
 * Splits an export into rows: a JSON array, or JSON lines (blank lines skipped), such as
 * `psql -Atc 'select row_to_json(u) from "user" u'` or `psql -c "copy (select row_to_json(u) from \"user\" u) to stdout"`
 * print. (COPY's text format doubles backslashes, but no valid email, bcrypt hash, role or timestamp has one,
 * so its lines read the same.)
 */
export function parseImportText(text: string): ImportInput[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let rows: unknown;
    try {
      rows = JSON.parse(trimmed);
    } catch {
      return [{ line: 1, error: 'The input starts with [ but is not a JSON array' }];
    }
    if (!Array.isArray(rows)) return [{ line: 1, error: 'The input is not a JSON array' }];
    return rows.map((value, index) => ({ line: index + 1, value }));
  }
  const inputs: ImportInput[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '') continue;
    try {
      inputs.push({ line: index + 1, value: JSON.parse(line) });
    } catch {
      inputs.push({ line: index + 1, error: 'Not valid JSON' });
    }
  }
  return inputs;
}

/**
 * Validates every row, then inserts the valid ones with their hashes unchanged, one transaction per batch,
 * each with a `register` audit event marked `{imported: true}`. An email already in the database, or
 * earlier in the input, is skipped and reported as a duplicate, so importing the same file twice is harmless.
 */
export async function importUsers(
  { db }: { db: Database },
  {
    inputs,
    meta,
    batchSize = IMPORT_BATCH_SIZE,
    onProgress,
  }: {
    inputs: Iterable<ImportInput>;
    meta: RequestMeta;
    batchSize?: number;
    /** Called after each committed batch with the valid rows done so far and their total. */
    onProgress?: (progress: { done: number; total: number }) => void;
  },
): Promise<ImportReport> {
  const report: ImportReport = { imported: [], duplicates: [], rejected: [] };
  const seen = new Set<string>();
  const valid: { line: number; row: z.output<typeof ImportRowSchema> }[] = [];
  for (const input of inputs) {
    if ('error' in input) {
      report.rejected.push({ line: input.line, reason: input.error });
      continue;
    }
    const parsed = ImportRowSchema.safeParse(input.value);
    if (!parsed.success) {
      report.rejected.push({ line: input.line, reason: describeIssues(parsed.error) });
    } else if (seen.has(parsed.data.email)) {
      report.duplicates.push({ line: input.line, email: parsed.data.email });
    } else {
      seen.add(parsed.data.email);
      valid.push({ line: input.line, row: parsed.data });
    }
  }

  for (let start = 0; start < valid.length; start += batchSize) {
    const batch = valid.slice(start, start + batchSize);
    await db.transaction(async (tx) => {
      // ON CONFLICT DO NOTHING: rows whose email exists (case-insensitively, by the unique index) are skipped.
      const created = await tx
        .insert(users)
        .values(
          batch.map(({ row }) => ({
            email: row.email,
            passwordHash: row.hashed_password,
            role: row.role,
            ...(row.created_at ? { createdAt: row.created_at } : {}),
            lastLoginTime: row.last_login_time ?? null,
          })),
        )
        .onConflictDoNothing()
        .returning({ id: users.id, email: users.email, role: users.role });
      const ids = new Map(created.map((user) => [user.email, user]));
      const imported: ImportReport['imported'] = [];
      for (const { line, row } of batch) {
        const user = ids.get(row.email);
        if (user) imported.push({ line, email: user.email, id: user.id });
        else report.duplicates.push({ line, email: row.email });
      }
      await recordAuditEvents(
        { db: tx },
        created.map((user) => ({
          event: 'register',
          meta,
          userId: user.id,
          details: { imported: true, role: user.role },
        })),
      );
      report.imported.push(...imported);
    });
    onProgress?.({ done: Math.min(start + batchSize, valid.length), total: valid.length });
  }
  report.duplicates.sort((a, b) => a.line - b.line);
  return report;
}
