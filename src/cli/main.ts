/**
 * The operator CLI: `bun run cli <command>` (scripts/cli.ts) and `./hono-postgres-auth cli <command>` (the
 * single binary, src/runtimes/bun.ts). The database is chosen as the service chooses it: DATABASE_URL, else
 * the PGlite in PGLITE_DIR. A PGlite directory belongs to one process: while the service runs on it, every
 * command but `create-admin` asks to stop it first, and `create-admin` asks the running service instead.
 *
 * Errors print one sentence (a DescribedError's, or the class and codes of anything else), never an error
 * message: a failed query's message lists its parameters, a new admin's bcrypt hash among them.
 */
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import packageJson from '../../package.json' with { type: 'json' };
import { localOnlyBus } from '../access/listener';
import { parseCliConfig, parseConfig } from '../config';
import { DataDirLockedError } from '../db/client-pglite';
import type { DatabaseHandle } from '../db/database';
import { MIGRATIONS_FOLDER, migrationStatus, ROLLBACK_TO_BASE, rollbackMigrations, runMigrations } from '../db/migrate';
import { openDatabase } from '../db/open';
import { createBunHasher } from '../hashing/bun';
import { systemClock } from '../lib/clock';
import { createLogger, DescribedError, describeError } from '../lib/logger';
import type { RequestMeta } from '../lib/request-meta';
import { describeIssues } from '../lib/validation';
import { deleteExpiredRateLimits } from '../rate-limit/stores';
import { UserRegisterSchema } from '../schemas/user';
import { importUsers, parseImportText } from '../services/import-users';
import { createKeyRing, listSigningKeys, retireSigningKey, rotateSigningKey } from '../services/keys';
import { deleteExpiredLinkTokens } from '../services/link-tokens';
import { deleteEndedMfaChallenges, resetSecondFactorByEmail } from '../services/mfa';
import { deleteOldSentMail } from '../services/outbox';
import { deleteEndedSessions } from '../services/sessions';
import { createUser, ROLES, type Role, setRoleByEmail } from '../services/users';
import { backup, restore } from './backup';
import { MAIL_USAGE, mailCommand } from './mail';
import { readPassword } from './password-prompt';
import { CLI_USER_AGENT, createAdminThroughService } from './running-service';

export interface CliContext {
  /** How the user runs the CLI, for the usage and the hints: `bun run cli` or `./hono-postgres-auth cli`. */
  program: string;
  /** The command that applies the migrations, as hints name it. */
  migrateCommand: string;
  /** Where the migrations are (the single binary embeds them). */
  migrationsFolder?: string;
  env: Record<string, string | undefined>;
}

const CLI_META: RequestMeta = { ip: null, userAgent: CLI_USER_AGENT };

/** Commands that work on a database that is not (fully) migrated; every other one refuses it with a hint. */
const MIGRATION_COMMANDS = new Set(['migrate', 'status', 'rollback']);

const usage = ({ program }: CliContext) => `usage: ${program} <command> [options]

commands:
  migrate                          apply every pending migration        (alembic upgrade head)
  status                           list applied and pending migrations  (alembic history/current)
  rollback [--to <tag>|base]       revert the newest migration, or all after <tag>, or all (alembic downgrade)
  create-admin --email <email>     create an admin; the password is read from stdin or a prompt, never argv.
                                   Works while the service runs on PGLITE_DIR too, until the first admin exists
  set-role --email <email> --role <user|admin>
  reset-mfa --email <email>        remove every second factor of the user and end their sessions (audited
                                   mfa_reset): for the only admin who lost theirs
  prune                            delete ended sessions, expired rate-limit counters, link tokens and mfa_tokens,
                                   and sent mail older than a week; safe to run from cron
  import-users --file <path|->     import the FastAPI app's users (JSON lines or a JSON array; - is stdin),
                                   bcrypt hashes kept as they are; exit 1 when any row was rejected
  keys list                        the signing keys and their states (needs the service's SECRET_KEY)
  keys rotate                      a new key: published now, signing after JWKS_MAX_AGE_SECONDS
  keys retire <kid>                the emergency stop: every token of that key fails at once, everywhere
${MAIL_USAGE}
  backup <file>                    PostgreSQL: pg_dump custom format; PGlite: a dump of PGLITE_DIR (stop the
                                   service first)
  restore <file> [--force]         into an empty database or directory; --force replaces what is there
  help                             this text (also --help)

The database is DATABASE_URL, else the embedded PGlite in PGLITE_DIR (default ./data).
Exit status: 0 done, 1 failed (the reason on stderr), 2 a usage error.`;

class UsageError extends Error {}

type Options = Record<string, string | undefined>;
type Command = (database: DatabaseHandle, options: Options, context: CliContext & { args: string[] }) => Promise<void>;

function required(options: Options, name: string): string {
  const value = options[name];
  if (!value) throw new UsageError(`--${name} is required`);
  return value;
}

async function parse<S extends z.ZodType>(schema: S, value: unknown): Promise<z.output<S>> {
  const result = await schema.safeParseAsync(value);
  if (!result.success) throw new UsageError(describeIssues(result.error));
  return result.data;
}

/** The new admin's email and password, checked with the schema (and so the password policy) of POST /register. */
async function readAdmin(options: Options): Promise<{ email: string; password: string }> {
  const email = required(options, 'email');
  return parse(UserRegisterSchema, { email, password: await readPassword() });
}

const COMMANDS: Record<string, Command> = {
  async migrate(database, _options, { migrationsFolder }) {
    const before = await migrationStatus(database.db, migrationsFolder);
    await runMigrations(database, migrationsFolder);
    const pending = before.filter((m) => !m.applied);
    console.log(pending.length === 0 ? 'nothing to migrate' : `applied ${pending.map((m) => m.tag).join(', ')}`);
  },

  async status(database, _options, { migrationsFolder, migrateCommand }) {
    const migrations = await migrationStatus(database.db, migrationsFolder);
    for (const m of migrations) {
      console.log(`${m.applied ? 'applied' : 'pending'}  ${m.tag}  (${new Date(m.createdAtMillis).toISOString()})`);
    }
    const pending = migrations.filter((m) => !m.applied).length;
    console.log(pending === 0 ? 'up to date' : `${pending} pending: run \`${migrateCommand}\``);
  },

  async rollback(database, options, { migrationsFolder }) {
    const reverted = await rollbackMigrations(database, { to: options.to }, migrationsFolder);
    console.log(reverted.length === 0 ? 'nothing to roll back' : `rolled back ${reverted.join(', ')}`);
    if (options.to === ROLLBACK_TO_BASE) console.log("the database is empty of this service's tables");
  },

  async 'set-role'(database, options) {
    const email = required(options, 'email');
    const role = required(options, 'role');
    if (!ROLES.includes(role as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
    // Other instances hear of it from the database itself (migration 0003's triggers).
    const user = await setRoleByEmail(
      { db: database.db, clock: systemClock, access: localOnlyBus() },
      { email, role: role as Role, meta: CLI_META },
    );
    console.log(`${user.email} is now ${user.role}`);
  },

  async 'reset-mfa'(database, options) {
    const email = required(options, 'email');
    const { email: found, sessionsRevoked } = await resetSecondFactorByEmail(
      { db: database.db, clock: systemClock, access: localOnlyBus() },
      { email, meta: CLI_META },
    );
    console.log(`removed every second factor of ${found}; ended ${sessionsRevoked} sessions`);
  },

  async prune(database, _options, { env }) {
    const ctx = { db: database.db, clock: systemClock, config: parseCliConfig(env) };
    const sessions = await deleteEndedSessions(ctx);
    const counters = await deleteExpiredRateLimits(ctx);
    const links = await deleteExpiredLinkTokens(ctx);
    const mail = await deleteOldSentMail(ctx);
    const challenges = await deleteEndedMfaChallenges(ctx);
    console.log(`deleted ${sessions} ended sessions and ${counters} expired rate-limit counters`);
    console.log(`deleted ${links} expired link tokens and ${mail} sent messages older than a week`);
    console.log(`deleted ${challenges} spent or expired mfa_tokens`);
  },

  mail: (database, options, { env, args }) =>
    mailCommand(database, { to: options.to, all: options.all === 'true', env }, args, (m) => new UsageError(m)),

  'import-users': importUsersCommand,
  keys: keysCommand,
};

/** `keys list | rotate | retire <kid>`: the database's key ring, by the service's own rules (services/keys.ts). */
async function keysCommand(
  database: DatabaseHandle,
  _options: Options,
  { env, args: [action, kid] }: CliContext & { args: string[] },
) {
  const { config, generatedSecret } = parseConfig(env);
  if (generatedSecret)
    throw new UsageError("keys needs the service's SECRET_KEY: the private halves are sealed with it");
  const logger = createLogger('warn', (line) => console.error(line));
  const deps = {
    config,
    clock: systemClock,
    logger,
    db: database.db,
    keys: createKeyRing({ config, clock: systemClock, logger }),
    access: localOnlyBus(), // other instances hear of every key change from the database (migration 0003)
  };
  if (action === 'rotate') {
    const rotated = await rotateSigningKey(deps);
    console.log(`rotated: ${rotated?.kid} (published now, signs from ${rotated?.activatesAt.toISOString()})`);
  } else if (action === 'retire') {
    if (!kid) throw new UsageError('keys retire needs the kid of the key (see `keys list`)');
    await retireSigningKey(deps, { kid });
    console.log(`retired: ${kid}; every token it signed fails from now on`);
  } else if (action !== 'list') {
    throw new UsageError('keys takes list, rotate or retire <kid>');
  }
  if (config.JWT_ALGORITHM === 'HS256') {
    console.log('JWT_ALGORITHM=HS256: tokens are signed with SECRET_KEY; no keys are kept or published');
    return;
  }
  const at = (date: Date | null) => date?.toISOString() ?? '-';
  console.log(['kid', 'alg', 'state', 'created', 'signs from', 'signed until', 'unpublished at'].join('\t'));
  for (const key of await listSigningKeys(deps)) {
    const when = [key.createdAt, key.activatesAt, key.signedUntil, key.unpublishAt].map(at);
    console.log([key.kid, key.alg, key.state, ...when].join('\t'));
  }
}

/** `import-users`: progress on stderr, every rejected row on stderr, and any rejection makes the exit status 1. */
async function importUsersCommand(database: DatabaseHandle, options: Options): Promise<void> {
  const file = required(options, 'file');
  const text = await (file === '-' ? new Response(Bun.stdin.stream()).text() : Bun.file(file).text());
  // On a terminal one line that updates; in a log, a line per batch.
  const tty = process.stderr.isTTY;
  const report = await importUsers(
    { db: database.db },
    {
      inputs: parseImportText(text),
      meta: CLI_META,
      onProgress: ({ done, total }) =>
        process.stderr.write(`${tty ? '\r' : ''}importing: ${done} of ${total} valid rows written${tty ? '' : '\n'}`),
    },
  );
  if (tty && report.imported.length + report.duplicates.length > 0) process.stderr.write('\n');
  for (const { line, email } of report.duplicates) console.log(`line ${line}: skipped ${email}: already registered`);
  for (const { line, reason } of report.rejected) console.error(`line ${line}: rejected: ${reason}`);
  const { imported, duplicates, rejected } = report;
  console.log(
    `imported ${imported.length}, skipped ${duplicates.length} already registered, rejected ${rejected.length}`,
  );
  if (rejected.length > 0) throw new DescribedError(`${rejected.length} row(s) rejected; fix them and run again`);
}

/** Every command but the migration ones needs this build's whole schema; say how to get it, not a failed query. */
async function assertMigrated(database: DatabaseHandle, context: CliContext): Promise<void> {
  const migrations = await migrationStatus(database.db, context.migrationsFolder);
  const pending = migrations.filter((m) => !m.applied).length;
  if (pending === 0) return;
  const state = pending === migrations.length ? 'is not migrated' : `has ${pending} pending migration(s)`;
  throw new DescribedError(`the database ${state}: run \`${context.migrateCommand}\` first`);
}

/** create-admin: directly on the database, or through the service that holds the PGlite directory. */
async function createAdmin(options: Options, context: CliContext): Promise<void> {
  const admin = await readAdmin(options);
  const config = parseCliConfig(context.env);
  let database: DatabaseHandle;
  try {
    database = await openDatabase(config);
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    console.log(await createAdminThroughService({ dir: config.PGLITE_DIR, admin, locked: error }));
    return;
  }
  const hasher = createBunHasher({ cost: config.BCRYPT_COST, threads: 1 });
  try {
    await assertMigrated(database, context);
    // The operator vouches for the address: verified, and no verification mail.
    const user = await createUser(
      { db: database.db, hasher, clock: systemClock, config },
      { ...admin, role: 'admin', meta: CLI_META, emailVerified: true },
    );
    console.log(`created admin ${user.email} (id ${user.id})`);
  } finally {
    hasher.close();
    await database.close(); // PGlite keeps the process alive until closed
  }
}

async function run(argv: string[], context: CliContext): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError('a command is required');
  let values: Options;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      // A kid is a base64url JWK thumbprint and may begin with `-`: what follows `keys retire` is never an option.
      args: name === 'keys' && rest[0] === 'retire' && rest.length === 2 ? ['retire', '--', rest[1] as string] : rest,
      options: {
        to: { type: 'string' },
        email: { type: 'string' },
        role: { type: 'string' },
        file: { type: 'string' },
        all: { type: 'boolean' },
        force: { type: 'boolean' },
      },
      // `keys retire <kid>`, `mail retry 12`, `backup <file>`
      allowPositionals: ['keys', 'mail', 'backup', 'restore'].includes(name),
      strict: true,
    });
    values = {
      ...parsed.values,
      all: parsed.values.all ? 'true' : undefined,
      force: parsed.values.force ? 'true' : undefined,
    };
    positionals = parsed.positionals;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (name === 'create-admin') return createAdmin(values, context);
  if (name === 'backup' || name === 'restore') return backupCommand(name, values, positionals, context);
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command: ${name}`);
  const database = await openDatabase(parseCliConfig(context.env));
  try {
    if (!MIGRATION_COMMANDS.has(name)) await assertMigrated(database, context);
    await command(database, values, { ...context, args: positionals });
  } finally {
    await database.close(); // PGlite keeps the process alive until closed
  }
}

/** backup and restore open the database their own way: pg_dump, pg_restore, or PGlite's dump of the directory. */
async function backupCommand(name: 'backup' | 'restore', options: Options, args: string[], context: CliContext) {
  const [file, ...extra] = args;
  if (!file || extra.length > 0) throw new UsageError(`${name} takes one file: ${name} <file>`);
  const target = parseCliConfig(context.env);
  console.log(
    name === 'backup' ? await backup(target, file) : await restore(target, file, { force: options.force === 'true' }),
  );
}

/** `help`, or `--help` / `-h` anywhere (`create-admin --help` asks for help, not for an admin). */
const wantsHelp = (argv: string[]) => argv[0] === 'help' || argv.some((arg) => arg === '--help' || arg === '-h');

/** Runs one command; resolves with the exit status (0 done, 1 failed, 2 usage), having printed why. */
export async function runCli(argv: string[], context: CliContext): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(usage(context));
    return 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    console.log(`${packageJson.name} ${packageJson.version}`);
    return 0;
  }
  try {
    await run(argv, { ...context, migrationsFolder: context.migrationsFolder ?? MIGRATIONS_FOLDER });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${usage(context)}`);
      return 2;
    }
    console.error(`error: ${describeError(error)}`);
    return 1;
  }
}
