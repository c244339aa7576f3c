import { afterAll, describe, expect, test } from 'bun:test';
import { sql } from 'drizzle-orm';
import { createPostgresDb } from '../src/db/client-postgres';
import { rowsOf } from '../src/db/rows';
import type { PasswordHasher } from '../src/hashing/hasher';
import { createLogger } from '../src/lib/logger';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  loginAs,
  loginAsAdmin,
  postJson,
  TEST_PASSWORD,
  uniqueEmail,
} from './helpers';

const { app, deps, clock } = await createTestApp();
const { app: smallBodyApp } = await createTestApp({ env: { BODY_LIMIT_BYTES: '2048' } });

// A real postgres.js client aimed at a closed port: the database is "down" without mocking anything.
const unreachable = createPostgresDb('postgres://postgres@127.0.0.1:1/postgres', { max: 1 });
// The same clock as `app`, so a token issued there is current here too.
const { app: dbDownApp } = await createTestApp({ db: unreachable.db, clock });
// Finding the database down is a refused connection, which postgres.js takes seconds to give up on when the
// machine is loaded (up to 2.4 s seen): its tests get room beyond bun's default 5 s.
const DATABASE_DOWN_TIMEOUT_MS = 20_000;
afterAll(() => unreachable.close());

const oversized = (bytes: number) => ({ email: uniqueEmail(), password: 'x'.repeat(bytes) });

describe('problem+json responses', () => {
  test('answers an unknown path with 404 problem+json', async () => {
    const res = await app.request('/no/such/thing');
    const problem = await expectProblem(res, 404);
    expect(problem).toMatchObject({ type: 'about:blank', title: 'Not Found' });
  });

  test('answers a wrong method with 405 problem+json and an Allow header', async () => {
    const res = await app.request('/register');
    await expectProblem(res, 405);
    expect(res.headers.get('Allow')).toBe('POST');
  });

  test('lists GET and HEAD in Allow for a read-only path', async () => {
    const res = await app.request('/welcome', { method: 'DELETE' });
    await expectProblem(res, 405);
    expect(res.headers.get('Allow')?.split(', ')).toEqual(['GET', 'HEAD']);
  });

  test('answers malformed JSON with 400 problem+json', async () => {
    const res = await postJson(app, '/register', '{"email": "a@b.co", "password":');
    await expectProblem(res, 400);
  });

  test('answers a text/plain body with 415 problem+json', async () => {
    const res = await app.request('/register', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: JSON.stringify({ email: uniqueEmail(), password: TEST_PASSWORD }),
    });
    await expectProblem(res, 415);
  });

  test('answers a body without a content type with 415 problem+json', async () => {
    const res = await app.request('/register', {
      method: 'POST',
      body: JSON.stringify({ email: uniqueEmail(), password: TEST_PASSWORD }),
    });
    await expectProblem(res, 415);
  });

  test('accepts JSON with a charset parameter', async () => {
    const res = await postJson(
      app,
      '/register',
      { email: uniqueEmail(), password: TEST_PASSWORD },
      { 'Content-Type': 'application/json; charset=utf-8' },
    );
    expect(res.status).toBe(201);
  });
});

describe('422 validation problems', () => {
  test('name each missing field with a JSON pointer', async () => {
    const res = await postJson(app, '/register', {});
    const problem = await expectProblem(res, 422);
    expect(problem.type).toBe('/problems/validation');
    expect(problem.errors).toEqual([
      { pointer: '#/email', detail: 'Field is required' },
      { pointer: '#/password', detail: 'Field is required' },
    ]);
  });

  test('describe a field of the wrong type as such, not as missing', async () => {
    const res = await postJson(app, '/register', { email: 42, password: TEST_PASSWORD });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/email']);
    expect(problem.errors?.[0]?.detail).not.toBe('Field is required');
    expect(problem.errors?.[0]?.detail).toContain('string');
  });

  test('put a single field error in detail, prefixed with the field name', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: 'short' });
    const problem = await expectProblem(res, 422);
    expect(problem.detail).toStartWith('password: ');
  });

  test('point at the whole document when the body is not an object', async () => {
    const res = await postJson(app, '/register', [uniqueEmail(), TEST_PASSWORD]);
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#']);
    expect(problem.errors?.[0]?.detail).not.toBe('Field is required');
  });

  test('reject a JSON null body with 422, not 500', async () => {
    await expectProblem(await postJson(app, '/register', 'null'), 422);
  });

  test('reject a NUL character in the email', async () => {
    const res = await postJson(app, '/register', { email: `${uniqueEmail()}\u0000`, password: TEST_PASSWORD });
    const problem = await expectProblem(res, 422);
    expect(problem.errors?.map((e) => e.pointer)).toEqual(['#/email']);
  });
});

describe('body size limit', () => {
  test('answers a body past the default 64 KiB with 413 problem+json', async () => {
    const res = await postJson(app, '/register', oversized(65 * 1024));
    await expectProblem(res, 413);
  });

  test('honours a lower BODY_LIMIT_BYTES', async () => {
    const res = await postJson(smallBodyApp, '/register', oversized(3000));
    const problem = await expectProblem(res, 413);
    expect(problem.detail).toContain('2048');
  });

  test('lets a body under the lower limit through to validation', async () => {
    const res = await postJson(smallBodyApp, '/register', oversized(1000));
    await expectProblem(res, 422);
  });

  test('counts a streamed body without Content-Length too', async () => {
    const body = new TextEncoder().encode(JSON.stringify(oversized(3000)));
    const res = await smallBodyApp.request('/register', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(body);
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    await expectProblem(res, 413);
  });

  test('applies to the login form as well', async () => {
    const res = await smallBodyApp.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: uniqueEmail(), password: 'x'.repeat(3000) }),
    });
    await expectProblem(res, 413);
  });
});

describe('query parameters', () => {
  test('ignores unknown query parameters on a POST', async () => {
    const res = await postJson(app, '/register?debug=true&role=admin', {
      email: uniqueEmail(),
      password: TEST_PASSWORD,
    });
    expect(res.status).toBe(201);
    expect((await json(res)).role).toBe('user');
  });

  test('refuses a NUL in the admin email filter with 422, not 500 (PostgreSQL text cannot hold it)', async () => {
    // Regression, found by test/fuzz.test.ts: GET /users?email=%00 reached ILIKE.
    const admin = await loginAsAdmin(app, deps);
    const res = await app.request('/users?email=a%00b', { headers: bearer(admin.token) });
    expect((await expectProblem(res, 422)).errors?.map((e) => e.pointer)).toEqual(['#/email']);
  });

  test('ignores unknown query parameters on a GET', async () => {
    const { token } = await loginAs(app);
    const res = await app.request('/users/me?expand=everything', { headers: bearer(token) });
    expect(res.status).toBe(200);
  });
});

describe('headers on every response', () => {
  type Send = (headers: Record<string, string>) => Response | Promise<Response>;
  const cases: [string, Send][] = [
    ['200', (headers) => app.request('/health', { headers })],
    ['201', (headers) => postJson(app, '/register', { email: uniqueEmail(), password: TEST_PASSWORD }, headers)],
    ['400', (headers) => postJson(app, '/register', '{', headers)],
    ['401', (headers) => app.request('/users/me', { headers })],
    ['404', (headers) => app.request('/nope', { headers })],
    ['405', (headers) => app.request('/token', { headers })],
    ['413', (headers) => postJson(smallBodyApp, '/register', oversized(3000), headers)],
    ['415', (headers) => app.request('/register', { method: 'POST', body: 'x', headers })],
    ['422', (headers) => postJson(app, '/register', {}, headers)],
    ['503', (headers) => dbDownApp.request('/ready', { headers })],
  ];

  test.each(cases)(
    'a %s carries X-Content-Type-Options: nosniff',
    async (status, send) => {
      const res = await send({});
      expect(String(res.status)).toBe(status);
      expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff');
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );

  test.each(cases)(
    'a %s carries a generated X-Request-Id when none was sent',
    async (status, send) => {
      const res = await send({});
      expect(String(res.status)).toBe(status);
      expect(res.headers.get('X-Request-Id')).toMatch(/^[\w-]{8,255}$/);
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );

  test.each(cases)(
    'a %s echoes a sane X-Request-Id',
    async (status, send) => {
      const id = `req-${crypto.randomUUID()}`;
      const res = await send({ 'X-Request-Id': id });
      expect(String(res.status)).toBe(status);
      expect(res.headers.get('X-Request-Id')).toBe(id);
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );

  test('replaces an X-Request-Id containing spaces', async () => {
    const res = await app.request('/health', { headers: { 'X-Request-Id': 'two words' } });
    const id = res.headers.get('X-Request-Id');
    expect(id).toMatch(/^[\w-]{8,255}$/);
  });

  test('replaces an X-Request-Id of 300 characters', async () => {
    const res = await app.request('/health', { headers: { 'X-Request-Id': 'a'.repeat(300) } });
    const id = res.headers.get('X-Request-Id');
    expect(id).toMatch(/^[\w-]{8,255}$/);
    expect(id).not.toBe('a'.repeat(300));
  });
});

describe('unexpected errors', () => {
  const failingHasher: PasswordHasher = {
    hash: async () => {
      throw new Error('secret internal detail');
    },
    verify: async () => false,
  };

  test('answer 500 problem+json without the error message', async () => {
    const { app: failing } = await createTestApp({ hasher: failingHasher });
    const res = await postJson(failing, '/register', { email: uniqueEmail(), password: TEST_PASSWORD });
    const text = await res.clone().text();
    await expectProblem(res, 500);
    expect(text).not.toContain('secret internal detail');
    expect(text).not.toMatch(/\.ts:\d+/); // no stack frames
  });

  test('are logged with the request id', async () => {
    const lines: string[] = [];
    const logger = createLogger('error', (line) => lines.push(line));
    const { app: failing } = await createTestApp({ hasher: failingHasher, logger });
    const res = await postJson(
      failing,
      '/register',
      { email: uniqueEmail(), password: TEST_PASSWORD },
      { 'X-Request-Id': 'trace-500' },
    );
    await expectProblem(res, 500);
    expect(res.headers.get('X-Request-Id')).toBe('trace-500');
    const logged = lines.map((line) => JSON.parse(line)).filter((entry) => entry.requestId === 'trace-500');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'error' });
    // The frames say where it failed; the message stays out of the log, since messages can carry input.
    expect(logged[0].stack).toContain('errors.test.ts');
    expect(JSON.stringify(logged[0])).not.toContain('secret internal detail');
  });
});

describe('database down', () => {
  test(
    'answers a request that needs the database with 503 problem+json and Retry-After',
    async () => {
      const res = await postJson(dbDownApp, '/register', { email: uniqueEmail(), password: TEST_PASSWORD });
      await expectProblem(res, 503, 'database-unavailable');
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(0);
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );

  test(
    'answers a bearer request with 503, not 401 or 500',
    async () => {
      const { token } = await loginAs(app);
      const res = await dbDownApp.request('/users/me', { headers: bearer(token) });
      await expectProblem(res, 503, 'database-unavailable');
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );
});

describe('GET /health', () => {
  test('answers 200 {status: "ok"}', async () => {
    const res = await app.request('/health');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  test(
    'answers 200 even when the database is down: it makes no database call',
    async () => {
      const res = await dbDownApp.request('/health');
      expect(res.status).toBe(200);
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );
});

describe('GET /ready', () => {
  test('answers 200 when the database answers and migrations are current', async () => {
    const res = await app.request('/ready');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  test(
    'answers 503 problem+json with Retry-After when the database is unreachable',
    async () => {
      const res = await dbDownApp.request('/ready');
      await expectProblem(res, 503, 'database-unavailable');
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(0);
    },
    DATABASE_DOWN_TIMEOUT_MS,
  );

  test('answers 503 problem+json when the newest migration is not applied', async () => {
    const removed = rowsOf<{ id: number; hash: string; created_at: string }>(
      await deps.db.execute(sql`
        delete from drizzle.__drizzle_migrations
        where created_at = (select max(created_at) from drizzle.__drizzle_migrations)
        returning id, hash, created_at::text as created_at`),
    );
    expect(removed).toHaveLength(1);
    try {
      const res = await app.request('/ready');
      await expectProblem(res, 503, 'migrations-pending');
      expect(res.headers.get('Retry-After')).toBeString();
    } finally {
      for (const row of removed) {
        await deps.db.execute(sql`
          insert into drizzle.__drizzle_migrations (id, hash, created_at)
          values (${row.id}, ${row.hash}, ${row.created_at}::bigint)`);
      }
    }
    expect((await app.request('/ready')).status).toBe(200);
  });
});
