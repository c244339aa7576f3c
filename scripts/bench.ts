/**
 * Load benchmark: `bun run bench [--quick] [--duration 10] [--cost 12] [--users 200] [--no-reference] [--runtimes]`
 *
 * Starts this service (and, unless --no-reference, the original FastAPI app from
 * ../shared/reference/fastapi-seed) one at a time, each on a fresh PostgreSQL database, drives
 * them with wrk over 127.0.0.1 only, prints a markdown table side by side and PASS/FAIL per
 * performance target. Every server, wrk and database it creates is removed at the end, also on
 * Ctrl-C or failure. Env fallbacks: BENCH_DURATION, BENCH_USERS, BCRYPT_COST.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { freePort } from './lib/processes';
import { RUNTIMES, type RuntimeCommand } from './lib/runtimes';

const ROOT = resolve(import.meta.dir, '..');
const POST_LUA = join(import.meta.dir, 'bench', 'post.lua');
const REFERENCE_DIR = resolve(ROOT, '../shared/reference/fastapi-seed');
const PG = 'postgres://postgres@127.0.0.1:5432';
const PASSWORD = 'bench-password-1234'; // letters, digits and '-': needs no escaping in a form or JSON body
const WRK_TIMEOUT_S = 10; // wrk's default 2 s would drop the slow requests (bcrypt queues, the reference) from p99

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string', short: 'd' },
    cost: { type: 'string' },
    users: { type: 'string' },
    reference: { type: 'boolean', default: false },
    runtimes: { type: 'boolean', default: false },
    'no-reference': { type: 'boolean', default: false },
  },
});
const seconds = Number(flags.duration ?? process.env.BENCH_DURATION ?? (flags.quick ? 3 : 10));
const cost = Number(flags.cost ?? process.env.BCRYPT_COST ?? 12);
const userCount = Number(flags.users ?? process.env.BENCH_USERS ?? 200);
const withReference = !flags['no-reference'] && (flags.reference || existsSync(REFERENCE_DIR));
if (!(seconds > 0) || !Number.isInteger(cost) || cost < 4 || cost > 31 || !(userCount >= 1)) {
  console.error('usage: bun run bench [--quick] [--duration s] [--cost 4-31] [--users n] [--no-reference]');
  process.exit(2);
}
if (flags.reference && !existsSync(REFERENCE_DIR)) {
  console.error(`--reference: ${REFERENCE_DIR} not found`);
  process.exit(2);
}

// A bcrypt-bound request waits seconds in the hash queue; a shorter run would complete next to none.
const hashSecs = Math.max(seconds, 5);

const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const prefix = `bench-${runId}-`; // seeded users are <prefix><i>@example.com
const workDir = mkdtempSync(join(tmpdir(), 'hpa-bench-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`[bench] ${msg}`);

// ---------- cleanup: everything we start is tracked so Ctrl-C and failures leave nothing behind ----------
const servers = new Set<ChildProcess>();
const wrks = new Set<ReturnType<typeof Bun.spawn>>();
const databases = new Set<string>();
let cleaning: Promise<void> | undefined;

async function stopServer(child: ChildProcess): Promise<void> {
  servers.delete(child);
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise((r) => child.once('exit', r));
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), signal); // detached: the whole process group (run.sh + uvicorn)
    } catch {}
  };
  group('SIGTERM');
  if ((await Promise.race([exited.then(() => true), sleep(8000).then(() => false)])) === false) {
    group('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

/** One statement on the maintenance database (CREATE/DROP DATABASE take no bind parameters). */
async function admin(statement: string, connectTimeout = 30): Promise<void> {
  const sql = postgres(`${PG}/postgres`, { max: 1, connect_timeout: connectTimeout, onnotice: () => {} });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function dropDatabase(name: string): Promise<void> {
  databases.delete(name);
  await admin(`drop database if exists "${name}" with (force)`);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const w of wrks) w.kill('SIGKILL');
    await Promise.all([...servers].map(stopServer));
    rmSync(workDir, { recursive: true, force: true });
    for (const db of [...databases]) await dropDatabase(db).catch((e) => log(`could not drop ${db}: ${e}`));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping servers and dropping databases`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------- prerequisites ----------
function sh(cmd: string[]): void {
  log(`$ ${cmd.join(' ')}`);
  const r = Bun.spawnSync(cmd, { stdout: 'inherit', stderr: 'inherit' });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} exited with ${r.exitCode}`);
}

const postgresUp = () =>
  admin('select 1', 3).then(
    () => true,
    () => false,
  );

async function ensurePrerequisites(): Promise<void> {
  if (!Bun.which('wrk')) {
    log('wrk not found: installing it with apt-get');
    sh(['apt-get', 'update']);
    sh(['apt-get', 'install', '-y', 'wrk']);
  }
  if (!(await postgresUp())) {
    const version = readdirSync('/etc/postgresql').sort().at(-1);
    if (!version) throw new Error('PostgreSQL is not running on 127.0.0.1:5432 and /etc/postgresql is empty');
    sh(['pg_ctlcluster', '--skip-systemctl-redirect', version, 'main', 'start']);
    if (!(await postgresUp())) throw new Error('PostgreSQL still does not answer on 127.0.0.1:5432');
  }
}

// ---------- servers ----------
interface Target {
  name: string;
  base: string;
  proc: ChildProcess;
  db: string;
}

async function startTarget(
  name: string,
  cmd: string[],
  cwd: string,
  env: (databaseUrl: string) => Record<string, string>,
  readyPath: string,
  timeoutMs: number,
  prepare?: (databaseUrl: string) => void,
): Promise<Target> {
  const db = `hpa_bench_${runId}_${name}`;
  await admin(`create database "${db}"`);
  databases.add(db);
  prepare?.(`${PG}/${db}`);
  const port = freePort();
  const logFile = join(workDir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  // detached = own process group, so stopServer can take down run.sh and everything it spawns
  const proc = spawn(cmd[0] as string, cmd.slice(1), {
    cwd,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env(`${PG}/${db}`), PORT: String(port), HOST: '127.0.0.1' },
  });
  servers.add(proc);
  const target: Target = { name, base: `http://127.0.0.1:${port}`, proc, db };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    const ok = await fetch(target.base + readyPath, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return target;
    await sleep(200);
  }
  const tail = readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  throw new Error(`${name} did not become ready on ${target.base}${readyPath}:\n${tail}`);
}

/** Resident memory of every process in the group (wrangler runs workerd, and both count), in MB. */
function rssOfGroup(pgid: number): number {
  let kb = 0;
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue; // field 5: pgrp
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // the process ended while we looked
    }
  }
  return kb / 1024;
}

/** CPU seconds the process (all its threads) has used so far: utime + stime from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; USER_HZ is 100 on Linux
}

/**
 * Waits until the server is quiet (< 10% of a core for half a second). When wrk stops, the
 * hashes of the requests it abandoned are still queued in the server and would otherwise be
 * billed to the next scenario.
 */
async function waitIdle(pid: number, maxMs = 60_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const before = cpuSeconds(pid);
    await sleep(500);
    if (cpuSeconds(pid) - before < 0.05) return;
  }
  log(`server ${pid} still busy after ${maxMs / 1000} s; going on`);
}

/** Share of all cores busy over one second, from /proc/stat (ours is idle when this is called). */
async function machineBusy(): Promise<number> {
  const sample = () => {
    const t = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number);
    return { idle: (t[3] ?? 0) + (t[4] ?? 0), total: t.reduce((a, b) => a + b, 0) };
  };
  const a = sample();
  await sleep(1000);
  const b = sample();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}

/** Other processes on the box skew every figure: give them up to a minute to finish, then record what remains. */
async function waitForQuietMachine(): Promise<number> {
  let busy = await machineBusy();
  for (let i = 0; i < 30 && busy > 0.25; i++) {
    if (i === 0)
      log(`the machine is ${(busy * 100).toFixed(0)}% busy with other work; waiting up to 60 s for it to calm down`);
    busy = await machineBusy();
  }
  return busy;
}

function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/**
 * One user through the API, so its hash is the app's own at the configured cost; the rest are
 * SQL copies of that row with other emails. Registering N users through the API would cost N
 * bcrypt hashes (≈ 30 s for 200 at cost 12 here, more for the reference), yet every login still
 * verifies a real hash at the configured cost. Works on both schemas (our `users`, SQLModel's `user`).
 */
async function seed(t: Target): Promise<string> {
  const email = `${prefix}0@example.com`;
  const reg = await fetch(`${t.base}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  if (!reg.ok) throw new Error(`${t.name}: POST /register answered ${reg.status}: ${await reg.text()}`);
  const sql = postgres(`${PG}/${t.db}`, { max: 1, onnotice: () => {} });
  try {
    const [table] = await sql<{ table_name: string }[]>`select table_name from information_schema.columns
      where table_schema = 'public' and table_name in ('users', 'user') and column_name = 'email'`;
    if (!table) throw new Error(`${t.name}: no users table with an email column`);
    const columns = (
      await sql<{ column_name: string }[]>`select column_name from information_schema.columns
        where table_schema = 'public' and table_name = ${table.table_name} and column_name <> 'email'
          and is_identity = 'NO' and is_generated = 'NEVER' and coalesce(column_default, '') not like 'nextval(%'`
    )
      .map((c) => `"${c.column_name.replaceAll('"', '""')}"`)
      .join(', ');
    const from = `"${table.table_name}"`;
    await sql.unsafe(
      `insert into ${from} (email, ${columns}) select $1::text || i || '@example.com', ${columns}
       from ${from}, generate_series(1, $2::int - 1) i where email = $3`,
      [prefix, userCount, email],
    );
  } finally {
    await sql.end();
  }
  const login = await fetch(`${t.base}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: `${prefix}${userCount - 1}@example.com`, password: PASSWORD }),
  });
  if (login.status !== 200) throw new Error(`${t.name}: POST /token answered ${login.status}: ${await login.text()}`);
  const { access_token } = (await login.json()) as { access_token: string };
  for (let i = 0; i < 200; i++) {
    for (const path of ['/users/me', '/welcome']) {
      const r = await fetch(t.base + path, { headers: { authorization: `Bearer ${access_token}` } });
      if (r.status !== 200) throw new Error(`${t.name}: GET ${path} answered ${r.status}: ${await r.text()}`);
    }
  }
  return access_token;
}

// ---------- wrk ----------
interface WrkResult {
  rps: number;
  p50: number; // ms
  p99: number; // ms
  requests: number;
  non2xx: number;
  socket: { connect: number; read: number; write: number; timeout: number };
  statuses?: string;
}

function toMs(value: string | undefined): number {
  const m = value?.match(/^([\d.]+)(us|ms|s|m)$/);
  if (!m) return Number.NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
}

function parseWrk(out: string): WrkResult {
  const num = (re: RegExp) => Number(out.match(re)?.[1] ?? 0);
  const requests = num(/(\d+) requests in/);
  const s = out
    .match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/)
    ?.slice(1)
    .map(Number);
  const [connect = 0, read = 0, write = 0, timeout = 0] = s ?? [];
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    // wrk prints 0.00us percentiles when nothing completed; that is no latency at all, not a fast one.
    p50: requests ? toMs(out.match(/^\s+50%\s+(\S+)/m)?.[1]) : Number.NaN,
    p99: requests ? toMs(out.match(/^\s+99%\s+(\S+)/m)?.[1]) : Number.NaN,
    requests,
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/),
    socket: { connect, read, write, timeout },
    statuses: out.match(/^statuses: (.*)$/m)?.[1],
  };
}

async function wrk(
  url: string,
  o: { conns: number; secs: number; token?: string; mode?: 'token' | 'register' },
): Promise<WrkResult> {
  const args = ['-t2', `-c${o.conns}`, `-d${o.secs}s`, '--timeout', `${WRK_TIMEOUT_S}s`, '--latency'];
  if (o.token) args.push('-H', `Authorization: Bearer ${o.token}`);
  if (o.mode) args.push('-s', POST_LUA);
  const env = { BENCH_MODE: o.mode ?? '', BENCH_PREFIX: prefix, BENCH_PASSWORD: PASSWORD, BENCH_USERS: `${userCount}` };
  const proc = Bun.spawn(['wrk', ...args, url], { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...env } });
  wrks.add(proc);
  const kill = setTimeout(() => proc.kill('SIGKILL'), (o.secs + WRK_TIMEOUT_S + 10) * 1000); // bounded runtime
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(kill);
  wrks.delete(proc);
  if (proc.exitCode !== 0) throw new Error(`wrk on ${url} exited with ${proc.exitCode ?? proc.signalCode}: ${err}`);
  return parseWrk(out);
}

// ---------- scenarios ----------
type Results = Record<string, WrkResult>;
const SCENARIOS: [key: string, label: string][] = [
  ['me', 'GET /users/me (c50)'],
  ['welcome', 'GET /welcome (c50)'],
  ['token', 'POST /token (c16)'],
  ['flood-me', 'GET /users/me (c50) during a /token flood'],
  ['flood-token', '… the /token flood (c16)'],
  ['register', 'POST /register (c8)'],
];

async function runScenarios(t: Target, token: string): Promise<Results> {
  const r: Results = {};
  const pid = t.proc.pid as number;
  const step = async (key: string, run: () => Promise<WrkResult>) => {
    log(`${t.name}: ${SCENARIOS.find(([k]) => k === key)?.[1]}`);
    r[key] = await run();
  };
  await step('me', () => wrk(`${t.base}/users/me`, { conns: 50, secs: seconds, token }));
  await step('welcome', () => wrk(`${t.base}/welcome`, { conns: 50, secs: seconds, token }));
  await step('token', () => wrk(`${t.base}/token`, { conns: 16, secs: hashSecs, mode: 'token' }));
  await waitIdle(pid);
  // The flood starts first and outlasts the reads by a second each side, so every read meets a full hash queue.
  const flood = wrk(`${t.base}/token`, { conns: 16, secs: seconds + 2, mode: 'token' });
  await sleep(1000);
  await step('flood-me', () => wrk(`${t.base}/users/me`, { conns: 50, secs: seconds, token }));
  r['flood-token'] = await flood;
  await waitIdle(pid);
  await step('register', () => wrk(`${t.base}/register`, { conns: 8, secs: hashSecs, mode: 'register' }));
  await waitIdle(pid);
  return r;
}

// ---------- report ----------
const fmtMs = (ms: number) =>
  Number.isNaN(ms) ? '–' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(2)} ms`;
const fmtRps = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));

function fmtErrors(w: WrkResult): string {
  const parts: string[] = [];
  if (w.non2xx) parts.push(`${w.non2xx} non-2xx${w.statuses ? ` (${w.statuses})` : ''}`);
  for (const [kind, n] of Object.entries(w.socket)) if (n) parts.push(`${n} ${kind}`);
  return parts.length ? parts.join(', ') : '0';
}

function table(ours: Results, ref?: Results): string {
  const head = ref
    ? '| scenario | req/s | p50 | p99 | errors | ref req/s | ref p50 | ref p99 | ref errors | × ref |\n|---|--:|--:|--:|---|--:|--:|--:|---|--:|'
    : '| scenario | req/s | p50 | p99 | errors |\n|---|--:|--:|--:|---|';
  const rows = SCENARIOS.map(([key, label]) => {
    const a = ours[key] as WrkResult;
    let row = `| ${label} | ${fmtRps(a.rps)} | ${fmtMs(a.p50)} | ${fmtMs(a.p99)} | ${fmtErrors(a)} |`;
    const b = ref?.[key];
    if (b) {
      const ratio = b.rps > 0 ? `${(a.rps / b.rps).toFixed(1)}×` : '–';
      row += ` ${fmtRps(b.rps)} | ${fmtMs(b.p50)} | ${fmtMs(b.p99)} | ${fmtErrors(b)} | ${ratio} |`;
    }
    return row;
  });
  return [head, ...rows].join('\n');
}

// ---------- main ----------
async function main(): Promise<void> {
  const started = performance.now();
  await ensurePrerequisites();
  const cores = availableParallelism();

  // One hash's time at the configured cost, on this machine, before any server runs. The fastest
  // of five: other work on the box only ever adds time, and a slow outlier would flatter the target.
  await waitForQuietMachine();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    Bun.password.hashSync(PASSWORD, { algorithm: 'bcrypt', cost });
    times.push(performance.now() - t0);
  }
  const hashMs = Math.min(...times);
  const loginCeiling = (cores * 1000) / hashMs;
  log(
    `bcrypt cost ${cost}: ${hashMs.toFixed(0)} ms per hash, ${cores} cores → ceiling ${loginCeiling.toFixed(1)} logins/s`,
  );

  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex');
  const measure = async (t: Target) => {
    await waitIdle(t.proc.pid as number);
    const startRss = memoryMb(t.proc.pid as number, 'VmRSS'); // started and migrated, no request served yet
    const token = await seed(t); // also the warmup: 200 × (GET /users/me + GET /welcome)
    await waitIdle(t.proc.pid as number);
    const busy = await waitForQuietMachine();
    const idleRss = memoryMb(t.proc.pid as number, 'VmRSS');
    const results = await runScenarios(t, token);
    const peakRss = memoryMb(t.proc.pid as number, 'VmHWM');
    await stopServer(t.proc);
    await dropDatabase(t.db);
    return { results, startRss, idleRss, peakRss, busy };
  };

  const ourEnv = (url: string) => ({
    DATABASE_URL: url,
    SECRET_KEY: secret,
    BCRYPT_COST: `${cost}`,
    LOG_LEVEL: 'warn',
    // One load generator on one IP would be rate limited at once; the reference has no limits either.
    RATE_LIMIT_LOGIN_PER_IP: '0',
    RATE_LIMIT_LOGIN_FAILURES: '0',
    RATE_LIMIT_REGISTER_PER_IP: '0',
  });
  log(`our server: bun src/runtimes/bun.ts, BCRYPT_COST=${cost}`);
  const ours = await measure(
    await startTarget('ours', ['bun', 'src/runtimes/bun.ts'], ROOT, ourEnv, '/health', 60_000),
  );

  let ref: typeof ours | undefined;
  if (withReference) {
    // The first run installs the reference's Debian packages (run.sh does it), hence the long wait.
    log(`reference: ${REFERENCE_DIR}/run.sh (passlib's bcrypt cost is its default, 12)`);
    ref = await measure(
      await startTarget(
        'reference',
        ['./run.sh'],
        REFERENCE_DIR,
        (url) => ({ DATABASE_URL: url.replace(/^postgres:/, 'postgresql:'), SECRET_KEY: secret, ACCESS_LOG: '0' }),
        '/openapi.json', // it has no /health
        600_000,
      ),
    );
  }

  // --runtimes: the same app on the other entries, GET /users/me only (the scenario the README compares).
  const perRuntime: { name: string; me: WrkResult; idleRss: number }[] = [];
  if (flags.runtimes) {
    // The other entries of the same app; Bun was measured above.
    for (const name of ['node', 'deno', 'workers'] as const) {
      const { command, build } = RUNTIMES[name] as RuntimeCommand;
      log(`runtime ${name}: ${command.join(' ')}`);
      if (build) sh(build);
      const target = await startTarget(name, command, ROOT, ourEnv, '/health', 120_000, (url) =>
        sh(['env', `DATABASE_URL=${url}`, 'bun', 'scripts/cli.ts', 'migrate']),
      );
      const token = await seed(target);
      await waitIdle(target.proc.pid as number);
      await waitForQuietMachine();
      const idleRss = rssOfGroup(target.proc.pid as number);
      const me = await wrk(`${target.base}/users/me`, { conns: 50, secs: seconds, token });
      perRuntime.push({ name, me, idleRss });
      await stopServer(target.proc);
      await dropDatabase(target.db);
    }
  }

  const o = ours.results;
  const pass = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  const me = o.me as WrkResult;
  const floodMe = o['flood-me'] as WrkResult;
  const login = (o.token as WrkResult).rps;
  const lines = [
    '',
    `## Benchmark — ${new Date().toISOString()}, ${cores} cores, bcrypt cost ${cost}, ` +
      `${seconds} s per scenario (bcrypt-bound ones ${hashSecs} s), ` +
      `wrk -t2 --timeout ${WRK_TIMEOUT_S}s, ${userCount} seeded users`,
    '',
    table(o, ref?.results),
    '',
    `Memory: RSS ${ours.startRss.toFixed(1)} MB idle after start, ${ours.idleRss.toFixed(1)} MB idle after the warm-up ` +
      `(a registration loads the 49k-entry common-password list), peak under load (VmHWM) ${ours.peakRss.toFixed(1)} MB` +
      (ref ? `; reference idle ${ref.idleRss.toFixed(1)} MB, peak ${ref.peakRss.toFixed(1)} MB` : ''),
    `CPU used by other processes just before the scenarios: ours ${pct(ours.busy)}${ref ? `, reference ${pct(ref.busy)}` : ''} ` +
      '(well above 0% means the figures are skewed by other work on the box)',
    '',
    '## Targets',
    '',
  ];
  if (perRuntime.length > 0) {
    lines.splice(
      lines.indexOf('## Targets'),
      0,
      '## GET /users/me per runtime (c50, PostgreSQL)',
      '',
      '| runtime | req/s | p50 | p99 | errors | idle RSS (all processes) |',
      '|---|--:|--:|--:|---|--:|',
      `| bun | ${fmtRps(me.rps)} | ${fmtMs(me.p50)} | ${fmtMs(me.p99)} | ${fmtErrors(me)} | ${ours.idleRss.toFixed(0)} MB |`,
      ...perRuntime.map(
        (r) =>
          `| ${r.name} | ${fmtRps(r.me.rps)} | ${fmtMs(r.me.p50)} | ${fmtMs(r.me.p99)} | ${fmtErrors(r.me)} | ${r.idleRss.toFixed(0)} MB |`,
      ),
      '',
    );
  }
  const refMe = ref?.results.me;
  lines.push(
    refMe
      ? `- ${pass(me.rps >= 10 * refMe.rps)} GET /users/me ≥ 10× the reference: ${fmtRps(me.rps)} vs ${fmtRps(refMe.rps)} req/s = ${(me.rps / refMe.rps).toFixed(1)}×`
      : '- SKIP GET /users/me ≥ 10× the reference: the reference was not run',
    `- ${pass(login >= 0.9 * loginCeiling)} login throughput ≥ 90% of cores ÷ hash time: ${fmtRps(login)} req/s vs ${cores} ÷ ${hashMs.toFixed(0)} ms = ${loginCeiling.toFixed(1)}/s → ${pct(login / loginCeiling)}`,
    `- ${pass(floodMe.rps >= 0.5 * me.rps)} during a /token flood GET /users/me keeps ≥ 50% of idle req/s: ${fmtRps(floodMe.rps)} vs ${fmtRps(me.rps)} → ${pct(floodMe.rps / me.rps)}`,
    `- ${pass(floodMe.p99 <= 2 * me.p99)} during a /token flood GET /users/me p99 ≤ 2× idle: ${fmtMs(floodMe.p99)} vs ${fmtMs(me.p99)} → ${(floodMe.p99 / me.p99).toFixed(2)}×`,
    `- ${pass(ours.startRss < 80)} idle RSS < 80 MB: ${ours.startRss.toFixed(1)} MB after start; ${ours.idleRss.toFixed(1)} MB idle after the warm-up, ${ours.peakRss.toFixed(1)} MB peak under load`,
    '',
    `Wall time: ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(lines.join('\n'));
}

main()
  .then(() => cleanup())
  .catch(async (error: unknown) => {
    if (cleaning) return; // interrupted: the signal handler is already cleaning up and will exit
    console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
    await cleanup();
    process.exit(1);
  });
