/**
 * Preloaded by bunfig.toml: bun runs every test file in this one process, so the test database is made
 * once here (PGlite in memory, or a fresh PostgreSQL database when TEST_DATABASE_URL is set) and dropped
 * after the last test, so runs never collide.
 */
import { afterAll } from 'bun:test';
import { closeTestDatabase } from './helpers';

afterAll(closeTestDatabase);
