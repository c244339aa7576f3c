/**
 * The PGlite data directory's lock (src/db/client-pglite.ts): one process per directory, also across pid
 * namespaces (containers), where every main process is pid 1. Real files; real server processes in their
 * own pid namespaces (`unshare --pid --fork`, which needs root or user namespaces).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireDirLock, DataDirLockedError } from '../src/db/client-pglite';
import { TEST_SECRET_KEY } from './helpers';
import { SERVER_TEST_TIMEOUT_MS } from './server-process';

const PROJECT_ROOT = new URL('..', import.meta.url).pathname;
const LOCK_FILE = '.hono-postgres-auth.lock';
const TIMINGS = { heartbeatMs: 50, staleMs: 600 };
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hpa-lock-test-'));
  dirs.push(dir);
  return dir;
}

/** A lock as a process in another container or on another machine writes it: nothing here can check its pid. */
function writeForeignLock(dir: string, ageMs = 0): string {
  const path = join(dir, LOCK_FILE);
  const record = {
    instance: crypto.randomUUID(),
    pid: 1,
    host: 'another-container',
    bootId: 'not-this-boot',
    pidNamespace: 'pid:[1]',
    startedAt: new Date().toISOString(),
  };
  writeFileSync(path, `${JSON.stringify(record)}\n`);
  const at = new Date(Date.now() - ageMs);
  utimesSync(path, at, at);
  return path;
}

async function lockError(dir: string): Promise<DataDirLockedError> {
  try {
    const release = await acquireDirLock(dir, TIMINGS);
    release();
  } catch (error) {
    if (error instanceof DataDirLockedError) return error;
    throw error;
  }
  throw new Error(`the lock on ${dir} was granted`);
}

describe('the data directory lock', () => {
  test('refuses a lock whose holder in another namespace keeps its heartbeat going, naming it', async () => {
    const dir = freshDir();
    const path = writeForeignLock(dir);
    const beating = setInterval(() => utimesSync(path, new Date(), new Date()), TIMINGS.heartbeatMs);
    try {
      const error = await lockError(dir);
      expect(error.message).toContain('is in use by process 1 on another-container');
      expect(error.message).toContain('another container');
    } finally {
      clearInterval(beating);
    }
  });

  test('takes over a lock whose heartbeat stopped longer ago than the stale time', async () => {
    const dir = freshDir();
    const path = writeForeignLock(dir, 10_000);
    const release = await acquireDirLock(dir, TIMINGS);
    try {
      expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    } finally {
      release();
    }
  });

  test('waits out a fresh lock that no heartbeat refreshes, then takes it', async () => {
    const dir = freshDir();
    writeForeignLock(dir);
    const started = performance.now();
    const release = await acquireDirLock(dir, TIMINGS);
    release();
    expect(performance.now() - started).toBeGreaterThanOrEqual(TIMINGS.staleMs - 50);
  });

  test('takes over at once a lock of this machine and pid namespace whose process is gone', async () => {
    const dir = freshDir();
    const { bootId, pidNamespace } = readMine();
    const record = { instance: 'x', pid: 2147483646, host: 'here', bootId, pidNamespace, startedAt: '' };
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(record));
    const started = performance.now();
    const release = await acquireDirLock(dir, { heartbeatMs: 50, staleMs: 60_000 });
    release();
    expect(performance.now() - started).toBeLessThan(10_000); // not after the minute a heartbeat would need
  });

  test('keeps its own heartbeat going, and removes its lock on release', async () => {
    const dir = freshDir();
    const release = await acquireDirLock(dir, TIMINGS);
    const path = join(dir, LOCK_FILE);
    const before = statSync(path).mtimeMs;
    await Bun.sleep(TIMINGS.heartbeatMs * 4);
    expect(statSync(path).mtimeMs).toBeGreaterThan(before);
    expect((await lockError(dir)).message).toContain('already open in this process');
    release();
    expect(() => statSync(path)).toThrow();
  });
});

/** This process's boot id and pid namespace, as the lock records them (Linux). */
function readMine() {
  return {
    bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidNamespace: readlinkSync('/proc/self/ns/pid'),
  };
}

const canUnshare = Bun.spawnSync(['unshare', '--pid', '--fork', 'true']).exitCode === 0;

describe.skipIf(!canUnshare)('two servers in their own pid namespaces (as in two containers)', () => {
  test(
    'the second one on the same PGLITE_DIR refuses to start with a clear error, and the first is unharmed',
    async () => {
      const dir = freshDir();
      const env = { PATH: process.env.PATH, HOME: process.env.HOME, SECRET_KEY: TEST_SECRET_KEY, PGLITE_DIR: dir };
      // Each is pid 1 of its own namespace; --kill-child stops the server when its unshare is stopped.
      const start = (port: string) =>
        Bun.spawn(['unshare', '--pid', '--fork', '--kill-child=SIGTERM', 'bun', 'src/runtimes/bun.ts'], {
          cwd: PROJECT_ROOT,
          env: { ...env, HOST: '127.0.0.1', PORT: port, LOG_LEVEL: 'info' },
          stdout: 'pipe',
          stderr: 'pipe',
        });
      const first = start('0');
      try {
        const url = await listeningUrl(first.stdout);
        expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(1); // pid 1 in its namespace
        const second = start('0');
        expect(await second.exited).toBe(1);
        const stderr = await new Response(second.stderr).text();
        expect(stderr).toContain(`PGLITE_DIR ${dir} is in use by process 1`);
        expect(stderr.trim().split('\n')).toHaveLength(1);
        expect((await fetch(`${url}/health`)).status).toBe(200);
      } finally {
        first.kill('SIGKILL'); // unshare ignores SIGTERM; its death sends the server SIGTERM (--kill-child)
        await first.exited;
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

/** Reads a server's JSON log lines until it logs `listening`; its URL. Keeps draining afterwards. */
async function listeningUrl(stdout: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  const reader = stdout.getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the server exited before listening');
    buffered += decoder.decode(value, { stream: true });
    const line = buffered.split('\n').find((entry) => entry.includes('"msg":"listening"'));
    if (line) {
      void (async () => {
        while (!(await reader.read()).done) {}
      })();
      return (JSON.parse(line) as { url: string }).url.replace(/\/$/, '');
    }
  }
}
