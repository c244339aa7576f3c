/**
 * The first admin of a service on the embedded database, created while it runs: the service holds the
 * PGlite directory, so `create-admin` goes through POST /bootstrap/admin with the one-time token the
 * service left in that directory. A real server process and the real CLI, on a directory of their own.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_BOOTSTRAP_FILE, readAdminBootstrapFile } from '../src/db/data-dir';
import { openAdminBootstrap } from '../src/services/admin-bootstrap';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  login,
  loginAsAdmin,
  postJson,
  TEST_BASE_URL,
  uniqueEmail,
} from './helpers';
import { runCli, SERVER_TEST_TIMEOUT_MS, type ServerProcess, startServer } from './server-process';

const PASSWORD = 'the first admin passphrase';
// The test database is made before the first test, not inside it (that takes seconds on PGlite).
const withoutBootstrap = await createTestApp({ env: {} });

describe('POST /bootstrap/admin (in process)', () => {
  test('answers 403 to a wrong token and when the service opened no bootstrap', async () => {
    const { bootstrap } = await openAdminBootstrap();
    const { app } = await createTestApp({ adminBootstrap: bootstrap });
    const body = { token: 'not-the-token', email: uniqueEmail('boot'), password: PASSWORD };
    await expectProblem(await postJson(app, '/bootstrap/admin', body), 403, 'invalid-bootstrap-token');
    await expectProblem(await postJson(withoutBootstrap.app, '/bootstrap/admin', body), 403, 'invalid-bootstrap-token');
    expect(bootstrap.open).toBe(true); // a wrong token spends nothing
  });

  test('refuses with 409 once an admin exists, and the token is spent by that', async () => {
    const { token, bootstrap } = await openAdminBootstrap();
    const { app, deps } = await createTestApp({ adminBootstrap: bootstrap });
    await loginAsAdmin(app, deps);
    const body = { token, email: uniqueEmail('boot'), password: PASSWORD };
    await expectProblem(await postJson(app, '/bootstrap/admin', body), 409, 'admin-exists');
    expect(bootstrap.open).toBe(false);
    await expectProblem(await postJson(app, '/bootstrap/admin', body), 403, 'invalid-bootstrap-token');
    expect((await login(app, body.email, PASSWORD)).status).toBe(401); // nobody was created
  });

  test('applies the password policy of registration (422) without spending the token', async () => {
    const { token, bootstrap } = await openAdminBootstrap();
    const { app } = await createTestApp({ adminBootstrap: bootstrap });
    const res = await postJson(app, '/bootstrap/admin', { token, email: uniqueEmail('boot'), password: 'password' });
    await expectProblem(res, 422, 'validation');
    expect(bootstrap.open).toBe(true);
  });

  test('closing runs onClose once', async () => {
    let closed = 0;
    const { bootstrap } = await openAdminBootstrap({ onClose: () => closed++ });
    bootstrap.close();
    bootstrap.close();
    expect({ open: bootstrap.open, closed }).toEqual({ open: false, closed: 1 });
  });
});

// A server process of its own: not against a remote server under test.
describe.skipIf(TEST_BASE_URL !== undefined)('create-admin while the service runs on PGlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hpa-first-admin-'));
  const env = { PGLITE_DIR: dir, BCRYPT_COST: '4' };
  const email = uniqueEmail('first-admin');
  let server: ServerProcess | undefined;

  afterAll(async () => {
    server?.proc.kill('SIGTERM');
    await server?.proc.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    'the service starts with no admin and leaves a token only its user can read, never logging it',
    async () => {
      server = await startServer(env);
      const file = readAdminBootstrapFile(dir);
      expect(file).toMatchObject({ url: server.url, pid: server.proc.pid });
      expect(file?.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits, base64url
      expect(statSync(join(dir, ADMIN_BOOTSTRAP_FILE)).mode & 0o777).toBe(0o600);
      expect(server.lines.join('\n')).not.toContain(file?.token);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'create-admin goes through the running service, which spends the token and removes the file',
    async () => {
      const { code, stdout, stderr } = await runCli(['create-admin', '--email', email], env, `${PASSWORD}\n`);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toContain(`created admin ${email}`);
      expect(stdout).toContain('through the running service');
      expect(readAdminBootstrapFile(dir)).toBeNull();
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'the new admin logs in, and the audit log records the bootstrap by the CLI',
    async () => {
      const url = server?.url as string;
      const res = await fetch(`${url}/token`, {
        method: 'POST',
        body: new URLSearchParams({ username: email, password: PASSWORD }),
      });
      const { access_token } = (await res.json()) as { access_token: string };
      const me = await json(await fetch(`${url}/users/me`, { headers: bearer(access_token) }));
      expect(me.role).toBe('admin');
      const audit = await fetch(`${url}/audit?user_id=${me.id}`, { headers: bearer(access_token) });
      const { items } = await json<{ items: { event: string; details: unknown; user_agent: string }[] }>(audit);
      expect(items.find((item) => item.event === 'register')).toMatchObject({
        details: { role: 'admin', bootstrap: true },
        user_agent: 'hono-postgres-auth cli',
      });
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'a second create-admin explains that an admin exists, and creates nobody',
    async () => {
      const second = uniqueEmail('second-admin');
      const { code, stderr } = await runCli(['create-admin', '--email', second], env, `${PASSWORD}\n`);
      expect(code).toBe(1);
      expect(stderr).toContain('an admin exists already');
      expect(stderr).not.toContain(PASSWORD);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'a restart with an admin opens no bootstrap',
    async () => {
      server?.proc.kill('SIGTERM');
      expect(await server?.proc.exited).toBe(0);
      server = await startServer(env);
      expect(readAdminBootstrapFile(dir)).toBeNull();
      await expectProblem(
        await fetch(`${server.url}/bootstrap/admin`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ token: 'x', email: uniqueEmail('late'), password: PASSWORD }),
        }),
        403,
        'invalid-bootstrap-token',
      );
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
