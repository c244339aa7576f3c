/**
 * nginx of our own (the Debian package's binary, never its system service) running deploy/nginx.conf —
 * the compose profile's balancer — with the instances' addresses, its own port, and a prefix holding its
 * pid, logs and temporary files in `dir`. For `bun run cluster`, its test, the fault run and the bench.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { accepts } from './pgbouncer';
import { type ChildProcess, freePort, PROJECT_ROOT, runProcess, spawnProcess } from './processes';

const BINARIES = ['/usr/sbin/nginx', '/usr/bin/nginx'];
export const NGINX_CONF = join(PROJECT_ROOT, 'deploy/nginx.conf');
const START_TIMEOUT_MS = 15_000;
const UPSTREAM = /^(\s*)server app(\d+):8000(.*)$/;

export function nginxBinary(): string | null {
  return BINARIES.find((path) => existsSync(path)) ?? Bun.which('nginx') ?? null;
}

/**
 * deploy/nginx.conf for this machine: `server appN:8000` becomes the N-th of `upstreams` (lines beyond
 * them go), `listen 8000` becomes `listen 127.0.0.1:<port>`, and the temporary paths move into `dir`
 * (Debian's build puts them under /var/lib/nginx).
 */
export function localNginxConf(
  text: string,
  { port, upstreams, dir }: { port: number; upstreams: string[]; dir: string },
) {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
    (kind) => `  ${kind}_temp_path ${join(dir, `${kind}_temp`)};`,
  );
  return text
    .split('\n')
    .flatMap((line) => {
      const upstream = UPSTREAM.exec(line);
      if (upstream) {
        const address = upstreams[Number(upstream[2]) - 1];
        return address ? [`${upstream[1]}server ${address}${upstream[3]}`] : [];
      }
      if (/^\s*listen 8000;/.test(line)) return [line.replace('listen 8000;', `listen 127.0.0.1:${port};`)];
      if (/^http \{/.test(line)) return [line, ...temp];
      return [line];
    })
    .join('\n');
}

export interface Nginx {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Checks a config file with `nginx -t`; resolves with nginx's own words when it refuses. */
export async function testNginxConf(config: string, dir: string): Promise<{ ok: boolean; output: string }> {
  const binary = nginxBinary();
  if (!binary) throw new Error('nginx is not installed (apt-get install nginx)');
  const { code, stdout, stderr } = await runProcess([binary, '-t', ...nginxArgs(dir, config, '')]);
  return { ok: code === 0, output: stdout + stderr };
}

/** nginx's arguments for a prefix of its own: its error log and pid file there, `globals` before the pid. */
function nginxArgs(dir: string, config: string, globals: string): string[] {
  return ['-p', dir, '-e', join(dir, 'error.log'), '-c', config, '-g', `${globals}pid ${join(dir, 'nginx.pid')};`];
}

/** Starts nginx in the foreground (`daemon off`) on `port`, balancing over `upstreams` (host:port). */
export async function startNginx({
  upstreams,
  dir,
  port = freePort(),
}: {
  upstreams: string[];
  dir: string;
  port?: number;
}): Promise<Nginx> {
  const binary = nginxBinary();
  if (!binary) throw new Error('nginx is not installed (apt-get install nginx)');
  chmodSync(dir, 0o755); // as root its workers run as nobody, and must reach the temporary paths
  const config = join(dir, 'nginx.conf');
  writeFileSync(config, localNginxConf(readFileSync(NGINX_CONF, 'utf8'), { port, upstreams, dir }));
  const checked = await testNginxConf(config, dir);
  if (!checked.ok) throw new Error(`nginx refused ${config}:\n${checked.output}`);
  const args = nginxArgs(dir, config, 'daemon off; ');
  const child: ChildProcess = spawnProcess('nginx', [binary, ...args]);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await accepts(port))) {
    if (Date.now() > deadline || child.proc.exitCode !== null) {
      await child.stop();
      throw new Error(`nginx did not start on ${port}:\n${readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000)}`);
    }
    await Bun.sleep(50);
  }
  return { port, url: `http://127.0.0.1:${port}`, stop: () => child.stop().then(() => {}) };
}
