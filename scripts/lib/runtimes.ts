/**
 * How to start this service on each runtime, for the tools that start real servers: the cross-runtime
 * suite (scripts/test-runtimes.ts), the benchmark (scripts/bench/) and test/runtimes.test.ts. Commands
 * run from the project root; each entry reads PORT, HOST, DATABASE_URL and SECRET_KEY from its environment.
 */
import { listeningLine, runOrThrow, type ServerProcess, startServerProcess } from './processes';

export interface RuntimeCommand {
  command: string[];
  /** Run once before `command` (the Node entry runs from a build). */
  build?: string[];
  /** The output line that says it serves, and on which URL (with PORT=0 it picks its own port). */
  readyLine: (line: string) => string | undefined;
  /** Whether that line comes whatever LOG_LEVEL says (the entries log `listening` at info). */
  alwaysAnnounces: boolean;
}

const DENO_PERMISSIONS = ['--allow-env', '--allow-net', '--allow-read', '--allow-write', '--allow-sys'];

/** wrangler's own line once the Worker is loaded and served: `[wrangler:info] Ready on http://127.0.0.1:8787`. */
export const wranglerReadyLine = (line: string): string | undefined => /\bReady on (https?:\/\/\S+)/.exec(line)?.[1];

export const RUNTIMES = {
  bun: { command: ['bun', 'src/runtimes/bun.ts'], readyLine: listeningLine, alwaysAnnounces: false },
  node: {
    build: ['bun', 'run', 'build:node'],
    command: ['node', 'dist/runtimes/node.js'],
    readyLine: listeningLine,
    alwaysAnnounces: false,
  },
  // The deno binary itself, not npm's Node wrapper in node_modules/.bin, which does not pass SIGTERM on.
  deno: {
    command: ['node_modules/deno/deno', 'run', ...DENO_PERMISSIONS, 'src/runtimes/deno.ts'],
    readyLine: listeningLine,
    alwaysAnnounces: false,
  },
  workers: { command: ['bun', 'scripts/start-workers.ts'], readyLine: wranglerReadyLine, alwaysAnnounces: true },
} satisfies Record<string, RuntimeCommand>;

export type RuntimeName = keyof typeof RUNTIMES;

/** Builds what `name` runs from, if anything (once per run is enough). */
export async function buildRuntime(name: RuntimeName): Promise<void> {
  const runtime: RuntimeCommand = RUNTIMES[name];
  if (runtime.build) await runOrThrow(runtime.build);
}

/**
 * Starts the server of `name` from the project root and resolves once it serves. Without a PORT in `env`
 * it picks its own port (PORT=0) and says which in its ready line (for the entries LOG_LEVEL must let
 * `info` through); with one, an entry that may stay silent is polled on that port.
 */
export function startRuntime(
  name: RuntimeName,
  options: { env: Record<string, string | undefined>; timeoutMs: number },
): Promise<ServerProcess> {
  const runtime: RuntimeCommand = RUNTIMES[name];
  const { PORT: port, HOST: host = '127.0.0.1' } = options.env;
  const byLine = port === undefined || runtime.alwaysAnnounces;
  return startServerProcess(name, runtime.command, {
    env: { ...options.env, HOST: host, PORT: port ?? '0' },
    ready: byLine ? { line: runtime.readyLine } : { url: `http://${host}:${port}` },
    timeoutMs: options.timeoutMs,
  });
}
