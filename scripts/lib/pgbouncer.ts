/**
 * A PgBouncer of our own (the Debian package's binary, never its system service): a config in a temporary
 * directory, a free port, transaction pooling in front of the PostgreSQL of `upstreamUrl`. For the pooler
 * test, `bun run cluster` and the fault run, which restarts it under load.
 */
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChildProcess, freePort, spawnProcess } from './processes';

const BINARIES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'];
const START_TIMEOUT_MS = 15_000;
// PgBouncer refuses to run as root; as root (CI containers) it runs as nobody, owning its directory.
const UNPRIVILEGED = { name: 'nobody', uid: 65534, gid: 65534 };

/** The pgbouncer binary, or null where it is not installed (`apt-get install pgbouncer`). */
export function pgbouncerBinary(): string | null {
  return BINARIES.find((path) => existsSync(path)) ?? Bun.which('pgbouncer') ?? null;
}

export interface PgBouncer {
  port: number;
  /** `upstreamUrl` with host and port replaced by PgBouncer's. */
  url: string;
  /** Stops it (SIGTERM: PgBouncer closes every client and server connection at once) and starts it again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer in transaction mode with `poolSize` server connections per database and user. PostgreSQL
 * here trusts local connections, so PgBouncer does too (auth_type trust, with the user in its auth_file);
 * `ignore_startup_parameters` lets postgres.js send what it sends by default.
 */
export async function startPgBouncer(
  upstreamUrl: string,
  { poolSize = 5, port = freePort(), dir }: { poolSize?: number; port?: number; dir?: string } = {},
): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)');
  const upstream = new URL(upstreamUrl);
  const user = decodeURIComponent(upstream.username || 'postgres');
  const home = dir ?? mkdtempSync(join(tmpdir(), 'hpa-pgbouncer-'));
  const config = join(home, 'pgbouncer.ini');
  writeFileSync(join(home, 'users.txt'), `"${user}" ""\n`);
  writeFileSync(
    config,
    [
      '[databases]',
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir =`,
      'auth_type = trust',
      `auth_file = ${join(home, 'users.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 1000',
      'ignore_startup_parameters = extra_float_digits,options',
      `pidfile = ${join(home, 'pgbouncer.pid')}`,
      `logfile = ${join(home, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    for (const path of [home, ...readdirSync(home).map((name) => join(home, name))]) {
      chownSync(path, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    }
  }
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawnProcess('pgbouncer', [binary, ...(asRoot ? ['-u', UNPRIVILEGED.name] : []), config]);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && child.proc.exitCode === null) {
      if (await accepts(port)) return;
      await Bun.sleep(50);
    }
    throw new Error(`pgbouncer did not start on ${port}:\n${child.lines.slice(-20).join('\n')}`);
  };
  await start();
  const url = Object.assign(new URL(upstreamUrl), { hostname: '127.0.0.1', port: String(port) }).href;
  return {
    port,
    url,
    async restart() {
      await child?.stop();
      await start();
    },
    async stop() {
      await child?.stop();
      if (!dir) rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function accepts(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}
