/**
 * Operator commands: `bun run cli <command> [options]`. The database is chosen as the service chooses
 * it: DATABASE_URL, else the PGlite in PGLITE_DIR (stop the service first: one process per directory).
 */
import { parseArgs } from 'node:util';
import type { z } from 'zod';
import { parseCliConfig } from '../src/config';
import type { DatabaseHandle } from '../src/db/database';
import { migrationStatus, ROLLBACK_TO_BASE, rollbackMigrations, runMigrations } from '../src/db/migrate';
import { openDatabase } from '../src/db/open';
import { createBunHasher } from '../src/hashing/bun';
import { systemClock } from '../src/lib/clock';
import { DescribedError, describeError } from '../src/lib/logger';
import type { RequestMeta } from '../src/lib/request-meta';
import { describeIssues } from '../src/lib/validation';
import { deleteExpiredRateLimits } from '../src/rate-limit/stores';
import { UserRegisterSchema } from '../src/schemas/user';
import { importUsers, parseImportText } from '../src/services/import-users';
import { deleteEndedSessions } from '../src/services/sessions';
import { createUser, ROLES, type Role, setRoleByEmail } from '../src/services/users';

const USAGE = `usage: bun run cli <command> [options]

commands:
  migrate                          apply every pending migration        (alembic upgrade head; bun run db:migrate)
  status                           list applied and pending migrations  (alembic history/current; bun run db:status)
  rollback [--to <tag>|base]       revert the newest migration, or all after <tag>, or all (alembic downgrade)
  create-admin --email <email>     create an admin; the password is read from stdin or a prompt, never argv
  set-role --email <email> --role <user|admin>
  prune                            delete ended sessions and expired rate-limit counters; safe to run from cron
  import-users --file <path|->     import the FastAPI app's users (JSON lines or a JSON array; - is stdin),
                                   bcrypt hashes kept as they are; exit 1 when any row was rejected`;

const CLI_META: RequestMeta = { ip: null, userAgent: 'hono-postgres-auth cli' };

class UsageError extends Error {}

type Options = Record<string, string | undefined>;
type Command = (database: DatabaseHandle, options: Options) => Promise<void>;

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

/** The new admin's password: typed at a hidden prompt, or the first line of piped stdin (never argv, which `ps` shows). */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await new Response(Bun.stdin.stream()).text();
    return text.split(/\r?\n/)[0] ?? '';
  }
  process.stdout.write('Password (not shown): ');
  process.stdin.setRawMode(true);
  let password = '';
  try {
    for await (const chunk of process.stdin) {
      for (const char of String(chunk)) {
        if (char === '\r' || char === '\n') return password;
        if (char === '\u0003') throw new UsageError('cancelled');
        password = char === '\u007f' ? password.slice(0, -1) : password + char;
      }
    }
    return password;
  } finally {
    process.stdin.setRawMode(false);
    process.stdout.write('\n');
  }
}

const COMMANDS: Record<string, Command> = {
  async migrate(database) {
    const before = await migrationStatus(database.db);
    await runMigrations(database);
    const pending = before.filter((m) => !m.applied);
    console.log(pending.length === 0 ? 'nothing to migrate' : `applied ${pending.map((m) => m.tag).join(', ')}`);
  },

  async status(database) {
    const migrations = await migrationStatus(database.db);
    for (const m of migrations) {
      console.log(`${m.applied ? 'applied' : 'pending'}  ${m.tag}  (${new Date(m.createdAtMillis).toISOString()})`);
    }
    const pending = migrations.filter((m) => !m.applied).length;
    console.log(pending === 0 ? 'up to date' : `${pending} pending: run \`bun run db:migrate\``);
  },

  async rollback(database, options) {
    const reverted = await rollbackMigrations(database, { to: options.to });
    console.log(reverted.length === 0 ? 'nothing to roll back' : `rolled back ${reverted.join(', ')}`);
    if (options.to === ROLLBACK_TO_BASE) console.log("the database is empty of this service's tables");
  },

  async 'create-admin'(database, options) {
    // The same schema, and so the same password policy, as POST /register.
    const { email, password } = await parse(UserRegisterSchema, {
      email: required(options, 'email'),
      password: await readPassword(),
    });
    const hasher = createBunHasher({ cost: parseCliConfig(process.env).BCRYPT_COST, threads: 1 });
    try {
      const user = await createUser({ db: database.db, hasher }, { email, password, role: 'admin', meta: CLI_META });
      console.log(`created admin ${user.email} (id ${user.id})`);
    } finally {
      hasher.close();
    }
  },

  async 'set-role'(database, options) {
    const email = required(options, 'email');
    const role = required(options, 'role');
    if (!ROLES.includes(role as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
    const user = await setRoleByEmail(
      { db: database.db, clock: systemClock },
      { email, role: role as Role, meta: CLI_META },
    );
    console.log(`${user.email} is now ${user.role}`);
  },

  async prune(database) {
    const ctx = { db: database.db, clock: systemClock, config: parseCliConfig(process.env) };
    const sessions = await deleteEndedSessions(ctx);
    const counters = await deleteExpiredRateLimits(ctx);
    console.log(`deleted ${sessions} ended sessions and ${counters} expired rate-limit counters`);
  },

  'import-users': importUsersCommand,
};

/** `import-users`: every rejected row is reported on stderr, and any rejection makes the exit status 1. */
async function importUsersCommand(database: DatabaseHandle, options: Options): Promise<void> {
  const file = required(options, 'file');
  const text = await (file === '-' ? new Response(Bun.stdin.stream()).text() : Bun.file(file).text());
  const report = await importUsers({ db: database.db }, { inputs: parseImportText(text), meta: CLI_META });
  for (const { line, email } of report.duplicates) console.log(`line ${line}: skipped ${email}: already registered`);
  for (const { line, reason } of report.rejected) console.error(`line ${line}: rejected: ${reason}`);
  const { imported, duplicates, rejected } = report;
  console.log(
    `imported ${imported.length}, skipped ${duplicates.length} already registered, rejected ${rejected.length}`,
  );
  if (rejected.length > 0) throw new DescribedError(`${rejected.length} row(s) rejected; fix them and run again`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    console.error(USAGE);
    return 2;
  }
  let values: Options;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        to: { type: 'string' },
        email: { type: 'string' },
        role: { type: 'string' },
        file: { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const database = await openDatabase(parseCliConfig(process.env));
  try {
    await command(database, values);
  } finally {
    await database.close(); // PGlite keeps the process alive until closed
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`error: ${describeError(error)}`);
    process.exit(1);
  },
);
