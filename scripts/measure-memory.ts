/**
 * `bun scripts/measure-memory.ts [postgres|pglite]…`: the resident memory (RSS) of a real Bun server
 * process at three moments — right after it logs `listening`, after its first registration and login, and
 * after 20 more logins — on a fresh PostgreSQL database (DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres
 * as the admin connection) and on a PGlite directory, first new and then existing. Each RSS is read from
 * /proc/<pid>/status after a 1 s settle; every server, database and directory it makes is removed.
 * A measurement, not a test: RSS depends on the machine and its load, so no figure here is asserted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import postgres from 'postgres';

const ROOT = resolve(import.meta.dir, '..');
const ADMIN_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const PASSWORD = 'a measured passphrase';
const SETTLE_MS = 1_000;
const START_TIMEOUT_MS = 60_000;

const rssMegabytes = (pid: number): number => {
  const kilobytes = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kilobytes) / 1024);
};

async function startServer(env: Record<string, string>) {
  const proc = Bun.spawn(['bun', 'src/runtimes/bun.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      SECRET_KEY: 'measure-memory-secret-key-of-at-least-32-bytes',
      RATE_LIMIT_LOGIN_FAILURES: '0',
      RATE_LIMIT_LOGIN_PER_IP: '0',
      ...env,
    },
    stdout: 'pipe',
    stderr: 'ignore',
  });
  const started = performance.now();
  const decoder = new TextDecoder();
  let buffered = '';
  const timer = setTimeout(() => proc.kill('SIGKILL'), START_TIMEOUT_MS);
  for await (const chunk of proc.stdout) {
    buffered += decoder.decode(chunk, { stream: true });
    const url = /"msg":"listening","url":"([^"]+)"/.exec(buffered)?.[1];
    if (url) {
      clearTimeout(timer);
      return { proc, url: url.replace(/\/$/, ''), startMs: Math.round(performance.now() - started) };
    }
  }
  throw new Error(`the server exited (${await proc.exited}) before listening`);
}

async function measure(label: string, env: Record<string, string>) {
  const { proc, url, startMs } = await startServer(env);
  try {
    await Bun.sleep(SETTLE_MS);
    const atStart = rssMegabytes(proc.pid);
    const email = `memory-${Date.now()}@example.com`;
    const registered = await fetch(`${url}/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    if (registered.status !== 201) throw new Error(`register: ${registered.status}`);
    const login = () =>
      fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ username: email, password: PASSWORD }) });
    const { access_token } = (await (await login()).json()) as { access_token: string };
    await fetch(`${url}/users/me`, { headers: { Authorization: `Bearer ${access_token}` } });
    await Bun.sleep(SETTLE_MS);
    const afterFirst = rssMegabytes(proc.pid);
    for (let i = 0; i < 20; i++) await login();
    await Bun.sleep(SETTLE_MS);
    const afterMore = rssMegabytes(proc.pid);
    console.log(
      `${label.padEnd(22)} start ${String(startMs).padStart(5)} ms   RSS at start ${atStart} MB, ` +
        `after register + login ${afterFirst} MB, after 20 more logins ${afterMore} MB`,
    );
  } finally {
    proc.kill('SIGTERM');
    await proc.exited;
  }
}

async function onPostgres() {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const name = `hpa_memory_${process.pid}_${Date.now().toString(36)}`;
  await admin.unsafe(`create database "${name}"`);
  try {
    const url = new URL(ADMIN_URL);
    url.pathname = `/${name}`;
    await measure('PostgreSQL (migrating)', { DATABASE_URL: url.href });
    await measure('PostgreSQL', { DATABASE_URL: url.href });
  } finally {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  }
}

async function onPglite() {
  const dir = mkdtempSync(join(tmpdir(), 'hpa-memory-'));
  try {
    await measure('PGlite, new directory', { PGLITE_DIR: join(dir, 'data') });
    await measure('PGlite, existing', { PGLITE_DIR: join(dir, 'data') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const targets = process.argv.slice(2);
for (const target of targets.length > 0 ? targets : ['postgres', 'pglite']) {
  if (target === 'postgres') await onPostgres();
  else if (target === 'pglite') await onPglite();
  else throw new Error(`unknown target ${target}: postgres or pglite`);
}
