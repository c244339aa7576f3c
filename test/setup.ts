/**
 * Preloaded by bunfig.toml: bun runs every test file in this one process, so the test database is made
 * once here (PGlite in memory, or a fresh PostgreSQL database when TEST_DATABASE_URL is set) and dropped
 * after the last test, so runs never collide. Made in a hook of its own, with a timeout for that work
 * (migrating a new database takes seconds on a busy machine), not inside whichever test asks first.
 */
import { afterAll, beforeAll } from 'bun:test';
import { stopAll } from '../scripts/lib/processes';
import { closeTestDatabase, testDatabase } from './helpers';

const DATABASE_SETUP_TIMEOUT_MS = 60_000;

beforeAll(async () => {
  await testDatabase();
}, DATABASE_SETUP_TIMEOUT_MS);

afterAll(async () => {
  await stopAll(); // whatever a test file left running, had it not stopped its servers itself
  await closeTestDatabase();
}, DATABASE_SETUP_TIMEOUT_MS);
