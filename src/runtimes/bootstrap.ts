/**
 * What every long-running entry shares (Bun, Node, Deno): start-up (configuration, database, migrations,
 * rate-limit store, hasher, app) and the process's life (the start banner, graceful shutdown). Each entry
 * supplies only what differs: how to serve, exit and hear signals.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Context } from 'hono';
import packageJson from '../../package.json' with { type: 'json' };
import { startAccessBus } from '../access/listener';
import { createApp } from '../app';
import { type Config, ConfigError, parseConfig } from '../config';
import { loadOrCreateDevSecretKey, removeAdminBootstrapFile, writeAdminBootstrapFile } from '../db/data-dir';
import type { DatabaseHandle } from '../db/database';
import { runMigrations } from '../db/migrate';
import { openDatabase } from '../db/open';
import { accessSink, buildDeps, createInstance } from '../deps';
import type { ReadAsset } from '../docs/assets';
import type { PasswordHasher } from '../hashing/hasher';
import type { Clock } from '../lib/clock';
import { createLogger, describeError, type Logger } from '../lib/logger';
import { createMailSender, type MailSender } from '../mail/sender';
import { createMailTransport } from '../mail/transport';
import { createPrometheusMetrics } from '../observability/prometheus';
import { createRateLimitStore } from '../rate-limit/stores';
import { type AdminBootstrap, openAdminBootstrap } from '../services/admin-bootstrap';
import { ensureSigningKey, startKeyMaintenance } from '../services/keys';
import { hasEnabledAdmin } from '../services/users';

export interface RuntimeParts {
  createHasher(cost: number): PasswordHasher & { close(): Promise<void> };
  readAsset: ReadAsset;
  remoteAddress?: (c: Context) => string | undefined;
  /** Where the migrations are, when not ./drizzle (the single binary embeds them). */
  migrationsFolder?: string;
}

export interface Service {
  app: ReturnType<typeof createApp>;
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  /** Open while a service on PGlite has no enabled admin; its token goes to the data directory once listening. */
  adminBootstrap?: { token: string; bootstrap: AdminBootstrap };
  /** Where the development signing key is kept, when that is the key in use. */
  devKeyPath?: string;
  /** The outbox sender, started; null in production without SMTP_URL (mail waits in the outbox). */
  mailSender: MailSender | null;
  /** Stops the mail sender, then releases the hasher, the access listener, the rate-limit store and the database. */
  close(): Promise<void>;
}

/** What a person starting the service reads on stderr (stdout is the JSON log); nothing at LOG_LEVEL=silent. */
const say = (config: Config, line: string) => {
  if (config.LOG_LEVEL !== 'silent') console.error(line);
};

/**
 * Without SECRET_KEY, development signs with a key kept in the data directory, so tokens survive restarts
 * and every `bun run dev` reload; other environments get a random key per start (production refuses to
 * start without one: config.ts).
 */
function signingKey(config: Config, generatedSecret: boolean, logger: Logger): { config: Config; devKeyPath?: string } {
  if (!generatedSecret) return { config };
  if (config.NODE_ENV !== 'development') {
    logger.warn('SECRET_KEY is not set: using a random key, so tokens will not survive a restart');
    return { config };
  }
  const { key, path } = loadOrCreateDevSecretKey(config.PGLITE_DIR, () => config.SECRET_KEY);
  logger.warn('SECRET_KEY is not set: signing with the development key of the data directory', { path });
  return { config: { ...config, SECRET_KEY: key }, devKeyPath: path };
}

/** Throws ConfigError (one line per bad variable) before touching anything else. */
export async function bootstrap(env: Record<string, unknown>, parts: RuntimeParts): Promise<Service> {
  const parsed = parseConfig(env);
  const logger = createLogger(parsed.config.LOG_LEVEL);
  const { config, devKeyPath } = signingKey(parsed.config, parsed.generatedSecret, logger);
  const pgliteDir = config.DATABASE_URL ? undefined : resolve(config.PGLITE_DIR);
  // A new PGlite directory runs initdb (seconds, in WASM): say so, or a first start looks hung.
  if (pgliteDir && !existsSync(join(pgliteDir, 'PG_VERSION'))) {
    say(config, `creating the embedded database in ${pgliteDir} (first start only; this takes a few seconds)`);
  }
  const tracing = await startTracingIfConfigured(config);
  const database = await openDatabase(config, { tracer: tracing?.tracer });
  try {
    await runMigrations(database, parts.migrationsFolder);
    const adminBootstrap = pgliteDir ? await openBootstrapIfNoAdmin(database, pgliteDir) : undefined;
    const instance = createInstance(config, { hasher: parts.createHasher(config.BCRYPT_COST), logger });
    const { db } = database;
    const access = await startAccessBus(config, database, { sink: accessSink(instance, db), logger });
    const keyDeps = { ...instance, db, access };
    await ensureSigningKey(keyDeps);
    const maintenance = startKeyMaintenance(keyDeps);
    const rateLimitStore = await createRateLimitStore(config, { db, logger, clock: instance.clock });
    const mailSender = startMailSender(config, { db, logger, clock: instance.clock });
    const app = createApp(
      buildDeps(instance, {
        db,
        access,
        rateLimits: rateLimitStore.rateLimits,
        readAsset: parts.readAsset,
        remoteAddress: parts.remoteAddress,
        adminBootstrap: adminBootstrap?.bootstrap,
        mailQueued: mailSender ? () => mailSender.wake() : undefined,
        metrics: createPrometheusMetrics(),
        tracer: tracing?.tracer,
        poolStats: database.stats,
      }),
    );
    const close = async () => {
      await mailSender?.stop();
      maintenance.stop();
      adminBootstrap?.bootstrap.close();
      await instance.hasher.close();
      await access.stop();
      await rateLimitStore.close();
      await database.close();
      await tracing?.shutdown(); // last: it exports what the rest did while closing
    };
    return { app, config, logger, database, adminBootstrap, devKeyPath, mailSender, close };
  } catch (error) {
    await database.close();
    await tracing?.shutdown();
    throw error;
  }
}

/**
 * OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is set, and only then imported: the SDK costs start-up
 * time and memory a service without a collector should not pay.
 */
async function startTracingIfConfigured(config: Config) {
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  const { startTracing } = await import('../observability/otel');
  return startTracing({ endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: config.OTEL_SERVICE_NAME });
}

/**
 * The first admin's path on PGlite (services/admin-bootstrap.ts): open only while no enabled admin exists.
 * The directory is this process's alone now (client-pglite's lock), so a token file found there is stale.
 */
async function openBootstrapIfNoAdmin(database: DatabaseHandle, dir: string) {
  removeAdminBootstrapFile(dir);
  if (await hasEnabledAdmin({ db: database.db })) return undefined;
  return openAdminBootstrap({ onClose: () => removeAdminBootstrapFile(dir) });
}

/**
 * The outbox sender of this instance (README "Email"): SMTP, or .eml files in development; none in
 * production without SMTP_URL, where mail waits in the outbox and the log says so once.
 */
function startMailSender(config: Config, deps: { db: DatabaseHandle['db']; logger: Logger; clock: Clock }) {
  const { logger } = deps;
  if (config.NODE_ENV === 'production' && !config.PUBLIC_URL) {
    logger.warn('PUBLIC_URL is not set: links in mail point to http://localhost; set it to the public address');
  }
  const transport = createMailTransport(config, { logger });
  if (!transport) {
    logger.warn('SMTP_URL is not set: mail is queued in the outbox but not sent (`bun run cli mail status`)');
    return null;
  }
  const sender = createMailSender({ ...deps, config, transport });
  sender.start();
  return sender;
}

/** The URL a server listens on, for the `listening` log line (IPv6 hosts in brackets). */
export function listeningUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}

/**
 * The URL that reaches a server from this machine, without a trailing slash: a wildcard address (every
 * interface) is reached on loopback, and a browser shows `localhost` there.
 */
function localUrl(listening: string, loopback: string): string {
  const url = new URL(listening);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = loopback;
  return url.href.replace(/\/$/, '');
}

/** The database, as the banner names it: never a password. */
export function describeDatabase(config: Pick<Config, 'DATABASE_URL' | 'PGLITE_DIR'>): string {
  if (!config.DATABASE_URL) return `PGlite (embedded) in ${resolve(config.PGLITE_DIR)}`;
  const url = new URL(config.DATABASE_URL);
  url.password = '';
  url.search = ''; // libpq-style parameters may carry a password too
  return `PostgreSQL at ${url.href}`;
}

/** The start banner: where the API and its docs are, which database, and what a first run still needs. */
function banner(service: Service, url: string, cli: string): string {
  const { config, adminBootstrap, devKeyPath } = service;
  const lines = [
    `${packageJson.name} ${packageJson.version} is listening on ${url}`,
    `  docs       ${url}/docs  (ReDoc: ${url}/redoc, OpenAPI: ${url}/openapi.json)`,
    `  database   ${describeDatabase(config)}`,
  ];
  if (devKeyPath)
    lines.push(`  tokens     signed with the development key in ${devKeyPath} (set SECRET_KEY in production)`);
  if (adminBootstrap) {
    lines.push(`  no admin   create the first one, also while this runs: ${cli} create-admin --email you@example.com`);
  }
  return lines.join('\n');
}

const SHUTDOWN_GRACE_MS = 15_000; // in-flight requests get this long to finish after SIGTERM

/** What differs between the long-running runtimes: how to listen, exit and hear signals. */
export interface Host {
  env: Record<string, unknown>;
  parts: RuntimeParts;
  /** Starts serving; `stop` stops accepting and resolves once in-flight requests have finished. */
  listen(service: Service): Promise<{ url: string; stop(): Promise<void> }>;
  onSignal(signal: 'SIGTERM' | 'SIGINT', handler: () => void): void;
  onUnhandledRejection(handler: (reason: unknown) => void): void;
  exit(code: number): never;
  /** Extra fields for the `listening` log line (e.g. the runtime's version). */
  describe?: Record<string, string>;
  /** How the operator CLI is run next to this entry, for the banner (default `bun run cli`). */
  cli?: string;
}

/**
 * The whole life of a server process, the same on Bun, Node and Deno: start (a configuration error is one
 * line on stderr and exit 1), log `listening`, and on SIGTERM/SIGINT stop accepting, let in-flight requests
 * finish, release everything and exit 0.
 */
export async function runServer(host: Host): Promise<void> {
  let service: Service;
  try {
    service = await bootstrap(host.env, host.parts);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : `failed to start: ${describeError(error)}`);
    host.exit(1);
  }
  const { config, logger, database } = service;
  // The runtimes exit on an unhandled rejection. A stray one (say, from a connection dropped while idle) is
  // a bug to log and fix, not a reason to take down every request in flight.
  host.onUnhandledRejection((reason) => logger.error('unhandled rejection', { error: describeError(reason) }));

  let server: Awaited<ReturnType<Host['listen']>>;
  try {
    server = await host.listen(service);
  } catch (error) {
    console.error(`failed to start: ${describeError(error)}`);
    await service.close();
    host.exit(1);
  }
  if (service.adminBootstrap) {
    // For `create-admin` while this process holds the PGlite directory (written before `listening`, so it is
    // there once that is logged); the token itself is never logged.
    const { token } = service.adminBootstrap;
    writeAdminBootstrapFile(config.PGLITE_DIR, { url: localUrl(server.url, '127.0.0.1'), token, pid: process.pid });
  }
  logger.info('listening', {
    url: server.url,
    database: database.driver,
    rateLimitStore: config.RATE_LIMIT_STORE,
    ...host.describe,
  });
  say(config, banner(service, localUrl(server.url, 'localhost'), host.cli ?? 'bun run cli'));

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    const timer = setTimeout(() => {
      logger.error('in-flight requests did not finish in time; exiting');
      host.exit(1);
    }, SHUTDOWN_GRACE_MS);
    await server.stop();
    await service.close();
    clearTimeout(timer);
    logger.info('stopped');
    host.exit(0);
  };
  host.onSignal('SIGTERM', () => void shutdown('SIGTERM'));
  host.onSignal('SIGINT', () => void shutdown('SIGINT'));
}
