/**
 * The cluster's configuration (README "Cluster"): deploy/nginx.conf as `bun run cluster` runs it passes
 * `nginx -t`, and in front of an instance that dies after reading a request it passes on a GET but never a
 * POST (which may have committed); the compose profile wires the same topology. No Docker engine here: the
 * compose file is checked as data. The cluster itself runs in `bun run cluster:test` and `cluster:faults`.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POOL_SIZE } from '../scripts/cluster/cluster';
import { localNginxConf, NGINX_CONF, nginxBinary, startNginx, testNginxConf } from '../scripts/lib/nginx';
import { PROJECT_ROOT } from '../scripts/lib/processes';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'hpa-nginx-test-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!nginxBinary())('deploy/nginx.conf', () => {
  test('passes nginx -t with the addresses bun run cluster puts in', async () => {
    const dir = tempDir();
    const config = join(dir, 'nginx.conf');
    const text = localNginxConf(readFileSync(NGINX_CONF, 'utf8'), {
      port: 18_000,
      upstreams: ['127.0.0.1:18001', '127.0.0.1:18002', '127.0.0.1:18003'],
      dir,
    });
    await Bun.write(config, text);
    const checked = await testNginxConf(config, dir);
    expect({ ok: checked.ok, output: checked.ok ? '' : checked.output }).toEqual({ ok: true, output: '' });
    expect(text).not.toContain('app1:8000');
  });

  test('passes a GET to the next instance when one dies after reading it, never a POST', async () => {
    // An instance that reads the request and dies before answering, like one SIGKILLed mid-request.
    const dying = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data: (socket) => socket.terminate() } });
    const seen: string[] = [];
    const healthy = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req) {
        seen.push(req.method);
        return new Response('ok');
      },
    });
    const nginx = await startNginx({
      upstreams: [`127.0.0.1:${dying.port}`, `127.0.0.1:${healthy.port}`],
      dir: tempDir(),
    });
    try {
      const statuses = async (method: string) => {
        const answers: number[] = [];
        for (let i = 0; i < 4; i++)
          answers.push((await fetch(`${nginx.url}/x`, { method, body: method === 'POST' ? 'x' : undefined })).status);
        return answers;
      };
      const posts = await statuses('POST');
      // Each POST reached one instance: those that reached the dying one got 502 and went nowhere else.
      expect(posts.filter((status) => status === 502).length).toBeGreaterThan(0);
      expect(seen.filter((method) => method === 'POST').length).toBe(posts.filter((status) => status === 200).length);
      expect(await statuses('GET')).toEqual([200, 200, 200, 200]);
    } finally {
      await nginx.stop();
      dying.stop(true);
      healthy.stop(true);
    }
  });
});

describe('the compose profile `cluster`', () => {
  const compose = Bun.YAML.parse(readFileSync(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<
      string,
      { profiles?: string[]; environment?: Record<string, string>; volumes?: string[]; command?: string[] }
    >;
  };
  const cluster = Object.entries(compose.services).filter(([, service]) => service.profiles?.includes('cluster'));

  test('runs nginx in front of three instances on PgBouncer, with Redis and one migration on a direct connection', () => {
    expect(cluster.map(([name]) => name).sort()).toEqual([
      'app1',
      'app2',
      'app3',
      'balancer',
      'cluster-migrate',
      'pgbouncer',
      'redis',
    ]);
    for (const name of ['app1', 'app2', 'app3']) {
      const env = compose.services[name]?.environment ?? {};
      expect(new URL(env.DATABASE_URL as string).host).toBe('pgbouncer:6432');
      expect(env).toMatchObject({ RATE_LIMIT_STORE: 'redis', INVALIDATION_BUS: 'redis', TRUST_PROXY: '1' });
    }
    expect(new URL(compose.services['cluster-migrate']?.environment?.DATABASE_URL as string).host).toBe('db:5432');
    expect(compose.services.balancer?.volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro');
    expect(compose.services.pgbouncer?.volumes).toContain('./deploy/pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro');
  });

  test('its PgBouncer pools in transaction mode with the pool of bun run cluster', () => {
    const ini = readFileSync(join(PROJECT_ROOT, 'deploy/pgbouncer.ini'), 'utf8');
    expect(ini).toMatch(/^pool_mode = transaction$/m);
    expect(ini).toMatch(new RegExp(`^default_pool_size = ${POOL_SIZE}$`, 'm'));
  });
});
