/**
 * The single executable (`bun run build:binary`): copied alone into an empty directory, it must serve
 * everything from what it carries (migrations, docs assets, PGlite, the bcrypt worker), then stop cleanly.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBinary } from '../scripts/build-binary';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { runCommand, TEST_DATABASE_URL } from './helpers';
import {
  expectAuthFlow,
  expectDocs,
  SERVER_TEST_TIMEOUT_MS,
  type ServerProcess,
  startExecutable,
  stopAll,
} from './server-process';

const BUILD_TIMEOUT_MS = 180_000; // bun build --compile of the whole app, its worker and PGlite's WASM
const BINARY = 'hono-postgres-auth';

const buildDir = mkdtempSync(join(tmpdir(), 'hpa-binary-build-'));
const runDir = mkdtempSync(join(tmpdir(), 'hpa-binary-run-'));

beforeAll(async () => {
  await buildBinary(join(buildDir, BINARY));
  expect(readdirSync(runDir)).toEqual([]);
  copyFileSync(join(buildDir, BINARY), join(runDir, BINARY));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await stopAll();
  rmSync(buildDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}, SERVER_TEST_TIMEOUT_MS);

/** Runs the copied binary in its otherwise empty directory, with nothing but the environment given. */
const startBinary = (env: Record<string, string>) => startExecutable([join(runDir, BINARY)], runDir, env);

async function expectServesEverything(server: ServerProcess) {
  expect((await fetch(`${server.url}/health`)).status).toBe(200);
  expect((await fetch(`${server.url}/ready`)).status).toBe(200); // every embedded migration applied
  await expectAuthFlow(server.url, 'binary');
  await expectDocs(server.url);
}

describe('the single binary, alone in an empty directory', () => {
  test(
    'on PGlite in that directory: migrates, serves the API and the docs, exits 0 on SIGTERM',
    async () => {
      const server = await startBinary({ PGLITE_DIR: join(runDir, 'data') });
      try {
        expect(server.lines.join('\n')).toContain('"database":"pglite"');
        await expectServesEverything(server);
      } finally {
        expect(await server.stop()).toBe(0);
      }
      expect(server.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test.skipIf(!TEST_DATABASE_URL)(
    'on PostgreSQL (TEST_DATABASE_URL): migrates a fresh database, serves the API and the docs, exits 0',
    async () => {
      const database = await scratchDatabase('binary', { adminUrl: TEST_DATABASE_URL });
      try {
        const server = await startBinary(database.env);
        try {
          expect(server.lines.join('\n')).toContain('"database":"postgres"');
          await expectServesEverything(server);
        } finally {
          expect(await server.stop()).toBe(0);
        }
      } finally {
        await database.drop();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('the single binary carries the CLI', () => {
  /** Runs the copied binary to completion in its directory, with `input` on stdin. */
  const runBinary = (args: string[], env: Record<string, string> = {}, input?: string) =>
    runCommand([join(runDir, BINARY), ...args], { cwd: runDir, env: { BCRYPT_COST: '4', ...env }, input });

  test.each([
    ['--help', 'cli <command>'],
    ['--version', 'hono-postgres-auth 0.1.0'],
    ['cli --help', `usage: ${join(runDir, BINARY)} cli <command>`],
  ])(
    '`%s` answers and exits 0, starting no server',
    async (args, expected) => {
      const { code, stdout } = await runBinary(args.split(' '));
      expect(code).toBe(0);
      expect(stdout).toContain(expected);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'cli migrate, status and create-admin work on a new PGlite directory, with the embedded migrations',
    async () => {
      const env = { PGLITE_DIR: join(runDir, 'cli-data') };
      const unmigrated = await runBinary(
        ['cli', 'create-admin', '--email', 'root@example.com'],
        env,
        'a long admin passphrase\n',
      );
      expect(unmigrated.code).toBe(1);
      expect(unmigrated.stderr).toContain(`run \`${join(runDir, BINARY)} cli migrate\` first`);
      expect((await runBinary(['cli', 'migrate'], env)).stdout).toContain('applied 0000_init');
      expect((await runBinary(['cli', 'status'], env)).stdout).toContain('up to date');
      const created = await runBinary(
        ['cli', 'create-admin', '--email', 'root@example.com'],
        env,
        'a long admin passphrase\n',
      );
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
      expect(created.stdout).toContain('created admin root@example.com');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
