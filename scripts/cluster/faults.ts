/**
 * `bun run cluster:faults` (README "Faults"): the cluster under steady load through nginx — registrations,
 * logins, /users/me, /users/me/sessions, logouts (scripts/lib/load.ts) — meets, in turn, a SIGKILLed
 * instance (started again), a PgBouncer restart and a Redis restart. Then it checks that
 * - no acknowledged write was lost: every registration answered 201 exists and logs in;
 * - no revoked token is accepted: every token whose logout answered 204 gets 401 from each instance,
 *   asked directly (past nginx), and no answer during the run accepted one;
 * - every instance serves again, the others never restarted;
 * and prints the error rate (refusals: 502/503/504 or no answer) and wrong answers of each window, a table
 * and PASS or FAIL. bcrypt runs at cost 4 here so that checking every account's login takes seconds.
 */
import { type Answer, type LoadResult, runLoad, statusSummary, tally } from '../lib/load';
import { type Cluster, describeCluster, startCluster } from './cluster';

const CLIENTS = 12;
const QUIET_MS = 5_000; // load before the first fault, between faults and after the last
const KILLED_FOR_MS = 2_000; // how long the killed instance stays down before it is started again
const RECOVERY_MS = 2_000; // counted into a fault's window after the component is back
const CHECK_CONCURRENCY = 8;

interface Window {
  name: string;
  from: number;
  to: number;
}

const sleep = (ms: number) => Bun.sleep(ms);

async function inTurn<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Runs `fault`, and returns its window: from its start to RECOVERY_MS after it is over. */
async function fault(name: string, run: () => Promise<void>): Promise<Window> {
  const from = Date.now();
  process.stdout.write(`  ${name} … `);
  await run();
  await sleep(RECOVERY_MS);
  console.log(`done in ${((Date.now() - from) / 1000).toFixed(1)} s`);
  return { name, from, to: Date.now() };
}

async function lostWrites(cluster: Cluster, load: LoadResult): Promise<string[]> {
  const lost: string[] = [];
  await inTurn(load.registered, CHECK_CONCURRENCY, async ({ email, password }) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await fetch(`${cluster.url}/token`, {
        method: 'POST',
        body: new URLSearchParams({ username: email, password }),
      }).catch(() => null);
      if (res?.status === 200) return;
      if (res && res.status !== 503 && res.status !== 502) break;
      await sleep(200);
    }
    lost.push(email);
  });
  return lost;
}

async function acceptedRevoked(cluster: Cluster, load: LoadResult): Promise<string[]> {
  const accepted: string[] = [];
  const checks = load.revoked.flatMap((token) => cluster.instances.map((instance) => ({ token, instance })));
  await inTurn(checks, CHECK_CONCURRENCY, async ({ token, instance }) => {
    const res = await fetch(`${instance.url}/users/me`, { headers: { Authorization: `Bearer ${token}` } });
    if (res.status !== 401) accepted.push(`${instance.name}: ${res.status}`);
  });
  return accepted;
}

/** Each instance, asked directly: ready, and a new account of its own registers, logs in and reads itself. */
async function serving(cluster: Cluster): Promise<string[]> {
  const problems: string[] = [];
  for (const instance of cluster.instances) {
    const check = await runLoad({ urls: [instance.url], clients: 1, journeys: 1, tag: 'after-faults' });
    const ready = await fetch(`${instance.url}/ready`)
      .then((res) => res.status)
      .catch(() => 0);
    const counts = tally(check.answers);
    if (ready !== 200 || counts.ok !== counts.total) {
      problems.push(`${instance.name}: /ready ${ready}, ${counts.ok}/${counts.total} ok`);
    }
  }
  return problems;
}

/** The instances' warnings and errors, counted by message and error class/code. */
function instanceLog(cluster: Cluster): string {
  const counts = new Map<string, number>();
  for (const instance of cluster.instances) {
    for (const line of instance.process?.lines ?? []) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { level?: string; msg?: string; error?: string };
      const key = `${instance.name}: ${entry.level} ${entry.msg}${entry.error ? ` (${entry.error})` : ''}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts].map(([key, count]) => `  ${count}× ${key}`).join('\n') || '  nothing';
}

const percent = (part: number, whole: number) => (whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)}%`);

function table(windows: Window[], answers: Answer[]): string {
  const rows = [
    ['window', 'seconds', 'answers', 'ok', 'refused', 'error rate', 'late revocations', 'wrong', 'refusals'],
  ];
  for (const { name, from, to } of windows) {
    const c = tally(answers, from, to);
    const refusals = statusSummary(answers.filter((a) => a.at >= from && a.at < to && a.outcome === 'unavailable'));
    rows.push([
      name,
      ((to - from) / 1000).toFixed(1),
      String(c.total),
      String(c.ok),
      String(c.unavailable),
      percent(c.unavailable, c.total),
      String(c.late),
      String(c.wrong),
      refusals || '–',
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const left = (i: number) => i === 0 || i === (rows[0]?.length ?? 0) - 1;
  return rows
    .map((row) =>
      row.map((cell, i) => (left(i) ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '),
    )
    .join('\n');
}

async function main(): Promise<number> {
  const cluster = await startCluster({
    env: {
      BCRYPT_COST: '4',
      // All load comes from this one address: per-address limits would refuse it. Account limits stay on
      // (their counters live in Redis, which is restarted).
      RATE_LIMIT_LOGIN_PER_IP: '0',
      RATE_LIMIT_REGISTER_PER_IP: '0',
    },
  });
  try {
    console.log(`${describeCluster(cluster)}\n`);
    const pids = cluster.instances.map((instance) => instance.process?.proc.pid);
    const victim = cluster.instances[1];
    if (!victim) throw new Error('the fault run needs at least two instances');
    const stop = new AbortController();
    const started = Date.now();
    console.log(`load: ${CLIENTS} clients through nginx`);
    const loading = runLoad({ urls: [cluster.url], clients: CLIENTS, signal: stop.signal, tag: 'faults' });
    const windows: Window[] = [];
    await sleep(QUIET_MS);
    windows.push({ name: 'before', from: started, to: Date.now() });
    windows.push(
      await fault(`SIGKILL ${victim.name}, start it ${KILLED_FOR_MS / 1000} s later`, async () => {
        await victim.kill();
        await sleep(KILLED_FOR_MS);
        await victim.start();
      }),
    );
    let quiet = Date.now();
    await sleep(QUIET_MS);
    windows.push({ name: 'between', from: quiet, to: Date.now() });
    windows.push(await fault('restart PgBouncer', () => cluster.bouncer.restart()));
    quiet = Date.now();
    await sleep(QUIET_MS);
    windows.push({ name: 'between', from: quiet, to: Date.now() });
    windows.push(await fault('restart Redis', () => cluster.redis.restart()));
    quiet = Date.now();
    await sleep(QUIET_MS);
    stop.abort();
    const load = await loading;
    windows.push({ name: 'after', from: quiet, to: Date.now() });

    console.log('\nchecking …');
    const lost = await lostWrites(cluster, load);
    const accepted = await acceptedRevoked(cluster, load);
    const down = await serving(cluster);
    const restarted = cluster.instances
      .filter((instance, i) => instance !== victim && instance.process?.proc.pid !== pids[i])
      .map((instance) => instance.name);
    const wrong = load.answers.filter((answer) => answer.outcome === 'wrong').length;
    const late = load.answers.filter((answer) => answer.outcome === 'late').length;
    const last = windows.at(-1);
    const after = tally(load.answers, last?.from, last?.to);

    console.log(`\n${table(windows, load.answers)}\n`);
    console.log(`what the instances logged (warn and above):\n${instanceLog(cluster)}\n`);
    const checks: [string, boolean, string][] = [
      [
        'acknowledged registrations exist and log in',
        lost.length === 0,
        `${load.registered.length - lost.length}/${load.registered.length}${lost.length ? `; lost: ${lost.slice(0, 5).join(', ')}` : ''}`,
      ],
      [
        'revoked tokens answer 401 on every instance',
        accepted.length === 0,
        `${load.revoked.length} tokens × ${cluster.instances.length} instances${accepted.length ? `; accepted: ${accepted.slice(0, 5).join(', ')}` : ''}`,
      ],
      [
        'no wrong answer under load (valid token 401, revoked 200, 500 …)',
        wrong === 0,
        `${wrong}${load.wrongs.length ? `: ${load.wrongs.slice(0, 3).join(' | ')}` : ''}`,
      ],
      ['no refusal after the last fault', after.unavailable === 0, `${after.unavailable} of ${after.total}`],
      ['every instance serves again', down.length === 0, down.join('; ') || 'ready, and a new account works on each'],
      ['the other instances never restarted', restarted.length === 0, restarted.join(', ') || 'same processes'],
    ];
    for (const [what, ok, detail] of checks) console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}: ${detail}`);
    // Within the contract (API.md: other instances apply a change within 1 s at p99), so not a failure.
    console.log(`note  revoked tokens accepted at once by an instance yet to hear, refused 1 s later: ${late}`);
    const pass = checks.every(([, ok]) => ok);
    console.log(`\n${pass ? 'PASS' : 'FAIL'}`);
    return pass ? 0 : 1;
  } finally {
    await cluster.stop();
  }
}

process.exit(await main());
