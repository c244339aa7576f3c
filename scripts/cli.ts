/**
 * Operator commands: `bun run cli <command>`.
 *   migrate   apply every pending migration in ./drizzle   (alembic upgrade head)
 *   status    list applied and pending migrations        (alembic history / current)
 * The database is chosen as the service chooses it: DATABASE_URL, else the PGlite in PGLITE_DIR.
 */
import { ConfigError, parseDatabaseConfig } from '../src/config';
import type { DatabaseHandle } from '../src/db/database';
import { migrationStatus, runMigrations } from '../src/db/migrate';
import { openDatabase } from '../src/runtimes/open-database';

const USAGE = `usage: bun run cli <command>

commands:
  migrate   apply every pending migration (also: bun run db:migrate)
  status    list applied and pending migrations (also: bun run db:status)`;

const COMMANDS: Record<string, (database: DatabaseHandle) => Promise<void>> = {
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
};

async function main(argv: string[]): Promise<number> {
  const command = argv[0] === undefined ? undefined : COMMANDS[argv[0]];
  if (!command) {
    console.error(USAGE);
    return 2;
  }
  const database = await openDatabase(parseDatabaseConfig(process.env));
  try {
    await command(database);
  } finally {
    await database.close(); // PGlite keeps the process alive until closed
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
    console.error(`error: ${message}`);
    process.exit(1);
  },
);
