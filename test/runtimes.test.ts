/**
 * The Node, Deno and Workers entries as real servers over TCP, on PostgreSQL (a fresh database of this
 * run) and, where the runtime has it, on PGlite; plus bcrypt interoperability: a user registered through
 * one runtime logs in through the others, on one database.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, RUNTIMES } from '../scripts/runtimes';
import { createPostgresClient, createPostgresDb } from '../src/db/client-postgres';
import { runMigrations } from '../src/db/migrate';
import { uniqueEmail } from './helpers';
import {
  expectAuthFlow,
  expectDocs,
  expectMe,
  listeningLine,
  login,
  PROCESS_SECRET_KEY,
  PROJECT_ROOT,
  type RuntimeProcess,
  register,
  startProcess,
} from './runtime-process';

const ADMIN_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const START_TIMEOUT_MS = 60_000; // a fresh PGlite directory alone takes ~5 s; Deno compiles the sources once
const TEST_TIMEOUT_MS = 120_000;

const commonEnv = { SECRET_KEY: PROCESS_SECRET_KEY, BCRYPT_COST: '4', LOG_LEVEL: 'info', HOST: '127.0.0.1' };
const databaseName = `hpa_runtimes_${process.pid}_${Date.now().toString(36)}`;
const admin = createPostgresClient(ADMIN_URL, 1);
let databaseUrl: string;
const pgliteDir = mkdtempSync(join(tmpdir(), 'hpa-runtimes-'));

beforeAll(async () => {
  await admin.unsafe(`create database "${databaseName}"`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.href;
  // Workers cannot migrate (no filesystem); the CLI's job, done here once for every server.
  const handle = createPostgresDb(databaseUrl);
  await runMigrations(handle);
  await handle.close();
  const build = Bun.spawnSync(RUNTIMES.node.build, { cwd: PROJECT_ROOT, stderr: 'pipe' });
  if (build.exitCode !== 0) throw new Error(`bun run build:node failed: ${build.stderr.toString()}`);
}, TEST_TIMEOUT_MS);

afterAll(async () => {
  await admin.unsafe(`drop database if exists "${databaseName}" with (force)`);
  await admin.end();
  rmSync(pgliteDir, { recursive: true, force: true });
});

/** A server entry that logs its own `listening` URL (Bun, Node, Deno), on a port it picks itself. */
const startEntry = (name: 'bun' | 'node' | 'deno') => (env: Record<string, string>) =>
  startProcess(name, RUNTIMES[name].command, {
    env: { ...commonEnv, PORT: '0', ...env },
    ready: { line: listeningLine },
    timeoutMs: START_TIMEOUT_MS,
  });
const startBun = startEntry('bun');
const startNode = startEntry('node');
const startDeno = startEntry('deno');

async function startWorkers(env: Record<string, string>) {
  const port = freePort();
  return startProcess('workers', RUNTIMES.workers.command, {
    env: { ...commonEnv, PORT: String(port), ...env },
    ready: { url: `http://127.0.0.1:${port}` },
    timeoutMs: START_TIMEOUT_MS,
  });
}

async function expectGracefulStop(server: RuntimeProcess) {
  expect(await server.stop()).toBe(0);
  expect(server.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
}

describe('each runtime on its own', () => {
  for (const [name, start] of [
    ['node', startNode],
    ['deno', startDeno],
  ] as const) {
    test(
      `${name} on PostgreSQL: register, login, /users/me, docs; exits 0 on SIGTERM`,
      async () => {
        const server = await start({ DATABASE_URL: databaseUrl });
        try {
          expect(server.lines.join('\n')).toContain('"database":"postgres"');
          await expectAuthFlow(server.url, `${name}-pg`);
          await expectDocs(server.url);
        } finally {
          await expectGracefulStop(server);
        }
      },
      TEST_TIMEOUT_MS,
    );

    test(
      `${name} on PGlite: migrates a new directory, register, login, /users/me, docs`,
      async () => {
        const server = await start({ PGLITE_DIR: join(pgliteDir, name) });
        try {
          expect(server.lines.join('\n')).toContain('"database":"pglite"');
          expect((await fetch(`${server.url}/ready`)).status).toBe(200);
          await expectAuthFlow(server.url, `${name}-pglite`);
          await expectDocs(server.url);
        } finally {
          await expectGracefulStop(server);
        }
      },
      TEST_TIMEOUT_MS,
    );
  }

  test(
    'workers under wrangler dev --local on PostgreSQL: register, login, /users/me, docs from static assets',
    async () => {
      const server = await startWorkers({ DATABASE_URL: databaseUrl });
      try {
        expect((await fetch(`${server.url}/ready`)).status).toBe(200);
        await expectAuthFlow(server.url, 'workers');
        await expectDocs(server.url);
      } finally {
        await server.stop({ group: true });
      }
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'workers without a database answer 503 problem+json saying so',
    async () => {
      const server = await startWorkers({});
      try {
        const res = await fetch(`${server.url}/users/me`);
        expect(res.status).toBe(503);
        expect(res.headers.get('Content-Type')).toStartWith('application/problem+json');
        const problem = (await res.json()) as { type: string; detail: string };
        expect(problem.type).toBe('/problems/not-configured');
        expect(problem.detail).toContain('DATABASE_URL'); // it names what to set
      } finally {
        await server.stop({ group: true });
      }
    },
    TEST_TIMEOUT_MS,
  );
});

describe('bcrypt hashes interoperate between runtimes on one database', () => {
  const servers: RuntimeProcess[] = [];

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop({ group: true })));
  });

  test(
    'a user registered through any of Bun, Node, Deno and Workers logs in through every other',
    async () => {
      const env = { DATABASE_URL: databaseUrl };
      servers.push(...(await Promise.all([startBun(env), startNode(env), startDeno(env), startWorkers(env)])));
      const failures: string[] = [];
      for (const origin of servers) {
        const email = uniqueEmail(`interop-${origin.name}`);
        await register(origin.url, email);
        for (const other of servers) {
          try {
            await expectMe(other.url, await login(other.url, email), email);
          } catch (error) {
            failures.push(`registered on ${origin.name}, login on ${other.name}: ${String(error)}`);
          }
        }
      }
      expect(failures).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
