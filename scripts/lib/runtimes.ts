/**
 * How to start this service on each runtime, for the tools that start real servers: the cross-runtime
 * suite (scripts/test-runtimes.ts), the benchmark (scripts/bench/) and test/runtimes.test.ts. Commands
 * run from the project root; each entry reads PORT, HOST, DATABASE_URL and SECRET_KEY from its environment.
 * Bun, Node and Deno log a `listening` line with their URL; the Workers entry (wrangler) does not, so it
 * gets a free port and is polled.
 */
import { freePort, listeningLine, runOrThrow, type ServerProcess, startServerProcess } from './processes';

export interface RuntimeCommand {
  command: string[];
  /** Run once before `command` (the Node entry runs from a build). */
  build?: string[];
  /** Whether it logs the JSON `listening` line (with PORT=0 it picks its own port and says which). */
  announcesUrl: boolean;
}

const DENO_PERMISSIONS = ['--allow-env', '--allow-net', '--allow-read', '--allow-write', '--allow-sys'];

export const RUNTIMES = {
  bun: { command: ['bun', 'src/runtimes/bun.ts'], announcesUrl: true },
  node: { build: ['bun', 'run', 'build:node'], command: ['node', 'dist/runtimes/node.js'], announcesUrl: true },
  // The deno binary itself, not npm's Node wrapper in node_modules/.bin, which does not pass SIGTERM on.
  deno: { command: ['node_modules/deno/deno', 'run', ...DENO_PERMISSIONS, 'src/runtimes/deno.ts'], announcesUrl: true },
  workers: { command: ['bun', 'scripts/start-workers.ts'], announcesUrl: false },
} satisfies Record<string, RuntimeCommand>;

export type RuntimeName = keyof typeof RUNTIMES;

/** Builds what `name` runs from, if anything (once per run is enough). */
export async function buildRuntime(name: RuntimeName): Promise<void> {
  const runtime: RuntimeCommand = RUNTIMES[name];
  if (runtime.build) await runOrThrow(runtime.build);
}

/**
 * Starts the server of `name` from the project root. With a PORT in `env` it is polled on that port;
 * without one an entry that announces its URL picks its own port (PORT=0, and LOG_LEVEL must let `info`
 * through), and Workers get a free port.
 */
export function startRuntime(
  name: RuntimeName,
  options: { env: Record<string, string | undefined>; timeoutMs: number },
): Promise<ServerProcess> {
  const runtime: RuntimeCommand = RUNTIMES[name];
  const port = options.env.PORT ?? (runtime.announcesUrl ? undefined : String(freePort()));
  const host = options.env.HOST ?? '127.0.0.1';
  return startServerProcess(name, runtime.command, {
    env: { HOST: host, PORT: port ?? '0', ...options.env },
    ready: port === undefined ? { line: listeningLine } : { url: `http://${host}:${port}` },
    timeoutMs: options.timeoutMs,
  });
}
