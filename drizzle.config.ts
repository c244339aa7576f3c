import { defineConfig } from 'drizzle-kit';

// `bun run db:generate` diffs src/db/schema.ts against drizzle/meta and writes the next migration.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
  casing: 'snake_case',
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
});
