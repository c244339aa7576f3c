import { afterAll, describe, expect, test } from 'bun:test';

import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitUntilServing } from '../scripts/lib/processes';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { describeDatabase } from '../src/runtimes/bootstrap';
import { TEST_PASSWORD, testDatabaseUrl, uniqueEmail } from './helpers';
import {
  expectAuthFlow,
  SERVER_TEST_TIMEOUT_MS,
  type ServerProcess,
  START_TIMEOUT_MS,
  spawnProject,
  startServer,
  stopAll,
} from './server-process';

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

/** Starts the Bun entry and resolves with the URL its banner (stderr) names, for log levels with no `listening`. */
async function startWithBanner(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawnProject(['src/runtimes/bun.ts'], { HOST: '127.0.0.1', PORT: '0', ...env });
  // The banner's lines go out together: once its last one (the database) is there, so is the URL.
  const url = await waitUntilServing(
    child,
    {
      line: (line) =>
        line.startsWith('  database ') ? / is listening on (\S+)/.exec(child.stderr.join('\n'))?.[1] : undefined,
    },
    START_TIMEOUT_MS,
  );
  return Object.assign(child, { url });
}

describe('the start banner', () => {
  test('names the database without its password', () => {
    const url = 'postgres://app:s3cret-pw@db.internal:5432/auth?sslmode=require&password=other-pw';
    const named = describeDatabase({ DATABASE_URL: url, PGLITE_DIR: './data' });
    expect(named).toBe('PostgreSQL at postgres://app@db.internal:5432/auth');
    expect(describeDatabase({ DATABASE_URL: undefined, PGLITE_DIR: '/var/lib/hpa' })).toBe(
      'PGlite (embedded) in /var/lib/hpa',
    );
  });

  test(
    'names the URL, /docs and the database on stderr, also at LOG_LEVEL=warn, while stdout stays JSON',
    async () => {
      const database = await scratchDatabase('banner');
      const dir = database.dir as string;
      const server = await startWithBanner({ ...database.env, LOG_LEVEL: 'warn' });
      try {
        const stderr = server.stderr.join('\n');
        expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(stderr).toContain(`  docs       ${server.url}/docs`);
        expect(stderr).toContain(`  database   PGlite (embedded) in ${dir}`);
        expect(stderr).toContain('bun run cli create-admin --email');
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        await server.stop();
        await database.drop();
      }
      for (const line of server.stdout.filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'is not shown at LOG_LEVEL=silent',
    async () => {
      // A port known up front (the process logs nothing to learn it from): one the kernel just handed out.
      const port = freePort();
      const child = spawnProject(['src/runtimes/bun.ts'], {
        ...databaseEnv,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'silent',
      });
      try {
        await waitUntilServing(child, { url: `http://127.0.0.1:${port}` }, START_TIMEOUT_MS);
      } finally {
        await child.stop();
      }
      expect(child.stderr).toEqual([]);
      expect(child.stdout).toEqual([]);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('without SECRET_KEY in development', () => {
  test(
    'signs with a key kept in the data directory, so a token outlives a restart',
    async () => {
      const database = await scratchDatabase('dev_key');
      const dir = database.dir as string;
      // SECRET_KEY empty is unset; NODE_ENV unset is development. The database is PGlite in that directory.
      const env = { ...database.env, SECRET_KEY: '' };
      try {
        let server = await startServer(env);
        const email = await expectAuthFlow(server.url, 'dev-key');
        const res = await fetch(`${server.url}/token`, {
          method: 'POST',
          body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
        });
        const { access_token } = (await res.json()) as { access_token: string };
        await server.stop();
        const key = readFileSync(join(dir, 'dev-secret-key'), 'utf8').trim();
        expect(key.length).toBeGreaterThanOrEqual(32);
        expect(statSync(join(dir, 'dev-secret-key')).mode & 0o777).toBe(0o600);
        expect(server.lines.join('\n')).not.toContain(key);

        server = await startServer(env);
        try {
          const me = await fetch(`${server.url}/users/me`, { headers: { Authorization: `Bearer ${access_token}` } });
          expect(me.status).toBe(200);
        } finally {
          await server.stop();
        }
      } finally {
        await database.drop();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'outside development keeps no key: NODE_ENV=test gets a random one per start',
    async () => {
      const database = await scratchDatabase('test_key');
      try {
        const server = await startServer({ ...database.env, SECRET_KEY: '', NODE_ENV: 'test' });
        await server.stop();
        expect(existsSync(join(database.dir as string, 'dev-secret-key'))).toBe(false);
        expect(server.lines.join('\n')).toContain('tokens will not survive a restart');
      } finally {
        await database.drop();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('the Bun entry with arguments', () => {
  test.each([
    ['--help', 'serve the API'],
    ['--version', 'hono-postgres-auth 0.1.0'],
    ['cli --help', 'usage: bun run cli <command>'],
  ])(
    '`%s` answers on stdout and exits 0',
    async (args, expected) => {
      const child = spawnProject(['src/runtimes/bun.ts', ...args.split(' ')]);
      expect(await child.finished).toBe(0);
      expect(child.stdout.join('\n')).toContain(expected);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'an unknown argument exits 2 with the usage, and starts nothing',
    async () => {
      const child = spawnProject(['src/runtimes/bun.ts', '--port=80']);
      expect(await child.finished).toBe(2);
      expect(child.stderr.join('\n')).toContain('unknown argument: --port=80');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
