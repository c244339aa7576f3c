/** `bun run cli <command> [options]`: the operator CLI (src/cli/main.ts); `bun run cli help` lists the commands. */
import { runCli } from '../src/cli/main';

process.exit(
  await runCli(process.argv.slice(2), {
    program: 'bun run cli',
    migrateCommand: 'bun run db:migrate',
    env: process.env,
  }),
);
