/**
 * What every long-running entry shares (Bun, Node, Deno): start-up (configuration, database, migrations,
 * rate-limit store, hasher, app) and the process's life (listening log, graceful shutdown). Each entry
 * supplies only what differs: how to serve, exit and hear signals.
 */
import type { Context } from 'hono';
import { createApp } from '../app';
import { type Config, ConfigError, parseConfig } from '../config';
import type { DatabaseHandle } from '../db/database';
import { runMigrations } from '../db/migrate';
import { openDatabase } from '../db/open';
import { buildDeps, createInstance } from '../deps';
import type { ReadAsset } from '../docs/assets';
import type { PasswordHasher } from '../hashing/hasher';
import type { Clock } from '../lib/clock';
import { createLogger, describeError, type Logger } from '../lib/logger';
import { createMailSender, type MailSender } from '../mail/sender';
import { createMailTransport } from '../mail/transport';
import { createRateLimitStore } from '../rate-limit/stores';

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
  /** The outbox sender, started; null in production without SMTP_URL (mail waits in the outbox). */
  mailSender: MailSender | null;
  /** Stops the mail sender, then releases the hasher, the rate-limit store and the database, in that order. */
  close(): Promise<void>;
}

/** Throws ConfigError (one line per bad variable) before touching anything else. */
export async function bootstrap(env: Record<string, unknown>, parts: RuntimeParts): Promise<Service> {
  const { config, generatedSecret } = parseConfig(env);
  const logger = createLogger(config.LOG_LEVEL);
  if (generatedSecret) {
    logger.warn('SECRET_KEY is not set: using a random key, so tokens will not survive a restart');
  }
  const database = await openDatabase(config);
  try {
    await runMigrations(database, parts.migrationsFolder);
    const instance = createInstance(config, { hasher: parts.createHasher(config.BCRYPT_COST), logger });
    const rateLimitStore = await createRateLimitStore(config, { db: database.db, logger, clock: instance.clock });
    const mailSender = startMailSender(config, { db: database.db, logger, clock: instance.clock });
    const app = createApp(
      buildDeps(instance, {
        db: database.db,
        rateLimits: rateLimitStore.rateLimits,
        readAsset: parts.readAsset,
        remoteAddress: parts.remoteAddress,
        mailQueued: mailSender ? () => mailSender.wake() : undefined,
      }),
    );
    const close = async () => {
      await mailSender?.stop();
      await instance.hasher.close();
      await rateLimitStore.close();
      await database.close();
    };
    return { app, config, logger, database, mailSender, close };
  } catch (error) {
    await database.close();
    throw error;
  }
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
  logger.info('listening', {
    url: server.url,
    database: database.driver,
    rateLimitStore: config.RATE_LIMIT_STORE,
    ...host.describe,
  });

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
