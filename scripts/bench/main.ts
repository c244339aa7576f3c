/**
 * Load benchmark: `bun run bench [--quick] [--duration 10] [--cost 12] [--users 200] [--no-reference] [--runtimes]
 * [--only throughput,tokens,floods,scale]`
 *
 * Starts this service (and, unless --no-reference, the original FastAPI app from
 * ../shared/reference/fastapi-seed) one at a time, each on a fresh PostgreSQL database, drives
 * them with wrk over 127.0.0.1 only, prints a markdown table side by side and PASS/FAIL per
 * performance target. Every server, wrk and database it creates is removed at the end, also on
 * Ctrl-C or failure. Env fallbacks: BENCH_DURATION, BENCH_USERS, BCRYPT_COST.
 *
 * This file: the flags, the order of the scenarios and the cleanup. machine.ts: prerequisites and /proc;
 * servers.ts: the servers under test; seed.ts: their users; wrk.ts: the load; tokens.ts: two instances
 * (revocation lag, rotation under load); floods.ts: issue 10's attacks, on a server with its rate limits on;
 * scale.ts: 1,000,000 users and nginx in front of one to three instances; report.ts: the output. `--only`
 * runs some of the parts: throughput (the scenarios, on ours and the reference, and --runtimes), tokens,
 * floods, scale.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stopAll } from '../lib/processes';
import { buildRuntime, RUNTIMES } from '../lib/runtimes';
import { dropAllScratchDatabases } from '../lib/scratch-database';
import { ensureClientRoom, type FloodFigures, measureFloods } from './floods';
import { log } from './log';
import { ensurePrerequisites, memoryMb, rssOfGroup, waitForQuietMachine, waitIdle } from './machine';
import { type Measured, type Results, type RuntimeFigures, report, SCENARIOS } from './report';
import { measureScale, type ScaleFigures } from './scale';
import { type SeededUsers, seed } from './seed';
import { ourEnv, startOurs, startReference, stopTarget, type Target } from './servers';
import { measureTokens, type TokenFigures } from './tokens';
import { WRK_TIMEOUT_S, type WrkResult, wrk } from './wrk';

const ROOT = resolve(import.meta.dir, '../..');
const REFERENCE_DIR = resolve(ROOT, '../shared/reference/fastapi-seed');
const PASSWORD = 'bench-password-1234'; // letters, digits and '-': needs no escaping in a form or JSON body

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string', short: 'd' },
    cost: { type: 'string' },
    users: { type: 'string' },
    reference: { type: 'boolean', default: false },
    runtimes: { type: 'boolean', default: false },
    'no-reference': { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const PARTS = ['throughput', 'tokens', 'floods', 'scale'];
const parts = new Set(flags.only?.split(',') ?? PARTS);
const seconds = Number(flags.duration ?? process.env.BENCH_DURATION ?? (flags.quick ? 3 : 10));
const cost = Number(flags.cost ?? process.env.BCRYPT_COST ?? 12);
const userCount = Number(flags.users ?? process.env.BENCH_USERS ?? 200);
const withReference =
  parts.has('throughput') && !flags['no-reference'] && (flags.reference || existsSync(REFERENCE_DIR));
if (!(seconds > 0) || !Number.isInteger(cost) || cost < 4 || cost > 31 || !(userCount >= 1)) {
  console.error('usage: bun run bench [--quick] [--duration s] [--cost 4-31] [--users n] [--no-reference]');
  process.exit(2);
}
if ([...parts].some((part) => !PARTS.includes(part))) {
  console.error(`--only: a comma-separated list of ${PARTS.join(', ')}`);
  process.exit(2);
}
if (flags.reference && !existsSync(REFERENCE_DIR)) {
  console.error(`--reference: ${REFERENCE_DIR} not found`);
  process.exit(2);
}

// A bcrypt-bound request waits seconds in the hash queue; a shorter run would complete next to none.
const hashSecs = Math.max(seconds, 5);

const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const users: SeededUsers = { prefix: `bench-${runId}-`, password: PASSWORD, count: userCount };

// ---------- cleanup: every server, wrk and database is tracked, so Ctrl-C and failures leave nothing behind ----------
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    await dropAllScratchDatabases().catch((e) => log(`could not drop every database: ${e}`));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping servers and dropping databases`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------- scenarios ----------
async function runScenarios(t: Target, token: string): Promise<Results> {
  const r: Results = {};
  const step = async (key: string, run: () => Promise<WrkResult>) => {
    log(`${t.name}: ${SCENARIOS.find(([k]) => k === key)?.[1]}`);
    r[key] = await run();
  };
  const load = (
    path: string,
    o: { conns: number; secs: number; token?: string; mode?: 'token' | 'register'; forwarded?: boolean },
  ) => wrk(`${t.base}${path}`, { ...o, users });
  await step('health', () => load('/health', { conns: 50, secs: seconds }));
  await step('me', () => load('/users/me', { conns: 50, secs: seconds, token }));
  await step('welcome', () => load('/welcome', { conns: 50, secs: seconds, token }));
  await step('token', () => load('/token', { conns: 16, secs: hashSecs, mode: 'token', forwarded: true }));
  await waitIdle(t.pid);
  // The flood starts first and outlasts the reads by a second each side, so every read meets a full hash queue.
  const flood = load('/token', { conns: 16, secs: seconds + 2, mode: 'token', forwarded: true });
  await Bun.sleep(1000);
  await step('flood-me', () => load('/users/me', { conns: 50, secs: seconds, token }));
  r['flood-token'] = await flood;
  await waitIdle(t.pid);
  await step('register', () => load('/register', { conns: 8, secs: hashSecs, mode: 'register', forwarded: true }));
  await waitIdle(t.pid);
  return r;
}

/** Every scenario on one started server, with its memory before, between and at the peak; then stops it. */
async function measure(t: Target): Promise<Measured> {
  await waitIdle(t.pid);
  const startRss = memoryMb(t.pid, 'VmRSS'); // started and migrated, no request served yet
  const token = await seed(t, users); // also the warmup: 200 × (GET /users/me + GET /welcome)
  await waitIdle(t.pid);
  const busy = await waitForQuietMachine();
  const idleRss = memoryMb(t.pid, 'VmRSS');
  const results = await runScenarios(t, token);
  const peakRss = memoryMb(t.pid, 'VmHWM');
  await stopTarget(t);
  return { results, startRss, idleRss, peakRss, busy };
}

/** GET /users/me only, on the other entries of the same app (the scenario the README compares). */
async function measureRuntimes(env: (url: string) => Record<string, string>): Promise<RuntimeFigures[]> {
  const figures: RuntimeFigures[] = [];
  for (const name of ['node', 'deno', 'workers'] as const) {
    log(`runtime ${name}: ${RUNTIMES[name].command.join(' ')}`);
    await buildRuntime(name);
    const target = await startOurs(name, env);
    const token = await seed(target, users);
    await waitIdle(target.pid);
    await waitForQuietMachine();
    const idleRss = rssOfGroup(target.pid);
    const me = await wrk(`${target.base}/users/me`, { conns: 50, secs: seconds, token, users });
    figures.push({ name, me, idleRss });
    await stopTarget(target);
  }
  return figures;
}

/**
 * One hash's time at the configured cost, on this machine, before any server runs. The fastest of five:
 * other work on the box only ever adds time, and a slow outlier would flatter the target.
 */
async function hashTime(): Promise<number> {
  await waitForQuietMachine();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    Bun.password.hashSync(PASSWORD, { algorithm: 'bcrypt', cost });
    times.push(performance.now() - t0);
  }
  return Math.min(...times);
}

async function main(): Promise<void> {
  const started = performance.now();
  if (parts.has('floods')) ensureClientRoom();
  await ensurePrerequisites();
  const cores = availableParallelism();
  const hashMs = await hashTime();
  log(
    `bcrypt cost ${cost}: ${hashMs.toFixed(0)} ms per hash, ${cores} cores → ceiling ${((cores * 1000) / hashMs).toFixed(1)} logins/s`,
  );

  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex');
  const env = ourEnv(secret, cost);
  let ours: Measured | undefined;
  if (parts.has('throughput')) {
    log(`our server: bun src/runtimes/bun.ts, BCRYPT_COST=${cost}`);
    ours = await measure(await startOurs('bun', env));
  }

  let ref: Measured | undefined;
  if (withReference) {
    log(`reference: ${REFERENCE_DIR}/run.sh (passlib's bcrypt cost is its default, 12)`);
    ref = await measure(await startReference(REFERENCE_DIR, secret));
  }

  let tokens: TokenFigures | undefined;
  if (parts.has('tokens')) {
    log('tokens: two instances on one database');
    await waitForQuietMachine();
    tokens = await measureTokens(env, users, seconds);
  }

  let scale: ScaleFigures | undefined;
  if (parts.has('scale')) {
    log('scale: 1,000 and 1,000,000 users; then nginx in front of one, two and three instances');
    scale = await measureScale(env, { prefix: users.prefix, password: PASSWORD, cost, seconds, hashSecs });
  }

  let floods: FloodFigures | undefined;
  if (parts.has('floods')) {
    log('floods: our server with its rate limits on, behind a trusted proxy');
    floods = await measureFloods(ourEnv(secret, cost, { behindProxy: true }), users, hashSecs);
  }

  const perRuntime = flags.runtimes && parts.has('throughput') ? await measureRuntimes(env) : [];
  const wallSeconds = (performance.now() - started) / 1000;
  console.log(
    report({
      cores,
      cost,
      seconds,
      hashSecs,
      wrkTimeoutS: WRK_TIMEOUT_S,
      userCount,
      hashMs,
      ours,
      ref,
      tokens,
      perRuntime,
      floods,
      scale,
      wallSeconds,
    }),
  );
}

main()
  .then(() => cleanup())
  .catch(async (error: unknown) => {
    if (cleaning) return; // interrupted: the signal handler is already cleaning up and will exit
    console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
    await cleanup();
    process.exit(1);
  });
