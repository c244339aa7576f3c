import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_PASSWORD, testDatabaseUrl, uniqueEmail } from './helpers';
import { expectAuthFlow } from './runtime-process';
import { SERVER_TEST_TIMEOUT_MS, spawnProject, startServer } from './server-process';

// On PostgreSQL runs the server shares the suite's fresh database; otherwise it gets its own PGlite directory.
const pgliteDir = mkdtempSync(join(tmpdir(), 'hpa-server-test-'));
const databaseUrl = await testDatabaseUrl();
const databaseEnv = databaseUrl ? { DATABASE_URL: databaseUrl } : { PGLITE_DIR: pgliteDir };

afterAll(() => rmSync(pgliteDir, { recursive: true, force: true }));

describe('the Bun server process', () => {
  test(
    'serves register, login and /users/me over TCP, then exits 0 on SIGTERM',
    async () => {
      const server = await startServer(databaseEnv);
      await expectAuthFlow(server.url, 'tcp');

      server.proc.kill('SIGTERM');
      expect(await server.proc.exited).toBe(0);
      expect(server.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'finishes a request that is in flight when SIGTERM arrives',
    async () => {
      // Cost 14 makes one bcrypt hash take about a second, so the registration is surely in flight.
      const server = await startServer({ ...databaseEnv, BCRYPT_COST: '14' });
      const inFlight = fetch(`${server.url}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: uniqueEmail('inflight'), password: TEST_PASSWORD }),
      });
      await Bun.sleep(300);
      server.proc.kill('SIGTERM');
      expect((await inFlight).status).toBe(201);
      expect(await server.proc.exited).toBe(0);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'refuses a PGlite directory another live process holds',
    async () => {
      const server = await startServer({ PGLITE_DIR: pgliteDir });
      try {
        const second = spawnProject(['src/runtimes/bun.ts'], { PGLITE_DIR: pgliteDir, PORT: '0' });
        expect(await second.exited).toBe(1);
        const stderr = await new Response(second.stderr).text();
        expect(stderr).toContain(`is in use by process ${server.proc.pid}`);
        // The first server is unharmed.
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        server.proc.kill('SIGTERM');
        await server.proc.exited;
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'takes over a lock file left by a process that no longer exists',
    async () => {
      writeFileSync(join(pgliteDir, '.hono-postgres-auth.lock'), '2147483646');
      const server = await startServer({ PGLITE_DIR: pgliteDir });
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      server.proc.kill('SIGTERM');
      expect(await server.proc.exited).toBe(0);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
