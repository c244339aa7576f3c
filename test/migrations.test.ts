import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import journal from '../drizzle/meta/_journal.json' with { type: 'json' };
import { type ScratchDatabase, scratchDatabase, scratchPglite } from '../scripts/lib/scratch-database';
import { createPostgresClient, createPostgresDb } from '../src/db/client-postgres';
import type { DatabaseHandle } from '../src/db/database';
import {
  MIGRATIONS_FOLDER,
  migrationStatus,
  ROLLBACK_TO_BASE,
  rollbackMigrations,
  runMigrations,
} from '../src/db/migrate';
import { rowsOf } from '../src/db/rows';
import { TEST_DATABASE_URL } from './helpers';
import { runCli, SERVER_TEST_TIMEOUT_MS } from './server-process';

const cli = (args: string[], env: Record<string, string>) => runCli(args, env);

describe('migration CLI on PGlite', () => {
  let database: ScratchDatabase;
  beforeAll(async () => {
    database = await scratchDatabase('migrate_test');
  });
  afterAll(() => database?.drop());

  test(
    'status lists pending migrations, migrate applies them, status then says up to date',
    async () => {
      const before = await cli(['status'], database.env);
      expect(before.code).toBe(0);
      expect(before.stdout).toMatch(/^pending {2}0000_init/m);
      expect(before.stdout).toContain(`${journal.entries.length} pending`);

      const migrated = await cli(['migrate'], database.env);
      expect(migrated.code).toBe(0);
      expect(migrated.stdout).toContain(`applied ${journal.entries.map((e) => e.tag).join(', ')}`);

      const after = await cli(['status'], database.env);
      expect(after.stdout).toMatch(/^applied {2}0000_init/m);
      expect(after.stdout).toContain('up to date');
      expect((await cli(['migrate'], database.env)).stdout).toContain('nothing to migrate');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test('rejects an unknown command with usage and exit code 2', async () => {
    const result = await cli(['upgrade'], database.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: bun run cli <command>');
  });
});

/** Runs `body` with the URL of a new, empty database, dropped afterwards. */
async function withFreshDatabase(adminUrl: string, body: (url: string) => Promise<void>) {
  const database = await scratchDatabase('race', { adminUrl });
  try {
    await body(database.url as string);
  } finally {
    await database.drop();
  }
}

async function appliedCount(url: string): Promise<number> {
  const client = createPostgresClient(url, 1);
  try {
    const rows = await client.unsafe('select count(*)::int as n from drizzle.__drizzle_migrations');
    return rows[0]?.n;
  } finally {
    await client.end();
  }
}

// Needs a PostgreSQL server: runs in the TEST_DATABASE_URL pass of CI.
describe.skipIf(TEST_DATABASE_URL === undefined)('migrations on PostgreSQL', () => {
  const adminUrl = TEST_DATABASE_URL as string;

  // Without the advisory lock, concurrent drizzle migrate() calls on a fresh database crash most of the time.
  test('many concurrent runMigrations on one fresh database all succeed and apply each migration once', async () => {
    for (let round = 0; round < 3; round++) {
      await withFreshDatabase(adminUrl, async (url) => {
        const handles = Array.from({ length: 6 }, () => createPostgresDb(url));
        try {
          await Promise.all(handles.map((handle) => runMigrations(handle)));
        } finally {
          await Promise.all(handles.map((handle) => handle.close()));
        }
        expect(await appliedCount(url)).toBe(journal.entries.length);
      });
    }
  });

  test(
    'instances started at once each migrate through the CLI without error',
    async () => {
      await withFreshDatabase(adminUrl, async (url) => {
        const results = await Promise.all([1, 2, 3].map(() => cli(['migrate'], { DATABASE_URL: url })));
        expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
        expect((await cli(['status'], { DATABASE_URL: url })).stdout).toContain('up to date');
        expect(await appliedCount(url)).toBe(journal.entries.length);
      });
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

/** Everything a migration can create in the public schema, as comparable text. */
async function schemaSnapshot(db: DatabaseHandle['db']): Promise<string> {
  const queries = {
    columns: `select table_name, column_name, data_type, is_nullable, column_default from information_schema.columns
              where table_schema = 'public' order by table_name, column_name`,
    indexes: `select indexname, indexdef from pg_indexes where schemaname = 'public' order by indexname`,
    constraints: `select conrelid::regclass::text as tbl, conname, pg_get_constraintdef(oid) as def from pg_constraint
                  where connamespace = 'public'::regnamespace order by tbl, conname`,
    enums: `select t.typname, e.enumlabel from pg_type t join pg_enum e on e.enumtypid = t.oid
            where t.typnamespace = 'public'::regnamespace order by t.typname, e.enumsortorder`,
    triggers: `select tgrelid::regclass::text as tbl, tgname from pg_trigger where not tgisinternal order by tbl, tgname`,
    functions: `select proname from pg_proc where pronamespace = 'public'::regnamespace order by proname`,
  };
  const snapshot: Record<string, unknown> = {};
  for (const [name, query] of Object.entries(queries)) snapshot[name] = rowsOf(await db.execute(sql.raw(query)));
  return JSON.stringify(snapshot, null, 1);
}

/** A copy of ./drizzle holding only the first `count` migrations, to migrate up exactly that far. */
function firstMigrations(count: number): string {
  const folder = mkdtempSync(join(tmpdir(), 'hpa-migrations-'));
  const entries = journal.entries.slice(0, count);
  mkdirSync(join(folder, 'meta'));
  writeFileSync(join(folder, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
  for (const { tag } of entries) cpSync(join(MIGRATIONS_FOLDER, `${tag}.sql`), join(folder, `${tag}.sql`));
  return folder;
}

/**
 * For every k: migrating up to k from empty gives the same schema as rolling back down to k from the top,
 * and rolling back to base leaves exactly the empty schema. So every down step really undoes its up step.
 */
async function expectReversibleMigrations(handle: DatabaseHandle) {
  const snapshots = [await schemaSnapshot(handle.db)];
  for (let k = 1; k <= journal.entries.length; k++) {
    const folder = firstMigrations(k);
    try {
      await runMigrations(handle, folder);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
    snapshots.push(await schemaSnapshot(handle.db));
  }
  expect(new Set(snapshots).size).toBe(snapshots.length); // each migration changes the schema
  for (let k = journal.entries.length - 1; k >= 0; k--) {
    const to = k === 0 ? ROLLBACK_TO_BASE : (journal.entries[k - 1]?.tag as string);
    expect(await rollbackMigrations(handle, { to })).toEqual([journal.entries[k]?.tag as string]);
    expect(await schemaSnapshot(handle.db)).toBe(snapshots[k] as string);
  }
  await runMigrations(handle);
  expect(await schemaSnapshot(handle.db)).toBe(snapshots.at(-1) as string);
}

describe('up → down → up', () => {
  test(
    'every migration has a down step that restores the previous schema exactly (PGlite)',
    async () => {
      const handle = await scratchPglite({ migrate: false });
      try {
        await expectReversibleMigrations(handle);
      } finally {
        await handle.close();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test.skipIf(TEST_DATABASE_URL === undefined)(
    'every migration has a down step that restores the previous schema exactly (PostgreSQL)',
    async () => {
      await withFreshDatabase(TEST_DATABASE_URL as string, async (url) => {
        const handle = createPostgresDb(url);
        try {
          await expectReversibleMigrations(handle);
        } finally {
          await handle.close();
        }
      });
    },
  );

  test(
    'rollback without a down file refuses and leaves the migration applied',
    async () => {
      const folder = firstMigrations(journal.entries.length);
      const handle = await scratchPglite({ migrate: false });
      try {
        await runMigrations(handle, folder);
        await expect(rollbackMigrations(handle, {}, folder)).rejects.toThrow('has no down migration');
        const status = await migrationStatus(handle.db, folder);
        expect(status.every((m) => m.applied)).toBe(true);
      } finally {
        await handle.close();
        rmSync(folder, { recursive: true, force: true });
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
