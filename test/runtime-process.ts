/**
 * Child processes for the runtime tests (test/runtimes.test.ts, test/binary.test.ts): each server runs in
 * its own process group, so stopping it reaches every process a launcher starts (wrangler → workerd),
 * and nothing outlives the test file.
 */

import { afterAll, expect } from 'bun:test';
import type { Subprocess } from 'bun';
import { TEST_PASSWORD, uniqueEmail } from './helpers';

export const PROJECT_ROOT = new URL('..', import.meta.url).pathname;
export const PROCESS_SECRET_KEY = 'runtime-test-secret-key-that-is-at-least-32-bytes';
const STOP_TIMEOUT_MS = 20_000;

export interface RuntimeProcess {
  name: string;
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  url: string;
  /** Every line written to stdout and stderr so far. */
  lines: string[];
  /** SIGTERM to the process (or its group); resolves with its exit code once stdout and stderr are closed. */
  stop(options?: { group?: boolean }): Promise<number | null>;
}

const running = new Set<Subprocess>();
afterAll(() => {
  for (const proc of running) killGroup(proc, 'SIGKILL');
});

function killGroup(proc: Subprocess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/**
 * Starts `cmd` in a new process group and resolves once `ready` (checked against each output line, or a
 * URL polled until it answers 200) says it is serving; rejects after `timeoutMs` with the output so far.
 */
export async function startProcess(
  name: string,
  cmd: string[],
  options: {
    env: Record<string, string | undefined>;
    cwd?: string;
    /** The base URL is either parsed from a line, or known up front and polled at /health until it answers. */
    ready: { line: (line: string) => string | undefined } | { url: string };
    timeoutMs: number;
  },
): Promise<RuntimeProcess> {
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
  });
  running.add(proc);
  const lines: string[] = [];
  let announced: string | undefined;
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of stream) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        if ('line' in options.ready) announced ??= options.ready.line(line);
      }
    }
    if (buffered) lines.push(buffered);
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]);

  const deadline = Date.now() + options.timeoutMs;
  let url: string | undefined;
  while (Date.now() < deadline && proc.exitCode === null) {
    if ('line' in options.ready) {
      url = announced;
    } else {
      // Any HTTP answer means it is serving (a misconfigured Worker answers 503 everywhere, /health too).
      const ok = await fetch(`${options.ready.url}/health`, { signal: AbortSignal.timeout(1_000) })
        .then(() => true)
        .catch(() => false);
      if (ok) url = options.ready.url;
    }
    if (url) break;
    await Bun.sleep(100);
  }
  if (!url) {
    killGroup(proc, 'SIGKILL');
    await proc.exited;
    throw new Error(`${name} did not start (exit ${proc.exitCode}):\n${lines.slice(-30).join('\n')}`);
  }

  const stop = async ({ group = false } = {}) => {
    if (group) killGroup(proc, 'SIGTERM');
    else proc.kill('SIGTERM');
    const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), STOP_TIMEOUT_MS);
    const code = await proc.exited;
    await drained;
    clearTimeout(timer);
    killGroup(proc, 'SIGKILL'); // anything the launcher left behind
    running.delete(proc);
    return code;
  };
  return { name, proc, url: url.replace(/\/$/, ''), lines, stop };
}

/** The `listening` log line of this project's entries gives the URL. */
export const listeningLine = (line: string): string | undefined => {
  if (!line.startsWith('{')) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    return entry.msg === 'listening' ? entry.url : undefined;
  } catch {
    return undefined;
  }
};

export async function register(url: string, email: string, password = TEST_PASSWORD): Promise<void> {
  const res = await fetch(`${url}/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  expect(res.status).toBe(201);
}

/** Logs in through the form endpoint and returns the access token. */
export async function login(url: string, email: string, password = TEST_PASSWORD): Promise<string> {
  const res = await fetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ username: email, password }) });
  const body = (await res.json()) as { access_token?: string; detail?: string };
  expect({ status: res.status, detail: body.detail }).toEqual({ status: 200, detail: undefined });
  return body.access_token as string;
}

export async function expectMe(url: string, token: string, email: string): Promise<void> {
  const res = await fetch(`${url}/users/me`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { email: string }).email).toBe(email);
}

/** register → login → /users/me, over TCP. */
export async function expectAuthFlow(url: string, tag: string): Promise<string> {
  const email = uniqueEmail(tag);
  await register(url, email);
  await expectMe(url, await login(url, email), email);
  return email;
}

const DOCS: [path: string, contentType: string][] = [
  ['/docs', 'text/html'],
  ['/redoc', 'text/html'],
  ['/openapi.json', 'application/json'],
  ['/vendor/swagger-ui-dist/swagger-ui.css', 'text/css'],
  ['/vendor/swagger-ui-dist/swagger-ui-bundle.js', 'text/javascript'],
  ['/vendor/redoc/redoc.standalone.js', 'text/javascript'],
  ['/vendor/redoc/logo-mini.svg', 'image/svg+xml'],
];

/** Swagger UI, ReDoc and every asset they load, served by the service itself with the right types. */
export async function expectDocs(url: string): Promise<void> {
  const seen: string[] = [];
  for (const [path] of DOCS) {
    const res = await fetch(`${url}${path}`);
    const body = await res.text();
    seen.push(`${path} ${res.status} ${res.headers.get('Content-Type')?.split(';')[0]} ${body.length > 0}`);
    if (path.endsWith('redoc.standalone.js')) expect(body).not.toContain('cdn.redoc.ly');
  }
  expect(seen).toEqual(DOCS.map(([path, contentType]) => `${path} 200 ${contentType} true`));
}
