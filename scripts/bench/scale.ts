/**
 * Scale figures (issue 15 item 8), `bun run bench --only scale` or `bun run bench:scale`:
 *
 * - **1,000 → 1,000,000 users.** This service (the Bun entry) on a scratch PostgreSQL database, with no
 *   access view (ACCESS_VIEW_MAX_ENTRIES=0: every `GET /users/me` reads its user and session by index, which
 *   is what a larger table could slow down; with the view it answers from memory whatever the table's
 *   size). Logins (wrk over the seeded users) and `GET /users/me` at 1,000 users, then again once COPY has
 *   grown the table to 1,000,000 (then ANALYZE). The seeded rows are copies of one registered user's row
 *   with other emails: they share its real bcrypt hash at the bench's cost, so every login still verifies
 *   one, but 1,000,000 registrations through the API (one hash each) would take days at cost 12.
 * - **Through nginx with one, two and three instances**: `bun run cluster`'s topology (scripts/cluster/)
 *   for each count — nginx, the instances, PgBouncer (transaction mode, pool 5), Redis — and `GET
 *   /users/me` through the balancer; for one instance also past it, to show what nginx's hop costs.
 *   wrk and nginx run on the same cores as the instances, so on a small machine the figures show the shape
 *   (how far instances add up when the cores are already shared) and the balancer's overhead, not capacity.
 */
import { availableParallelism } from 'node:os';
import postgres from 'postgres';
import { type Cluster, startCluster } from '../cluster/cluster';
import { log } from './log';
import { waitForQuietMachine, waitIdle } from './machine';
import { type SeededUsers, seed } from './seed';
import { startOurs, stopTarget, type Target } from './servers';
import { type WrkResult, wrk } from './wrk';

export const SMALL_USERS = 1_000;
export const LARGE_USERS = 1_000_000;
const COPY_BATCH = 50_000;
const CONNECTIONS = 50;
const LOGIN_CONNECTIONS = 16;

export interface UsersFigures {
  users: number;
  login: WrkResult;
  me: WrkResult;
}

export interface BalancedFigures {
  instances: number;
  me: WrkResult;
  /** One instance only: the same load sent to it directly, past nginx. */
  direct?: WrkResult;
}

export interface ScaleFigures {
  cores: number;
  small: UsersFigures;
  large: UsersFigures;
  /** Seconds COPY took for the rows beyond the first SMALL_USERS. */
  copySeconds: number;
  balanced: BalancedFigures[];
}

/** COPY grows the users table to `count`: copies of `<prefix>0`'s row, emails `<prefix><i>@example.com`. */
async function copyUsers(databaseUrl: string, prefix: string, from: number, count: number): Promise<void> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const columns = (
      await sql<{ column_name: string }[]>`select column_name from information_schema.columns
        where table_schema = 'public' and table_name = 'users' and column_name <> 'email'
          and is_identity = 'NO' and is_generated = 'NEVER' and coalesce(column_default, '') not like 'nextval(%'`
    ).map((c) => c.column_name);
    const list = columns.map((c) => `"${c}"`).join(', ');
    // The template row in COPY's text format (\N for null); none of these values holds a tab or a newline.
    const [template] = await sql.unsafe<Record<string, string | null>[]>(
      `select ${columns.map((c) => `"${c}"::text`).join(', ')} from users where email = $1`,
      [`${prefix}0@example.com`],
    );
    if (!template) throw new Error('the registered bench user is missing');
    const rest = Object.values(template)
      .map((value) => (value === null ? '\\N' : value))
      .join('\t');
    const writable = await sql.unsafe(`copy users (email, ${list}) from stdin`).writable();
    for (let start = from; start < count; start += COPY_BATCH) {
      let chunk = '';
      for (let i = start; i < Math.min(count, start + COPY_BATCH); i++) chunk += `${prefix}${i}@example.com\t${rest}\n`;
      if (!writable.write(chunk)) await new Promise((resolve) => writable.once('drain', resolve));
    }
    await new Promise<void>((resolve, reject) =>
      writable.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    await sql`analyze users`;
  } finally {
    await sql.end();
  }
}

/** A token of user `<prefix><i>`, logged in through the API. */
async function tokenOf(base: string, users: SeededUsers, i: number): Promise<string> {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: `${users.prefix}${i}@example.com`, password: users.password }),
  });
  if (res.status !== 200) throw new Error(`POST /token for user ${i} answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

async function usersFigures(t: Target, users: SeededUsers, token: string, seconds: number, hashSecs: number) {
  await waitIdle(t.pid);
  await waitForQuietMachine();
  log(`scale: ${users.count.toLocaleString('en-US')} users — logins, then GET /users/me`);
  const login = await wrk(`${t.base}/token`, {
    conns: LOGIN_CONNECTIONS,
    secs: hashSecs,
    mode: 'token',
    forwarded: true,
    users,
  });
  await waitIdle(t.pid);
  const me = await wrk(`${t.base}/users/me`, { conns: CONNECTIONS, secs: seconds, token, users });
  return { users: users.count, login, me };
}

async function balancedFigures(
  instances: number,
  env: Record<string, string>,
  users: SeededUsers,
  seconds: number,
): Promise<BalancedFigures> {
  log(`scale: through nginx, ${instances} instance${instances > 1 ? 's' : ''}`);
  const cluster: Cluster = await startCluster({ instances, env });
  try {
    const target = { name: `nginx ×${instances}`, base: cluster.url, db: cluster.database };
    const token = await seed(target, { ...users, count: 1 });
    await waitForQuietMachine();
    const me = await wrk(`${cluster.url}/users/me`, { conns: CONNECTIONS, secs: seconds, token, users });
    const one = cluster.instances[0];
    const direct =
      instances === 1 && one
        ? await wrk(`${one.url}/users/me`, { conns: CONNECTIONS, secs: seconds, token, users })
        : undefined;
    return { instances, me, direct };
  } finally {
    await cluster.stop();
  }
}

export async function measureScale(
  env: (url: string) => Record<string, string>,
  {
    prefix,
    password,
    cost,
    seconds,
    hashSecs,
  }: { prefix: string; password: string; cost: number; seconds: number; hashSecs: number },
): Promise<ScaleFigures> {
  const small: SeededUsers = { prefix: `${prefix}scale-`, password, count: SMALL_USERS };
  const large: SeededUsers = { ...small, count: LARGE_USERS };
  const t = await startOurs('bun', (url) => ({ ...env(url), ACCESS_VIEW_MAX_ENTRIES: '0' }));
  let smallFigures: UsersFigures;
  let largeFigures: UsersFigures;
  let copySeconds: number;
  try {
    await seed(t, small);
    smallFigures = await usersFigures(t, small, await tokenOf(t.base, small, SMALL_USERS - 1), seconds, hashSecs);
    log(`scale: COPY to ${LARGE_USERS.toLocaleString('en-US')} users`);
    const started = performance.now();
    await copyUsers(t.db.url as string, small.prefix, SMALL_USERS, LARGE_USERS);
    copySeconds = (performance.now() - started) / 1000;
    largeFigures = await usersFigures(t, large, await tokenOf(t.base, large, LARGE_USERS - 1), seconds, hashSecs);
  } finally {
    await stopTarget(t);
  }
  // The cluster's instances: the bench's secret and cost, the limits off (wrk is one address behind nginx).
  const shared = Object.fromEntries(Object.entries(env('')).filter(([key]) => key !== 'DATABASE_URL'));
  shared.BCRYPT_COST = `${cost}`;
  const balanced: BalancedFigures[] = [];
  for (const instances of [1, 2, 3]) balanced.push(await balancedFigures(instances, shared, small, seconds));
  return { cores: availableParallelism(), small: smallFigures, large: largeFigures, copySeconds, balanced };
}
