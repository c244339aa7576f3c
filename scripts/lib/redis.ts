/**
 * A redis-server of our own on a port of its own, never the shared one: the fault run restarts it. No
 * persistence (`--save ''`): a restart loses the rate-limit counters, as a Redis without AOF does.
 */
import { accepts } from './pgbouncer';
import { type ChildProcess, freePort, spawnProcess } from './processes';

const START_TIMEOUT_MS = 15_000;

export interface RedisServer {
  port: number;
  url: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis({ dir, port = freePort() }: { dir: string; port?: number }): Promise<RedisServer> {
  const binary = Bun.which('redis-server') ?? '/usr/bin/redis-server';
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    child = spawnProcess('redis-server', [binary, ...args]);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await accepts(port))) {
      if (Date.now() > deadline || child.proc.exitCode !== null) {
        throw new Error(`redis-server did not start on ${port}:\n${child.lines.slice(-20).join('\n')}`);
      }
      await Bun.sleep(50);
    }
  };
  await start();
  const stop = async () => {
    await child?.stop();
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async restart() {
      await stop();
      await start();
    },
    stop,
  };
}
