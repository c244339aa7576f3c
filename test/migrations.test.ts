import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import journal from '../drizzle/meta/_journal.json' with { type: 'json' };
import { createPostgresClient, createPostgresDb } from '../src/db/client-postgres';
import { MIGRATIONS_FOLDER, runMigrations } from '../src/db/migrate';
import { TEST_DATABASE_URL } from './helpers';
import { SERVER_TEST_TIMEOUT_MS, spawnProject } from './server-process';

async function cli(args: string[], env: Record<string, string>) {
  const proc = spawnProject(['scripts/cli.ts', ...args], env);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

describe('migration CLI on PGlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hpa-migrate-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test(
    'status lists pending migrations, migrate applies them, status then says up to date',
    async () => {
      const before = await cli(['status'], { PGLITE_DIR: dir });
      expect(before.code).toBe(0);
      expect(before.stdout).toMatch(/^pending {2}0000_init/m);
      expect(before.stdout).toContain(`${journal.entries.length} pending`);

      const migrated = await cli(['migrate'], { PGLITE_DIR: dir });
      expect(migrated.code).toBe(0);
      expect(migrated.stdout).toContain(`applied ${journal.entries.map((e) => e.tag).join(', ')}`);

      const after = await cli(['status'], { PGLITE_DIR: dir });
      expect(after.stdout).toMatch(/^applied {2}0000_init/m);
      expect(after.stdout).toContain('up to date');
      expect((await cli(['migrate'], { PGLITE_DIR: dir })).stdout).toContain('nothing to migrate');
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test('rejects an unknown command with usage and exit code 2', async () => {
    const result = await cli(['upgrade'], { PGLITE_DIR: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: bun run cli <command>');
  });
});

/** Runs `body` with the URL of a new, empty database, dropped afterwards. */
async function withFreshDatabase(adminUrl: string, body: (url: string) => Promise<void>) {
  const name = `hpa_test_race_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  const admin = createPostgresClient(adminUrl, 1);
  await admin.unsafe(`create database "${name}"`);
  try {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    await body(url.href);
  } finally {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
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
