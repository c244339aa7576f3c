import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeDatabase } from '../src/runtimes/bootstrap';
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

/** Starts the Bun entry and resolves with the URL its banner (stderr) names, for log levels with no `listening`. */
async function startWithBanner(env: Record<string, string>) {
  const proc = spawnProject(['src/runtimes/bun.ts'], { HOST: '127.0.0.1', PORT: '0', BCRYPT_COST: '4', ...env });
  let stderr = '';
  const decoder = new TextDecoder();
  for await (const chunk of proc.stderr) {
    stderr += decoder.decode(chunk, { stream: true });
    const url = / is listening on (\S+)\n/.exec(stderr)?.[1];
    if (url && stderr.includes('  database ')) return { proc, url, stderr: () => stderr };
  }
  throw new Error(`exited before its banner: ${stderr}`);
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
      const dir = mkdtempSync(join(tmpdir(), 'hpa-banner-'));
      const server = await startWithBanner({ PGLITE_DIR: dir, LOG_LEVEL: 'warn' });
      try {
        expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(server.stderr()).toContain(`  docs       ${server.url}/docs`);
        expect(server.stderr()).toContain(`  database   PGlite (embedded) in ${dir}`);
        expect(server.stderr()).toContain('bun run cli create-admin --email');
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
      } finally {
        server.proc.kill('SIGTERM');
        await server.proc.exited;
        rmSync(dir, { recursive: true, force: true });
      }
      const stdout = await new Response(server.proc.stdout).text();
      for (const line of stdout.trim().split('\n').filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'is not shown at LOG_LEVEL=silent',
    async () => {
      // A port known up front (the process logs nothing to learn it from): one the kernel just handed out.
      const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
      const port = probe.port;
      probe.stop(true);
      const proc = spawnProject(['src/runtimes/bun.ts'], {
        ...databaseEnv,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'silent',
      });
      try {
        let up = false;
        for (let i = 0; i < 300 && !up && proc.exitCode === null; i++) {
          up = await fetch(`http://127.0.0.1:${port}/health`).then(
            (r) => r.ok,
            () => false,
          );
          if (!up) await Bun.sleep(100);
        }
        expect(up).toBe(true);
      } finally {
        proc.kill('SIGTERM');
        await proc.exited;
      }
      expect(await new Response(proc.stderr).text()).toBe('');
      expect(await new Response(proc.stdout).text()).toBe('');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('without SECRET_KEY in development', () => {
  test(
    'signs with a key kept in the data directory, so a token outlives a restart',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hpa-dev-key-'));
      // SECRET_KEY empty is unset; NODE_ENV unset is development. The database is PGlite in that directory.
      const env = { PGLITE_DIR: dir, SECRET_KEY: '' };
      try {
        let server = await startServer(env);
        const email = await expectAuthFlow(server.url, 'dev-key');
        const res = await fetch(`${server.url}/token`, {
          method: 'POST',
          body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
        });
        const { access_token } = (await res.json()) as { access_token: string };
        server.proc.kill('SIGTERM');
        await server.proc.exited;
        const key = readFileSync(join(dir, 'dev-secret-key'), 'utf8').trim();
        expect(key.length).toBeGreaterThanOrEqual(32);
        expect(statSync(join(dir, 'dev-secret-key')).mode & 0o777).toBe(0o600);
        expect(server.lines.join('\n')).not.toContain(key);

        server = await startServer(env);
        try {
          const me = await fetch(`${server.url}/users/me`, { headers: { Authorization: `Bearer ${access_token}` } });
          expect(me.status).toBe(200);
        } finally {
          server.proc.kill('SIGTERM');
          await server.proc.exited;
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'outside development keeps no key: NODE_ENV=test gets a random one per start',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hpa-test-key-'));
      try {
        const server = await startServer({ PGLITE_DIR: dir, SECRET_KEY: '', NODE_ENV: 'test' });
        server.proc.kill('SIGTERM');
        await server.proc.exited;
        expect(existsSync(join(dir, 'dev-secret-key'))).toBe(false);
        expect(server.lines.join('\n')).toContain('tokens will not survive a restart');
      } finally {
        rmSync(dir, { recursive: true, force: true });
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
      const proc = spawnProject(['src/runtimes/bun.ts', ...args.split(' ')]);
      expect(await proc.exited).toBe(0);
      expect(await new Response(proc.stdout).text()).toContain(expected);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'an unknown argument exits 2 with the usage, and starts nothing',
    async () => {
      const proc = spawnProject(['src/runtimes/bun.ts', '--port=80']);
      expect(await proc.exited).toBe(2);
      expect(await new Response(proc.stderr).text()).toContain('unknown argument: --port=80');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
