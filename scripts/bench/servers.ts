/**
 * The servers under test, each on a scratch PostgreSQL database of its own: this service on any of its
 * runtimes, and the FastAPI reference (its run.sh, in ../shared/reference/fastapi-seed). Started and
 * stopped through scripts/lib/processes.ts, so a stop takes down the whole process group (run.sh +
 * uvicorn, wrangler + workerd).
 */
import { freePort, type ServerProcess, startServerProcess } from '../lib/processes';
import { RUNTIMES, type RuntimeName } from '../lib/runtimes';
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

async function startTarget(
  name: string,
  cmd: string[],
  o: {
    cwd?: string;
    env: (databaseUrl: string) => Record<string, string>;
    readyPath: string;
    timeoutMs: number;
    migrate?: Migrate;
  },
): Promise<Target> {
  const db = await scratchDatabase(`bench_${name}`, { adminUrl: ADMIN_URL, migrate: o.migrate });
  try {
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    const server = await startServerProcess(name, cmd, {
      cwd: o.cwd,
      env: { ...o.env(db.url as string), PORT: String(port), HOST: '127.0.0.1' },
      ready: { url: base, path: o.readyPath },
      timeoutMs: o.timeoutMs,
    });
    return { name, base, server, pid: server.proc.pid, db };
  } catch (error) {
    await db.drop();
    throw error;
  }
}

/** This service's environment: the rate limits off, since one load generator on one IP would be limited at once. */
export const ourEnv = (secret: string, cost: number) => (url: string) => ({
  DATABASE_URL: url,
  SECRET_KEY: secret,
  BCRYPT_COST: `${cost}`,
  LOG_LEVEL: 'warn',
  // The reference has no limits either.
  RATE_LIMIT_LOGIN_PER_IP: '0',
  RATE_LIMIT_LOGIN_FAILURES: '0',
  RATE_LIMIT_REGISTER_PER_IP: '0',
});

/** This service on `runtime`; an entry other than Bun's does not migrate at start for certain (Workers cannot), so the CLI does. */
export function startOurs(runtime: RuntimeName, env: (url: string) => Record<string, string>): Promise<Target> {
  const bun = runtime === 'bun';
  return startTarget(bun ? 'ours' : runtime, RUNTIMES[runtime].command, {
    env,
    readyPath: '/health',
    timeoutMs: bun ? 60_000 : 120_000,
    migrate: bun ? undefined : 'cli',
  });
}

/** The FastAPI app; the first run installs its Debian packages (run.sh does it), hence the long wait. */
export function startReference(dir: string, secret: string): Promise<Target> {
  return startTarget('reference', ['./run.sh'], {
    cwd: dir,
    env: (url) => ({ DATABASE_URL: url.replace(/^postgres:/, 'postgresql:'), SECRET_KEY: secret, ACCESS_LOG: '0' }),
    readyPath: '/openapi.json', // it has no /health
    timeoutMs: 600_000,
  });
}

/** Stops the server (its whole group) and drops its database. */
export async function stopTarget(t: Target): Promise<void> {
  await t.server.stop({ group: true });
  await t.db.drop();
}
