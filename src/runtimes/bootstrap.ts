/**
 * The start-up every long-running entry shares (Bun, Node, Deno): configuration,
 * database, migrations, rate-limit store, hasher, app. Serving, signals and exiting stay in each entry,
 * since those are what differ between runtimes.
 */
import type { Context } from 'hono';
import { createApp } from '../app';
import { type Config, parseConfig } from '../config';
import type { DatabaseHandle } from '../db/database';
import { runMigrations } from '../db/migrate';
import { type AppEnv, systemClock } from '../deps';
import type { ReadAsset } from '../lib/docs-assets';
import { createLogger, type Logger } from '../lib/logger';
import type { PasswordHasher } from '../lib/password-hasher';
import { openDatabase } from './open-database';
import { createRateLimitStore } from './rate-limit-store';

export interface RuntimeParts {
  createHasher(cost: number): PasswordHasher & { close(): Promise<void> };
  readAsset: ReadAsset;
  remoteAddress?: (c: Context<AppEnv>) => string | undefined;
  /** Where the migrations are, when not ./drizzle (the single binary embeds them). */
  migrationsFolder?: string;
}

export interface Service {
  app: ReturnType<typeof createApp>;
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  /** Releases the hasher, the rate-limit store and the database, in that order. */
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
    const rateLimitStore = await createRateLimitStore(config, { db: database.db, logger });
    const hasher = parts.createHasher(config.BCRYPT_COST);
    const app = createApp({
      db: database.db,
      hasher,
      config,
      clock: systemClock,
      logger,
      readAsset: parts.readAsset,
      rateLimits: rateLimitStore.rateLimits,
      remoteAddress: parts.remoteAddress,
    });
    const close = async () => {
      await hasher.close();
      await rateLimitStore.close();
      await database.close();
    };
    return { app, config, logger, database, close };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/** The URL a server listens on, for the `listening` log line (IPv6 hosts in brackets). */
export function listeningUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}
