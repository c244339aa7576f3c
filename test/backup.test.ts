/**
 * `bun run cli backup` and `restore`, round trip on both databases (PostgreSQL runs wherever this suite
 * runs): real traffic through the app, a backup by the CLI, a restore into a fresh database by the CLI, then
 * the same rows table by table, a restored user who logs in, and a revoked session that stays revoked.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { PROJECT_ROOT } from '../scripts/lib/processes';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import type { DatabaseHandle } from '../src/db/database';
import {
  bearer,
  expectProblem,
  login,
  loginAs,
  POSTGRES_ADMIN_URL,
  refresh,
  runCommand,
  type TokenBody,
  uniqueEmail,
} from './helpers';
import { startInstance } from './instances';

const scratches: ScratchDatabase[] = [];
const files = mkdtempSync(join(tmpdir(), 'hpa-backups-')); // where the backups go
afterAll(async () => {
  await Promise.all(scratches.map((scratch) => scratch.drop()));
  rmSync(files, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string>) =>
  runCommand(['bun', 'scripts/cli.ts', ...args], { cwd: PROJECT_ROOT, env });

/** Rows per table of the service's schemas (public and drizzle's migration record). */
async function rowCounts({ db }: DatabaseHandle): Promise<Record<string, number>> {
  const tables = (await db.execute(sql`
    select schemaname || '.' || tablename as name from pg_tables
    where schemaname in ('public', 'drizzle') order by 1`)) as unknown as
    | { name: string }[]
    | { rows: { name: string }[] };
  const names = (Array.isArray(tables) ? tables : tables.rows).map((row) => row.name);
  const counts: Record<string, number> = {};
  for (const name of names) {
    const result = (await db.execute(sql.raw(`select count(*)::int as n from ${name}`))) as unknown as
      | { n: number }[]
      | { rows: { n: number }[] };
    counts[name] = (Array.isArray(result) ? result : result.rows)[0]?.n ?? -1;
  }
  return counts;
}

for (const kind of ['postgres', 'pglite'] as const) {
  const adminUrl = kind === 'postgres' ? POSTGRES_ADMIN_URL : undefined;

  describe(`backup and restore on ${kind === 'postgres' ? 'PostgreSQL' : 'PGlite'}`, () => {
    test('a round trip keeps every row, a user who logs in, and a revoked session revoked', async () => {
      const source = await scratchDatabase(`backup_${kind}`, { adminUrl, migrate: 'in-process' });
      scratches.push(source);
      const file = join(files, kind === 'postgres' ? 'auth.dump' : 'data.tgz');

      let handle = await source.open();
      let instance = await startInstance(handle);
      const alice = await loginAs(instance.app, uniqueEmail('backup-alice'));
      const bob = await loginAs(instance.app, uniqueEmail('backup-bob'));
      // Alice's first session is revoked; its refresh token must stay refused after the restore.
      expect((await instance.app.request('/logout', { method: 'POST', headers: bearer(alice.token) })).status).toBe(
        204,
      );
      await expectProblem(await refresh(instance.app, alice.refreshToken), 400, 'invalid-refresh-token');
      const before = await rowCounts(handle);
      await instance.close();

      if (kind === 'pglite') {
        // The service holds the directory (here: this process): the backup refuses, saying why.
        const refused = await cli(['backup', file], source.env);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain('in use by a running service: stop it first');
      }
      await handle.close();
      const backedUp = await cli(['backup', file], source.env);
      expect(backedUp.stderr).toBe('');
      expect(backedUp.code).toBe(0);

      const target = await scratchDatabase(`restore_${kind}`, { adminUrl });
      scratches.push(target);
      const restored = await cli(['restore', file], target.env);
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);
      // A second restore finds the database there, and refuses without --force…
      const again = await cli(['restore', file], target.env);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('not empty');
      expect(again.stderr).toContain('--force');
      // …and with it replaces it (the same rows again, not twice as many).
      const forced = await cli(['restore', file, '--force'], target.env);
      expect(forced.stderr).toBe('');
      expect(forced.code).toBe(0);

      handle = await target.open();
      try {
        const after = await rowCounts(handle);
        expect(Object.keys(before)).toContain('public.users');
        expect(Object.keys(before)).toContain('drizzle.__drizzle_migrations');
        expect(after).toEqual(before);
        instance = await startInstance(handle);
        const res = await login(instance.app, bob.email, bob.password);
        expect(res.status).toBe(200);
        const { access_token } = (await res.json()) as TokenBody;
        expect((await instance.app.request('/users/me', { headers: bearer(access_token) })).status).toBe(200);
        await expectProblem(await refresh(instance.app, alice.refreshToken), 400, 'invalid-refresh-token');
        // Bob's session from before the backup lives on.
        expect((await refresh(instance.app, bob.refreshToken)).status).toBe(200);
        await instance.close();
      } finally {
        await handle.close();
      }
    }, 120_000);
  });
}

test('restore refuses a file of the other kind, and one that is no backup', async () => {
  const file = join(files, 'garbage');
  await Bun.write(file, 'PGDMP but not really');
  const pglite = await cli(['restore', file], { PGLITE_DIR: join(files, 'never-made') });
  expect(pglite.code).toBe(1);
  expect(pglite.stderr).toContain('is a pg_dump file: restore it with DATABASE_URL set');
  await Bun.write(file, 'plain text');
  const postgres = await cli(['restore', file], { DATABASE_URL: POSTGRES_ADMIN_URL });
  expect(postgres.code).toBe(1);
  expect(postgres.stderr).toContain('is neither a pg_dump custom-format file nor a PGlite dump');
  const usage = await cli(['backup'], { DATABASE_URL: POSTGRES_ADMIN_URL });
  expect(usage.code).toBe(2);
});

test('without the PostgreSQL client tools, a backup says what to install', async () => {
  const bin = join(files, 'bin-without-pg-dump');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'bun'));
  const missing = await cli(['backup', join(files, 'never.dump')], { DATABASE_URL: POSTGRES_ADMIN_URL, PATH: bin });
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('pg_dump was not found: install the PostgreSQL client tools');
});
