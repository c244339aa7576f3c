/**
 * The cluster on one machine, no Docker (README "Cluster"): nginx (deploy/nginx.conf) in front of
 * `instances` Bun instances, PgBouncer in transaction mode (pool 5) between them and a database of their
 * own on the local PostgreSQL, migrated once through the CLI on a direct connection before any instance
 * starts, and a Redis of its own for rate limits and invalidations. Every process is this script's child,
 * with its files in one temporary directory; `stop()` ends them all and drops the database.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Nginx, startNginx } from '../lib/nginx';
import { type PgBouncer, startPgBouncer } from '../lib/pgbouncer';
import { freePort, type ServerProcess, startServerProcess } from '../lib/processes';
import { type RedisServer, startRedis } from '../lib/redis';
import { type ScratchDatabase, scratchDatabase } from '../lib/scratch-database';

export const POSTGRES_URL = process.env.POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const INSTANCE_START_TIMEOUT_MS = 60_000;
export const POOL_SIZE = 5;

export interface ClusterInstance {
  name: string;
  port: number;
  /** Its own address, past nginx: for checks that must reach each instance. */
  url: string;
  process: ServerProcess | undefined;
  start(): Promise<void>;
  /** SIGKILL: no shutdown, no goodbye; in-flight requests are cut off. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export interface Cluster {
  /** nginx: where clients go. */
  url: string;
  instances: ClusterInstance[];
  bouncer: PgBouncer;
  redis: RedisServer;
  nginx: Nginx;
  database: ScratchDatabase;
  dir: string;
  /** The environment every instance runs with (DATABASE_URL through PgBouncer, and so on). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  instances?: number;
  /** nginx's port; a free one by default. */
  port?: number;
  /** Added to (and overriding) the instances' environment. */
  env?: Record<string, string>;
}

/** Starts everything, in order, and undoes what it started if a step fails. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.instances ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'hpa-cluster-'));
  chmodSync(dir, 0o755); // as root, PgBouncer and nginx's workers run as nobody and must reach their files
  const undo: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const stop = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => {});
  };
  try {
    const database = await scratchDatabase('cluster', { adminUrl: POSTGRES_URL, migrate: 'cli' });
    undo.push(() => database.drop());
    const bouncerDir = join(dir, 'pgbouncer');
    mkdirSync(bouncerDir);
    const bouncer = await startPgBouncer(database.url as string, { poolSize: POOL_SIZE, dir: bouncerDir });
    undo.push(() => bouncer.stop());
    const redisDir = join(dir, 'redis');
    mkdirSync(redisDir);
    const redis = await startRedis({ dir: redisDir });
    undo.push(() => redis.stop());

    const ports = Array.from({ length: count }, () => freePort());
    const port = options.port ?? freePort();
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      SECRET_KEY: randomBytes(48).toString('base64'), // the same on every instance
      DATABASE_URL: bouncer.url,
      RATE_LIMIT_STORE: 'redis',
      INVALIDATION_BUS: 'redis',
      REDIS_URL: redis.url,
      // nginx connects from loopback: only its X-Forwarded-For entry is believed.
      TRUST_PROXY: '127.0.0.1/32',
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      PGLITE_DIR: join(dir, 'data'), // unused on PostgreSQL, but nothing lands in the working tree
      LOG_LEVEL: 'warn',
      ...options.env,
    };
    const instances = ports.map((instancePort, index) => clusterInstance(`instance ${index + 1}`, instancePort, env));
    undo.push(() => Promise.all(instances.map((instance) => instance.stop())));
    await Promise.all(instances.map((instance) => instance.start()));
    const nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir);
    const nginx = await startNginx({ upstreams: ports.map((p) => `127.0.0.1:${p}`), dir: nginxDir, port });
    undo.push(() => nginx.stop());
    return { url: nginx.url, instances, bouncer, redis, nginx, database, dir, env, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function clusterInstance(name: string, port: number, env: Record<string, string>): ClusterInstance {
  const url = `http://127.0.0.1:${port}`;
  const instance: ClusterInstance = {
    name,
    port,
    url,
    process: undefined,
    async start() {
      instance.process = await startServerProcess(name, ['bun', 'src/runtimes/bun.ts'], {
        env: { ...env, HOST: '127.0.0.1', PORT: String(port) },
        ready: { url },
        timeoutMs: INSTANCE_START_TIMEOUT_MS,
      });
    },
    async kill() {
      const running = instance.process;
      instance.process = undefined;
      if (!running) return;
      running.proc.kill('SIGKILL');
      await running.finished;
    },
    async stop() {
      const running = instance.process;
      instance.process = undefined;
      await running?.stop();
    },
  };
  return instance;
}

/** The topology as `bun run cluster` prints it. */
export function describeCluster(cluster: Cluster): string {
  const { instances, bouncer, redis, database } = cluster;
  return [
    `client → nginx ${cluster.url} (deploy/nginx.conf: passive health, idempotent retries)`,
    ...instances.map((i) => `         → ${i.name} ${i.url} (Bun; TRUST_PROXY=${cluster.env.TRUST_PROXY})`),
    `         → PgBouncer 127.0.0.1:${bouncer.port} (transaction mode, pool ${POOL_SIZE})`,
    `         → PostgreSQL ${new URL(POSTGRES_URL).host}, database ${database.name} (migrated by the CLI)`,
    `  Redis ${redis.url}: rate limits and invalidations (RATE_LIMIT_STORE=redis, INVALIDATION_BUS=redis)`,
  ].join('\n');
}
