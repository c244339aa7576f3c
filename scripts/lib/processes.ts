/**
 * Child processes of this project, for every tool that starts one: the tests (test/server-process.ts), the
 * cross-runtime suite (scripts/test-runtimes.ts) and the benchmark (scripts/bench/). Each runs in its own
 * process group with a clean environment (PATH, HOME and what the caller gives), its stdout and stderr are
 * drained into lines for its whole life (a full pipe would block its logging), and stopping it reaches every
 * process a launcher started (run.sh → uvicorn, wrangler → workerd).
 *
 * No bun:test here (scripts use it too): a test file registers the cleanup itself, `afterAll(stopAll)`.
 */
import type { Subprocess } from 'bun';

export const PROJECT_ROOT = new URL('../..', import.meta.url).pathname;
/** How long a SIGTERM may take before the whole group gets SIGKILL. */
const STOP_TIMEOUT_MS = 20_000;
/** How many of the last output lines a failed start reports. */
const TAIL_LINES = 30;

type Stdin = 'ignore' | Blob;

export interface ChildProcess {
  name: string;
  proc: Subprocess<Stdin, 'pipe', 'pipe'>;
  /** Every line written to stdout and stderr so far, in the order they arrived. */
  lines: string[];
  stdout: string[];
  stderr: string[];
  /** Resolves with the exit code once the process has exited and both pipes are drained. */
  finished: Promise<number | null>;
  /** SIGTERM to the process (or its whole group), then the exit code; SIGKILL to the group if it takes too long. */
  stop(options?: { group?: boolean }): Promise<number | null>;
}

export interface ServerProcess extends ChildProcess {
  /** The base URL it serves on, without a trailing slash. */
  url: string;
}

export interface SpawnOptions {
  /** Added to PATH and HOME; nothing else of this process's environment is passed on. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Ignored unless given (e.g. a Blob with the password the CLI reads). */
  stdin?: Stdin;
}

/** How to tell that a server is serving: its `listening` log line, or any HTTP answer on `url` + `path`. */
export type Readiness = { line: (line: string) => string | undefined } | { url: string; path?: string };

const running = new Set<ChildProcess>();

function killGroup(proc: Subprocess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // The group is gone already.
  }
}

async function drain(stream: ReadableStream<Uint8Array>, into: string[][]): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = '';
  const push = (line: string) => {
    for (const lines of into) lines.push(line);
  };
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      push(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
  buffered += decoder.decode();
  if (buffered) push(buffered);
}

/** Starts `cmd` in a new process group; it keeps running until it exits or is stopped. */
export function spawnProcess(name: string, cmd: string[], options: SpawnOptions = {}): ChildProcess {
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env },
    stdin: options.stdin ?? 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
  });
  const lines: string[] = [];
  const stdout: string[] = [];
  const stderr: string[] = [];
  const finished = Promise.all([drain(proc.stdout, [lines, stdout]), drain(proc.stderr, [lines, stderr])]).then(
    () => proc.exited,
  );
  let stopping: Promise<number | null> | undefined;
  const child: ChildProcess = {
    name,
    proc,
    lines,
    stdout,
    stderr,
    finished,
    stop: ({ group = false } = {}) => {
      stopping ??= (async () => {
        if (group) killGroup(proc, 'SIGTERM');
        else proc.kill('SIGTERM');
        const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), STOP_TIMEOUT_MS);
        const code = await finished;
        clearTimeout(timer);
        killGroup(proc, 'SIGKILL'); // anything the launcher left behind
        running.delete(child);
        return code;
      })();
      return stopping;
    },
  };
  running.add(child);
  void finished.then(() => {
    if (!stopping) {
      killGroup(proc, 'SIGKILL'); // it exited by itself: nothing of its group outlives it
      running.delete(child);
    }
  });
  return child;
}

/** Runs `cmd` to completion: its exit code and everything it wrote. */
export async function runProcess(cmd: string[], options: SpawnOptions = {}) {
  const child = spawnProcess(cmd.join(' '), cmd, options);
  const code = await child.finished;
  const text = (lines: string[]) => lines.map((line) => `${line}\n`).join('');
  return { code, stdout: text(child.stdout), stderr: text(child.stderr) };
}

/** Like runProcess, but throws with its stderr unless it exits 0. */
export async function runOrThrow(cmd: string[], options: SpawnOptions = {}): Promise<void> {
  const { code, stderr } = await runProcess(cmd, options);
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited with ${code}:\n${stderr}`);
}

/**
 * Resolves with the base URL once `child` is serving as `ready` says; otherwise kills its group and rejects,
 * after `timeoutMs` or as soon as it exits, with its last output lines.
 */
export async function waitUntilServing(child: ChildProcess, ready: Readiness, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  let seen = 0;
  while (Date.now() < deadline && child.proc.exitCode === null && child.proc.signalCode === null) {
    if ('line' in ready) {
      for (; seen < child.lines.length && !url; seen++) url = ready.line(child.lines[seen] as string);
    } else {
      // Any HTTP answer means it is serving (a misconfigured Worker answers 503 everywhere, /health too).
      const answered = await fetch(`${ready.url}${ready.path ?? '/health'}`, { signal: AbortSignal.timeout(1_000) })
        .then(() => true)
        .catch(() => false);
      if (answered) url = ready.url;
    }
    if (url) return url.replace(/\/$/, '');
    await Bun.sleep(100);
  }
  const why = child.proc.exitCode === null ? `not serving after ${timeoutMs / 1000} s` : 'exited';
  killGroup(child.proc, 'SIGKILL');
  const code = await child.finished;
  running.delete(child);
  throw new Error(`${child.name} did not start (${why}, exit ${code}):\n${child.lines.slice(-TAIL_LINES).join('\n')}`);
}

/** spawnProcess + waitUntilServing. */
export async function startServerProcess(
  name: string,
  cmd: string[],
  options: SpawnOptions & { ready: Readiness; timeoutMs: number },
): Promise<ServerProcess> {
  const child = spawnProcess(name, cmd, options);
  const url = await waitUntilServing(child, options.ready, options.timeoutMs);
  return Object.assign(child, { url });
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

/** Stops every process started here that is still running (each whole group): a test file's afterAll, a script's exit. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop({ group: true })));
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server that cannot announce its own. */
export function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}
