/**
 * The Cloudflare Workers entry (wrangler.toml `main`): `bun run start:workers` locally, `wrangler deploy`.
 *
 * - Per isolate, once: the configuration (from the Worker's vars and secrets) and the instance built from it
 *   exactly as on every other runtime (runtimes/bootstrap.ts: logger, hasher, token keys).
 * - Per request: a postgres.js client with one connection (Workers cannot keep sockets across requests),
 *   closed after the response with ctx.waitUntil; through Hyperdrive when the HYPERDRIVE binding exists,
 *   else DATABASE_URL. The app is built per request around it (≈0.2 ms) with the shared `buildDeps`: the
 *   app's prepared queries and the PostgreSQL rate-limit store are tied to that request's database.
 * - No filesystem: migrations run from the CLI (`DATABASE_URL=… bun run db:migrate`), the docs assets come
 *   from the static assets binding (wrangler.toml `[assets]`, filled by scripts/build-docs-assets.ts).
 * - No PGlite and no threads: bcryptjs hashes in the request, asynchronously, so other requests of the
 *   isolate interleave.
 * - No mail sender: a Worker lives only for its requests and nodemailer's SMTP needs raw TCP. Requests queue
 *   mail in the outbox as everywhere; `bun run cli mail send` from cron (or any long-running instance on the
 *   same database) delivers it (README "Email").
 * Without a usable configuration every request answers 503 problem+json saying what is missing.
 */
import type { ExecutionContext } from 'hono';
import { localOnlyBus } from '../access/listener';
import { createApp } from '../app';
import { ConfigError, parseConfig } from '../config';
import { createPostgresDb } from '../db/client-postgres';
import { buildDeps, createInstance, type Instance } from '../deps';
import type { ReadAsset } from '../docs/assets';
import { createInlineHasher } from '../hashing/inline';
import { DescribedError } from '../lib/logger';
import { problemResponse } from '../lib/problems';
import type { RateLimits } from '../rate-limit/limits';
import { createRateLimitStore } from '../rate-limit/stores';
import { ensureSigningKey } from '../services/keys';

/** The bindings this Worker reads (wrangler.toml, `wrangler secret put`, `.dev.vars`). */
export interface WorkersEnv {
  DATABASE_URL?: string;
  SECRET_KEY?: string;
  /** A Hyperdrive binding (wrangler.toml `[[hyperdrive]]`); takes precedence over DATABASE_URL. */
  HYPERDRIVE?: { connectionString: string };
  /** The static assets binding (wrangler.toml `[assets] binding`). */
  ASSETS?: { fetch(request: Request): Promise<Response> };
  [variable: string]: unknown;
}

interface Isolate {
  instance: Instance;
  databaseUrl: string;
  /** RATE_LIMIT_STORE=memory only: per isolate, so it must outlive the request. */
  memoryLimits?: Promise<RateLimits>;
  /** When the key ring was last read from the database (ms); keys are ensured on the first request. */
  keysLoadedAt?: number;
}

// An isolate has no listener, so it learns of new keys by reading them; a retired key is refused by the
// bearer check's own query at once, this only bounds how long a successor takes to sign here.
const KEYS_RELOAD_MS = 5_000;

const ASSET_ORIGIN = 'https://assets.invalid'; // the ASSETS binding ignores the host; only the path matters

const readAssetFrom =
  (assets: WorkersEnv['ASSETS']): ReadAsset =>
  async (module) => {
    if (!assets) return null;
    const response = await assets.fetch(new Request(`${ASSET_ORIGIN}/${module}`));
    return response.ok ? response.text() : null;
  };

/** Parses the environment into what every request of this isolate shares; throws on a configuration error. */
function setUp(env: WorkersEnv): Isolate {
  const source: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env)) if (typeof value === 'string') source[key] = value;
  // In-memory limits would be per isolate, and an isolate lives only as long as Cloudflare keeps it: count
  // attempts in PostgreSQL unless told otherwise.
  source.RATE_LIMIT_STORE ??= 'postgres';
  const { config, generatedSecret } = parseConfig(source);
  if (generatedSecret) {
    // A random key per isolate would make tokens fail on whichever isolate did not issue them.
    throw new DescribedError('SECRET_KEY is not set: `wrangler secret put SECRET_KEY` (at least 32 bytes)');
  }
  if (config.RATE_LIMIT_STORE === 'redis') {
    throw new DescribedError('RATE_LIMIT_STORE=redis is not supported on Workers; use postgres or memory');
  }
  const databaseUrl = env.HYPERDRIVE?.connectionString ?? config.DATABASE_URL;
  if (!databaseUrl) {
    throw new DescribedError(
      'No database is configured: set DATABASE_URL (`wrangler secret put DATABASE_URL`) or bind Hyperdrive as ' +
        'HYPERDRIVE; the embedded PGlite is not available on Workers',
    );
  }
  return { instance: createInstance(config, { hasher: createInlineHasher(config.BCRYPT_COST) }), databaseUrl };
}

let isolate: { env: WorkersEnv; result: Isolate | Error } | undefined;

function isolateFor(env: WorkersEnv): Isolate | Error {
  if (isolate?.env !== env) {
    let result: Isolate | Error;
    try {
      result = setUp(env);
    } catch (error) {
      if (!(error instanceof ConfigError || error instanceof DescribedError)) throw error;
      console.error(JSON.stringify({ level: 'error', msg: 'configuration error', detail: error.message }));
      result = error;
    }
    isolate = { env, result };
  }
  return isolate.result;
}

export default {
  async fetch(request: Request, env: WorkersEnv, ctx: ExecutionContext): Promise<Response> {
    const shared = isolateFor(env);
    if (shared instanceof Error) {
      return problemResponse('not-configured', { detail: `The service is not configured: ${shared.message}` });
    }
    const { instance, databaseUrl } = shared;
    // No probe per request: `auto` keeps prepared statements (Hyperdrive, the pooler Workers use, supports them).
    const prepare = instance.config.DATABASE_PREPARED_STATEMENTS !== 'off';
    const database = createPostgresDb(databaseUrl, { max: 1, prepare });
    try {
      // The PostgreSQL store works on this request's connection; the memory store ignores the database. No
      // timers in a request: expired counters are swept by `bun run cli prune` (cron), not by the Worker.
      const { config, logger, clock } = instance;
      const limits = () =>
        createRateLimitStore(config, { db: database.db, logger, clock, sweep: false }).then(
          (store) => store.rateLimits,
        );
      if (config.RATE_LIMIT_STORE === 'memory') shared.memoryLimits ??= limits();
      // No listener can keep a view current here: the view stays unhealthy (every lookup reads the database)
      // and only the verified-token cache is used, per isolate; changes made here apply here at once.
      const access = localOnlyBus(instance.view);
      const now = clock.now().getTime();
      if (shared.keysLoadedAt === undefined) {
        await ensureSigningKey({ ...instance, db: database.db, access });
        shared.keysLoadedAt = now;
      } else if (now - shared.keysLoadedAt > KEYS_RELOAD_MS) {
        await instance.keys.reload(database.db);
        shared.keysLoadedAt = now;
      }
      const app = createApp(
        buildDeps(instance, {
          db: database.db,
          access,
          rateLimits: await (shared.memoryLimits ?? limits()),
          readAsset: readAssetFrom(env.ASSETS),
          // Set by Cloudflare's edge from the connection; a client cannot forge it.
          remoteAddress: (c) => c.req.header('CF-Connecting-IP'),
        }),
      );
      return await app.fetch(request, env, ctx);
    } finally {
      ctx.waitUntil(database.close());
    }
  },
};
