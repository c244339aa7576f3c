/**
 * PostgreSQL going away under a running server: requests that need it answer 503 problem+json with
 * Retry-After (never a hang, never a crash), /health stays 200, /ready says 503, and once the database
 * is back the same process serves again with no restart. A real server process, a real PostgreSQL, and
 * a TCP proxy between them that the test cuts and restores.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import { expectProblem, POSTGRES_ADMIN_URL, TEST_PASSWORD, uniqueEmail } from './helpers';
import { login, register, SERVER_TEST_TIMEOUT_MS, type ServerProcess, startServer, stopAll } from './server-process';
import { TcpProxy } from './tcp-proxy';

const FAULT_BOUND_MS = 8_000; // connect_timeout is 5 s; a refused connection fails at once
const REQUEST_TIMEOUT_MS = 1_500;

const target = new URL(POSTGRES_ADMIN_URL);
const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
let database: ScratchDatabase | undefined;
let server: ServerProcess;
let token: string;

/** Resolves with the response, or fails the test if the server takes longer than `ms` to answer. */
async function within(ms: number, request: Promise<Response>): Promise<Response> {
  let timer: Timer | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([request, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const me = () => fetch(`${server.url}/users/me`, { headers: { Authorization: `Bearer ${token}` } });

// src/access/listener.ts: a broken path is noticed within the heartbeat period plus its timeout (0.65 s).
const LISTENER_BOUND_MS = 1_000;

/** The first response whose status is not `status`, asking again until `ms` have passed. */
async function firstDifferentFrom(status: number, ms: number, request: () => Promise<Response>): Promise<Response> {
  const deadline = Date.now() + ms;
  let res = await request();
  while (res.status === status && Date.now() < deadline) {
    await Bun.sleep(20);
    res = await request();
  }
  return res;
}

beforeAll(async () => {
  database = await scratchDatabase('faults', { adminUrl: POSTGRES_ADMIN_URL });
  proxy.start();
  const url = new URL(database.url as string);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  server = await startServer({ DATABASE_URL: url.href, REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
  const email = uniqueEmail('faults');
  await register(server.url, email);
  token = await login(server.url, email);
}, SERVER_TEST_TIMEOUT_MS);

afterAll(async () => {
  await stopAll();
  proxy.cut();
  await database?.drop();
}, SERVER_TEST_TIMEOUT_MS);

test(
  'answers 503 with Retry-After while the database is down, keeps /health up, and recovers by itself',
  async () => {
    expect((await me()).status).toBe(200); // control: the proxy carries traffic

    proxy.cut();
    // The view may answer a bearer request in the moment before the instance hears that its listener's
    // connection went with the database; from then on (the heartbeat bound, under a second) it reads the
    // database, which is down: 503.
    const down = await firstDifferentFrom(200, LISTENER_BOUND_MS, () => within(FAULT_BOUND_MS, me()));
    await expectProblem(down, 503, 'database-unavailable');
    expect(Number(down.headers.get('Retry-After'))).toBeGreaterThan(0);
    const register = await within(
      FAULT_BOUND_MS,
      fetch(`${server.url}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: uniqueEmail('down'), password: TEST_PASSWORD }),
      }),
    );
    await expectProblem(register, 503, 'database-unavailable');
    expect((await within(FAULT_BOUND_MS, fetch(`${server.url}/health`))).status).toBe(200);
    await expectProblem(await within(FAULT_BOUND_MS, fetch(`${server.url}/ready`)), 503, 'database-unavailable');

    proxy.start();
    // The pool reconnects on demand: the first request after the outage may still meet a dead socket.
    let status = 0;
    for (let attempt = 0; attempt < 5 && status !== 200; attempt++)
      status = (await within(FAULT_BOUND_MS, me())).status;
    expect(status).toBe(200);
    expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    expect(server.proc.exitCode).toBeNull(); // never crashed
  },
  SERVER_TEST_TIMEOUT_MS,
);

test(
  'answers 503 at REQUEST_TIMEOUT_MS when the database stops answering, and serves again once it does',
  async () => {
    expect((await me()).status).toBe(200);
    proxy.freeze();
    try {
      const stalled = await firstDifferentFrom(200, LISTENER_BOUND_MS, () =>
        within(REQUEST_TIMEOUT_MS + FAULT_BOUND_MS, me()),
      );
      await expectProblem(stalled, 503, 'timeout');
      expect(stalled.headers.get('Retry-After')).not.toBeNull();
      expect((await within(FAULT_BOUND_MS, fetch(`${server.url}/health`))).status).toBe(200);
    } finally {
      proxy.thaw();
    }
    let status = 0;
    for (let attempt = 0; attempt < 5 && status !== 200; attempt++)
      status = (await within(FAULT_BOUND_MS, me())).status;
    expect(status).toBe(200);
    expect(server.proc.exitCode).toBeNull();
  },
  SERVER_TEST_TIMEOUT_MS,
);
