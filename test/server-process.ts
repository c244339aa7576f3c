import type { SpawnOptions, Subprocess } from 'bun';
import { TEST_SECRET_KEY } from './helpers';

const PROJECT_ROOT = new URL('..', import.meta.url).pathname;
const START_TIMEOUT_MS = 20_000;
/** For tests that start a server: creating a fresh PGlite directory alone takes about 5 s. */
export const SERVER_TEST_TIMEOUT_MS = 40_000;

export interface ServerProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  url: string;
  /** Every line the server has written to stdout so far. */
  lines: string[];
}

/**
 * Runs a command of this project (e.g. the Bun entry) as a real child process with a test environment.
 * `stdin` is ignored unless given (e.g. a Blob with the password the CLI reads).
 */
export function spawnProject<const In extends SpawnOptions.Writable = 'ignore'>(
  args: string[],
  env: Record<string, string | undefined> = {},
  stdin: In = 'ignore' as In,
) {
  return Bun.spawn(['bun', ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SECRET_KEY: TEST_SECRET_KEY, LOG_LEVEL: 'info', ...env },
    stdin,
    stdout: 'pipe',
    stderr: 'pipe',
  });
}

/** Runs `bun scripts/cli.ts ...args` to completion, with `input` on its stdin when given. */
export async function runCli(args: string[], env: Record<string, string | undefined>, input?: string) {
  const proc = spawnProject(['scripts/cli.ts', ...args], env, input === undefined ? 'ignore' : new Blob([input]));
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

/** Starts `src/runtimes/bun.ts` on a random loopback port and resolves once it logs that it is listening. */
export async function startServer(env: Record<string, string | undefined>): Promise<ServerProcess> {
  const proc = spawnProject(['src/runtimes/bun.ts'], { HOST: '127.0.0.1', PORT: '0', BCRYPT_COST: '4', ...env });
  const lines: string[] = [];
  const { promise: listening, resolve, reject } = Promise.withResolvers<string>();
  let started = false;
  // Keep draining stdout for the life of the process: a full pipe would block the server's logging.
  void (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === 'listening' && entry.url) {
          started = true;
          resolve(entry.url.replace(/\/$/, ''));
        }
      }
    }
    if (!started) reject(new Error(`server exited before listening: ${await new Response(proc.stderr).text()}`));
  })();
  const timer = setTimeout(() => reject(new Error('server did not start in time')), START_TIMEOUT_MS);
  try {
    return { proc, url: await listening, lines };
  } catch (error) {
    proc.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
