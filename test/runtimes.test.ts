/**
 * The Node, Deno and Workers entries as real servers over TCP, on PostgreSQL (a fresh database of this
 * run) and, where the runtime has it, on PGlite; plus bcrypt interoperability: a user registered through
 * one runtime logs in through the others, on one database.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { buildRuntime } from '../scripts/lib/runtimes';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import { POSTGRES_ADMIN_URL, uniqueEmail } from './helpers';
import {
  expectAuthFlow,
  expectDocs,
  expectGracefulStop,
  expectMe,
  login,
  register,
  startServer,
  stopAll,
} from './server-process';

// Four servers start at once in the interoperability test, each seconds of work (Deno compiles the sources,
// wrangler bundles the Worker): on a loaded 2-core machine that is most of a minute.
const TEST_TIMEOUT_MS = 120_000;

let database: ScratchDatabase;
let databaseUrl: string;
const pgliteDirs: ScratchDatabase[] = [];

beforeAll(async () => {
  // Workers cannot migrate (no filesystem); done here once for every server, as the CLI would.
  const [scratch] = await Promise.all([
    scratchDatabase('runtimes', { adminUrl: POSTGRES_ADMIN_URL, migrate: 'in-process' }),
    buildRuntime('node'),
  ]);
  database = scratch;
  databaseUrl = scratch.url as string;
}, TEST_TIMEOUT_MS);

afterAll(async () => {
  await stopAll();
  await Promise.all([database?.drop(), ...pgliteDirs.map((dir) => dir.drop())]);
}, TEST_TIMEOUT_MS);

/** A new, empty PGlite directory for one server, removed after the file. */
async function pgliteDir(name: string): Promise<Record<string, string>> {
  const dir = await scratchDatabase(`runtimes-${name}`);
  pgliteDirs.push(dir);
  return dir.env;
}

describe('each runtime on its own', () => {
  for (const name of ['node', 'deno'] as const) {
    test(
      `${name} on PostgreSQL: register, login, /users/me, docs; exits 0 on SIGTERM`,
      async () => {
        const server = await startServer({ DATABASE_URL: databaseUrl }, name);
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
        const server = await startServer(await pgliteDir(name), name);
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
      const server = await startServer({ DATABASE_URL: databaseUrl }, 'workers');
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
      const server = await startServer({}, 'workers');
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
  test(
    'a user registered through any of Bun, Node, Deno and Workers logs in through every other',
    async () => {
      const env = { DATABASE_URL: databaseUrl };
      const names = ['bun', 'node', 'deno', 'workers'] as const;
      const servers = await Promise.all(names.map((name) => startServer(env, name)));
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
