/**
 * The servers under test, each on a scratch PostgreSQL database of its own: this service on any of its
 * runtimes, and the FastAPI reference (its run.sh, in ../shared/reference/fastapi-seed). Started and
 * stopped through scripts/lib/, so a stop takes down the whole process group (run.sh + uvicorn,
 * wrangler + workerd).
 */
import { freePort, type ServerProcess, startServerProcess } from '../lib/processes';
import { type RuntimeName, startRuntime } from '../lib/runtimes';
import { type Migrate, type ScratchDatabase, scratchDatabase } from '../lib/scratch-database';
import { ADMIN_URL } from './machine';

export interface Target {
  name: string;
  base: string;
  server: ServerProcess;
  /** The server's pid, which is also its process group's id. */
  pid: number;
  db: ScratchDatabase;
}

/** A scratch database (migrated as `migrate` says), and the server `start` runs on it. */
async function startTarget(
  name: string,
  start: (databaseUrl: string) => Promise<ServerProcess>,
  migrate?: Migrate,
): Promise<Target> {
  const db = await scratchDatabase(`bench_${name}`, { adminUrl: ADMIN_URL, migrate });
  try {
    const server = await start(db.url as string);
    return { name, base: server.url, server, pid: server.proc.pid, db };
  } catch (error) {
    await db.drop();
    throw error;
  }
}

/** Off for throughput: one load generator on one IP would be limited at once (the reference has no limits either). */
const NO_LIMITS = { RATE_LIMIT_LOGIN_PER_IP: '0', RATE_LIMIT_LOGIN_FAILURES: '0', RATE_LIMIT_REGISTER_PER_IP: '0' };

/**
 * This service's environment, always behind one trusted proxy (TRUST_PROXY=1), so each request's
 * X-Forwarded-For is its client's address and one load generator can be many clients (the hash pool holds
 * one address to a tenth of its queue: one address alone measures that share, not the pool). For
 * throughput the rate limits are off; `behindProxy`, as an attacker meets it deployed: every limit at its default.
 */
export const ourEnv =
  (secret: string, cost: number, options: { behindProxy?: boolean } = {}) =>
  (url: string): Record<string, string> => ({
    DATABASE_URL: url,
    SECRET_KEY: secret,
    BCRYPT_COST: `${cost}`,
    LOG_LEVEL: 'warn',
    TRUST_PROXY: '1',
    ...(options.behindProxy ? {} : NO_LIMITS),
  });

/** This service on `runtime`; an entry other than Bun's does not migrate at start for certain (Workers cannot), so the CLI does. */
export function startOurs(runtime: RuntimeName, env: (url: string) => Record<string, string>): Promise<Target> {
  const bun = runtime === 'bun';
  return startTarget(
    bun ? 'ours' : runtime,
    // A port of its own choosing is polled: at LOG_LEVEL=warn the entries do not log `listening`.
    (url) =>
      startRuntime(runtime, { env: { ...env(url), PORT: String(freePort()) }, timeoutMs: bun ? 60_000 : 120_000 }),
    bun ? undefined : 'cli',
  );
}

/** The FastAPI app; the first run installs its Debian packages (run.sh does it), hence the long wait. */
export function startReference(dir: string, secret: string): Promise<Target> {
  return startTarget('reference', (url) => {
    const port = freePort();
    return startServerProcess('reference', ['./run.sh'], {
      cwd: dir,
      env: {
        DATABASE_URL: url.replace(/^postgres:/, 'postgresql:'),
        SECRET_KEY: secret,
        ACCESS_LOG: '0',
        PORT: String(port),
        HOST: '127.0.0.1',
      },
      ready: { url: `http://127.0.0.1:${port}`, path: '/openapi.json' }, // it has no /health
      timeoutMs: 600_000,
    });
  });
}

/** Stops the server (its whole group) and drops its database. */
export async function stopTarget(t: Target): Promise<void> {
  await t.server.stop({ group: true });
  await t.db.drop();
}
