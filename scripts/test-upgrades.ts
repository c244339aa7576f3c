/**
 * `bun run test:upgrades` (run by .ci/run): the N−1 test of every migration drizzle/upgrades.json declares
 * online. For each, the release just before it (the first-parent commit before the one that brought the
 * migration to this branch) is exported with `git archive`, installed (`bun install`, from the cache), and
 * started against a PostgreSQL database migrated to the schema that came with the migration; then a
 * black-box smoke runs against it: register, log in, /users/me, refresh and logout where that release had
 * them. An online migration is one the previous release survives while instances are upgraded one by one
 * (README "Upgrades"); this is what holds the claim.
 *
 * Needs the git history (CI runs on a full clone): without it, it says so and passes nothing.
 * Ends with "N passed, N failed" (the line .ci/run sums).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, PROJECT_ROOT, runOrThrow, runProcess, startServerProcess, stopAll } from './lib/processes';
import { dropAllScratchDatabases, scratchDatabase } from './lib/scratch-database';
import type { Upgrades } from './lint-migrations';

const ADMIN_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const SECRET_KEY = 'upgrade-test-secret-key-of-at-least-32-bytes';
const START_TIMEOUT_MS = 90_000;
const PASSWORD = 'correct horse battery';

async function git(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await runProcess(['git', ...args]);
  if (code !== 0) throw new Error(`git ${args.join(' ')}: ${stderr.trim()}`);
  return stdout.trim();
}

/** Why the history cannot answer, or null when it can. */
async function missingHistory(): Promise<string | null> {
  const inside = await runProcess(['git', 'rev-parse', '--is-inside-work-tree']);
  if (inside.code !== 0) return 'this is not a git checkout';
  if ((await git('rev-parse', '--is-shallow-repository')) === 'true') return 'this is a shallow clone';
  return null;
}

/** For each migration tag: the first commit of the first-parent history whose tree has it. */
async function commitsAdding(tags: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const commit of (await git('rev-list', '--first-parent', '--reverse', 'HEAD')).split('\n')) {
    const files = await git('ls-tree', '--name-only', commit, 'drizzle/');
    for (const tag of tags)
      if (!found.has(tag) && files.split('\n').includes(`drizzle/${tag}.sql`)) found.set(tag, commit);
    if (found.size === tags.length) break;
  }
  return found;
}

/** `git archive` of `commit` (or of its `path`) into a new temporary directory. */
async function exportTree(commit: string, label: string, path?: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `hpa-upgrade-${label}-`));
  await runOrThrow(['bash', '-c', `git archive ${commit} ${path ?? ''} | tar -x -C "${dir}"`]);
  return dir;
}

const json = (res: Response) => res.json() as Promise<Record<string, unknown>>;

/** The black-box smoke, as far as that release's OpenAPI document has the operations. */
async function smoke(url: string): Promise<string[]> {
  const done: string[] = [];
  const expectStatus = async (what: string, res: Response, status: number) => {
    if (res.status !== status) throw new Error(`${what}: ${res.status} ${await res.text()}`);
    done.push(what);
  };
  const openapi = await (await fetch(`${url}/openapi.json`)).text();
  const email = `upgrade-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
  await expectStatus(
    'register',
    await fetch(`${url}/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    }),
    201,
  );
  const token = await fetch(`${url}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: email, password: PASSWORD }),
  });
  const pair = token.status === 200 ? await json(token) : {};
  await expectStatus('login', token, 200);
  const bearer = { Authorization: `Bearer ${pair.access_token}` };
  await expectStatus('/users/me', await fetch(`${url}/users/me`, { headers: bearer }), 200);
  let access = pair.access_token;
  if (openapi.includes('refresh_token') && typeof pair.refresh_token === 'string') {
    const refreshed = await fetch(`${url}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: pair.refresh_token }),
    });
    if (refreshed.status === 200) access = (await json(refreshed)).access_token;
    await expectStatus('refresh', refreshed, 200);
  }
  if (openapi.includes('"/logout"')) {
    const headers = { Authorization: `Bearer ${access}` };
    await expectStatus('logout', await fetch(`${url}/logout`, { method: 'POST', headers }), 204);
    const after = await fetch(`${url}/users/me`, { headers });
    await expectStatus('/users/me after logout', after, 401);
  }
  return done;
}

/**
 * `adding` is the commit that brought the migration; undefined while it is not committed yet (a migration
 * being written), when its schema is this checkout's and the release before it is HEAD.
 */
async function checkMigration(tag: string, adding: string | undefined): Promise<void> {
  const previous = await git('rev-parse', adding ? `${adding}^1` : 'HEAD');
  const short = (commit: string) => commit.slice(0, 8);
  console.log(
    `\n${tag}: added in ${adding ? short(adding) : 'the work tree'}; the release before it is ${short(previous)}`,
  );
  const schema = adding ? await exportTree(adding, 'schema', 'drizzle') : PROJECT_ROOT;
  const app = await exportTree(previous, 'app');
  const database = await scratchDatabase('upgrade', { adminUrl: ADMIN_URL });
  try {
    // The schema that came with the migration, by this checkout's migrator (drizzle's SQL files and journal).
    const { runMigrations } = await import('../src/db/migrate');
    const handle = await database.open();
    try {
      await runMigrations(handle, join(schema, 'drizzle'));
    } finally {
      await handle.close();
    }
    // Only what the server needs, and no install scripts (they would fetch runtimes the server never uses).
    await runOrThrow(['bun', 'install', '--frozen-lockfile', '--production', '--ignore-scripts'], { cwd: app });
    const port = freePort();
    const server = await startServerProcess(`the release before ${tag}`, ['bun', 'src/runtimes/bun.ts'], {
      cwd: app,
      env: {
        ...database.env,
        SECRET_KEY,
        BCRYPT_COST: '4',
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        EMAIL_VERIFICATION: 'off',
      },
      ready: { url: `http://127.0.0.1:${port}` },
      timeoutMs: START_TIMEOUT_MS,
    });
    try {
      console.log(`  ok: ${(await smoke(server.url)).join(', ')}`);
    } finally {
      await server.stop({ group: true });
    }
  } finally {
    await database.drop();
    if (schema !== PROJECT_ROOT) rmSync(schema, { recursive: true, force: true });
    rmSync(app, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const why = await missingHistory();
  if (why) {
    console.log(`SKIPPED: the N−1 upgrade test needs the git history, and ${why} (CI runs on a full clone)`);
    console.log('0 passed, 0 failed');
    return 0;
  }
  const upgrades = JSON.parse(readFileSync(join(PROJECT_ROOT, 'drizzle/upgrades.json'), 'utf8')) as Upgrades;
  const online = Object.entries(upgrades)
    .filter(([, entry]) => entry.mode === 'online')
    .map(([tag]) => tag);
  const adding = await commitsAdding(online);
  let passed = 0;
  let failed = 0;
  for (const tag of online) {
    try {
      await checkMigration(tag, adding.get(tag));
      passed++;
    } catch (error) {
      failed++;
      console.log(`  FAILED: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  console.log(`\n${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} finally {
  await stopAll();
  await dropAllScratchDatabases();
}
process.exit(code);
