import { afterAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { TEST_PASSWORD, testDatabaseUrl, uniqueEmail } from './helpers';
import { expectAuthFlow, SERVER_TEST_TIMEOUT_MS, spawnProject, startServer, stopAll } from './server-process';

// On PostgreSQL runs the server shares the suite's fresh database; otherwise it gets its own PGlite directory.
const pglite = await scratchDatabase('server_test');
const pgliteDir = pglite.dir as string;
const databaseUrl = await testDatabaseUrl();
const databaseEnv = databaseUrl ? { DATABASE_URL: databaseUrl } : pglite.env;

afterAll(async () => {
  await stopAll();
  await pglite.drop();
}, SERVER_TEST_TIMEOUT_MS);

/**
 * A registration whose headers the server has read (it answered `100 Continue`) and whose body it is still
 * waiting for: in flight, however fast or slow the machine is. `finish()` sends the body and resolves with
 * the status line's code.
 */
async function registrationInFlight(url: string, email: string) {
  const body = JSON.stringify({ email, password: TEST_PASSWORD });
  const { hostname, port } = new URL(url);
  let received = '';
  const continued = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_, chunk) {
        received += chunk.toString();
        if (received.startsWith('HTTP/1.1 100')) continued.resolve();
      },
      close: () => closed.resolve(),
      error: (_, error) => closed.reject(error),
    },
  });
  socket.write(
    `POST /register HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
  );
  await continued.promise;
  return {
    async finish(): Promise<number> {
      socket.write(body);
      await closed.promise;
      const final = received.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
      return Number(/^HTTP\/1\.1 (\d{3})/.exec(final)?.[1]);
    },
  };
}

describe('the Bun server process', () => {
  test(
    'serves register, login and /users/me over TCP, then exits 0 on SIGTERM',
    async () => {
      const server = await startServer(databaseEnv);
      await expectAuthFlow(server.url, 'tcp');
      expect(await server.stop()).toBe(0);
      expect(server.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'finishes a request that is in flight when SIGTERM arrives',
    async () => {
      const server = await startServer(databaseEnv);
      const inFlight = await registrationInFlight(server.url, uniqueEmail('inflight'));
      const stopped = server.stop();
      expect(await inFlight.finish()).toBe(201);
      expect(await stopped).toBe(0);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'refuses a PGlite directory another live process holds',
    async () => {
      const server = await startServer({ PGLITE_DIR: pgliteDir });
      try {
        const second = spawnProject(['src/runtimes/bun.ts'], { PGLITE_DIR: pgliteDir, PORT: '0' });
        expect(await second.finished).toBe(1);
        expect(second.stderr.join('\n')).toContain(`is in use by process ${server.proc.pid}`);
        // The first server is unharmed.
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        await server.stop();
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
      expect(await server.stop()).toBe(0);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
