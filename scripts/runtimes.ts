/**
 * How to start this service on each runtime, for the tools that start real servers: the cross-runtime
 * suite (scripts/test-runtimes.ts), the benchmark (scripts/bench.ts) and test/runtimes.test.ts. Commands
 * run from the project root; each entry reads PORT, HOST, DATABASE_URL and SECRET_KEY from its environment.
 */
export interface RuntimeCommand {
  command: string[];
  /** Run once before `command` (the Node entry runs from a build). */
  build?: string[];
}

const DENO_PERMISSIONS = ['--allow-env', '--allow-net', '--allow-read', '--allow-write', '--allow-sys'];

export const RUNTIMES = {
  bun: { command: ['bun', 'src/runtimes/bun.ts'] },
  node: { build: ['bun', 'run', 'build:node'], command: ['node', 'dist/runtimes/node.js'] },
  // The deno binary itself, not npm's Node wrapper in node_modules/.bin, which does not pass SIGTERM on.
  deno: { command: ['node_modules/deno/deno', 'run', ...DENO_PERMISSIONS, 'src/runtimes/deno.ts'] },
  workers: { command: ['bun', 'scripts/start-workers.ts'] },
} satisfies Record<string, RuntimeCommand>;

export type RuntimeName = keyof typeof RUNTIMES;

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server that cannot announce its own. */
export function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}
