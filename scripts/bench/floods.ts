/**
 * The floods of issue 10, sent the way an attacker sends them: this service (the Bun entry) on a scratch
 * PostgreSQL database, every limit at its default, behind one trusted proxy (TRUST_PROXY=1) so that each
 * request's X-Forwarded-For is its client's address. One flood at a time, the server idle before each:
 *
 * - **Bursts.** 300 concurrent `POST /token` (wrong passwords, unknown emails) from 300 addresses; the same 300
 *   from one address; 200 concurrent `PUT /users/me/password` with wrong current passwords, one account from
 *   one address. A second into each, once it is queued, a legitimate user logs in from an address it has
 *   logged in from before and from a new one; after the last answer, a login from a new address is sent
 *   every POLL_MS until one answers normally (a stranger waits behind any backlog a known address skips).
 * - **Login runs** (wrk c50 on `POST /token`, every request from a new address): a cold one; one right after a
 *   2 s warm-up whose clients disconnected (the hashes they left queued must not starve the next clients);
 *   and one while `GET /users/me` is flooded. The cold run is the idle figure both compare with.
 *
 * `GET /users/me` during a login flood is the throughput part's `flood-me` scenario (main.ts): not measured
 * twice. Client addresses of this file come from 198.18.0.0/15 (RFC 2544's range for benchmarks), wrk's from
 * 10.0.0.0/8 (post.lua): none is known to the server before it is used.
 */
import postgres from 'postgres';
import { log } from './log';
import { waitForQuietMachine, waitIdle } from './machine';
import { type SeededUsers, seed } from './seed';
import { startOurs, stopTarget, type Target } from './servers';
import { type Percentiles, percentiles } from './stats';
import { type WrkResult, wrk } from './wrk';

const BURST = 300;
const PASSWORD_BURST = 200;
const LOGIN_CLIENTS = 50;
const WARMUP_S = 2;
/** The legitimate logins of a burst start this long after it: every request of the burst has arrived by then. */
const QUEUED_MS = 1000;
const POLL_MS = 250;
/** A poll that never sees a normal login gives up after this long (before admission control: 60–75 s). */
const NORMAL_GIVE_UP_MS = 30_000;
const IDLE_LOGINS = 5;
/** The address the legitimate user logs in from before the floods, so the server knows it (TEST-NET-1). */
const KNOWN_ADDRESS = '192.0.2.10';

/**
 * Bun's fetch has at most BUN_CONFIG_MAX_HTTP_REQUESTS (default 256) requests in flight and queues the rest in
 * this process; it reads the variable once, at start. A burst of 300 and the logins sent during it would then
 * measure this client's queue, not the server: `bun run bench` sets it (package.json), and a run without it
 * stops before it starts anything.
 */
export function ensureClientRoom(): void {
  const room = Number(process.env.BUN_CONFIG_MAX_HTTP_REQUESTS ?? 256);
  if (room < BURST + 2) {
    throw new Error(
      `the floods send ${BURST + 2} requests at once, but this process may have only ${room} in flight: ` +
        'run it as `bun run bench`, or set BUN_CONFIG_MAX_HTTP_REQUESTS=1024',
    );
  }
}

/** One answer as the client saw it; status 0: none (a network error). */
export interface Answer {
  status: number;
  ms: number;
  retryAfter: string | null;
}

/** A burst's answers: how many of each status, their latency, and the refusals (429, 503) apart. */
export interface Answers {
  statuses: Record<number, number>;
  ms: Percentiles;
  /** How long each refusal took, fastest first. */
  refusalMs: number[];
  /** Every distinct Retry-After of the refusals. */
  retryAfter: string[];
  /** Answers no overload rule explains: a 503 without Retry-After, another 5xx, or none at all. */
  improper: number;
}

export interface BurstFigures {
  label: string;
  /** The whole burst from one client (one address, or one account): its fair share leaves room for a new address. */
  oneClient: boolean;
  answers: Answers;
  /** From the first request of the burst to its last answer. */
  allAnsweredMs: number;
  known: Answer;
  stranger: Answer;
  /** From the burst's last answer until a login from a new address answered normally; NaN: not in NORMAL_GIVE_UP_MS. */
  normalAfterMs: number;
  /** Audit events since the burst began, `event count` each: at its last answer, and once logins were normal (+1 s). */
  audit: { atLastAnswer: string; afterNormal: string };
}

export interface FloodFigures {
  /** Share of the cores other processes used just before the floods (waitForQuietMachine). */
  busy: number;
  /** p50 of IDLE_LOGINS logins from new addresses, the server idle: the unit of the login targets. */
  idleLoginMs: number;
  /** A login that answers 200 within this long is a normal one. */
  normalLoginMs: number;
  bursts: BurstFigures[];
  logins: { cold: WrkResult; warmup: WrkResult; afterWarmup: WrkResult; underReads: WrkResult; reads: WrkResult };
}

let addresses = 0;
/** A client address not used before, from 198.18.0.0/15. */
function newAddress(): string {
  const n = addresses++;
  return `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
}

async function send(url: string, init: RequestInit & { from: string }): Promise<Answer> {
  const headers = new Headers(init.headers);
  headers.set('X-Forwarded-For', init.from);
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, headers });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started, retryAfter: res.headers.get('Retry-After') };
  } catch {
    return { status: 0, ms: performance.now() - started, retryAfter: null };
  }
}

/** A refusal the overload rules allow: 429 from a limit, or 503 `overloaded` with the seconds to wait. */
const isRefusal = (a: Answer) => a.status === 429 || (a.status === 503 && a.retryAfter !== null);

function summarize(answers: Answer[]): Answers {
  const statuses: Record<number, number> = {};
  for (const { status } of answers) statuses[status] = (statuses[status] ?? 0) + 1;
  const refusals = answers.filter(isRefusal);
  return {
    statuses,
    ms: percentiles(answers.map((a) => a.ms)),
    refusalMs: refusals.map((a) => a.ms).sort((x, y) => x - y),
    retryAfter: [...new Set(refusals.map((a) => a.retryAfter).filter((v) => v !== null))].sort(
      (x, y) => Number(x) - Number(y),
    ),
    improper: answers.filter((a) => a.status === 0 || (a.status >= 500 && !isRefusal(a))).length,
  };
}

/** The server under attack, and how to tell a legitimate login that answers normally. */
interface UnderAttack {
  t: Target;
  sql: postgres.Sql;
  /** The legitimate user's login (the right password) from `from`. */
  legitLogin: (from: string) => Promise<Answer>;
  normalLoginMs: number;
}

const login = (t: Target, username: string, password: string, from: string) =>
  send(`${t.base}/token`, { method: 'POST', body: new URLSearchParams({ username, password }), from });

/** Every measurement on one server of its own; it is stopped and its database dropped after. */
export async function measureFloods(
  env: (url: string) => Record<string, string>,
  users: SeededUsers,
  seconds: number,
): Promise<FloodFigures> {
  const busy = await waitForQuietMachine();
  const t = await startOurs('bun', env);
  const sql = postgres(t.db.url as string, { max: 1, onnotice: () => {} });
  try {
    const readToken = await seed(t, users); // the login runs rotate over these users
    const stolenToken = await seed(t, { ...users, prefix: `${users.prefix}stolen-`, count: 1 });
    const legit = `${users.prefix}0@example.com`;
    const legitLogin = (from: string) => login(t, legit, users.password, from);
    if ((await legitLogin(KNOWN_ADDRESS)).status !== 200) throw new Error(`floods: ${legit} could not log in`);

    await waitIdle(t.pid);
    const idle: number[] = [];
    for (let i = 0; i < IDLE_LOGINS; i++) idle.push((await legitLogin(newAddress())).ms);
    const idleLoginMs = percentiles(idle).p50;
    log(`floods: an idle login takes ${idleLoginMs.toFixed(0)} ms`);
    const normalLoginMs = Math.max(3 * idleLoginMs, idleLoginMs + 100);
    const attacked: UnderAttack = { t, sql, legitLogin, normalLoginMs };

    const ghost = (i: number) => `${users.prefix}ghost-${i}@example.com`;
    const wrong = 'not-the-password-at-all';
    const oneAddress = newAddress();
    const thiefAddress = newAddress();
    const bursts = [
      await burst(attacked, {
        label: `${BURST} × POST /token from ${BURST} addresses`,
        oneClient: false,
        count: BURST,
        make: (i) => login(t, ghost(i), wrong, newAddress()),
      }),
      await burst(attacked, {
        label: `${BURST} × POST /token from one address`,
        oneClient: true,
        count: BURST,
        make: (i) => login(t, ghost(BURST + i), wrong, oneAddress),
      }),
      await burst(attacked, {
        label: `${PASSWORD_BURST} × PUT /users/me/password, one account and address`,
        oneClient: true,
        count: PASSWORD_BURST,
        make: (i) =>
          send(`${t.base}/users/me/password`, {
            method: 'PUT',
            from: thiefAddress,
            headers: { Authorization: `Bearer ${stolenToken}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ current_password: `guess-${i}-wrong`, new_password: 'a brand new passphrase 42' }),
          }),
      }),
    ];
    const logins = await loginRuns(t, users, seconds, readToken);
    return { busy, idleLoginMs, normalLoginMs, bursts, logins };
  } finally {
    await sql.end({ timeout: 2 });
    await stopTarget(t);
  }
}

/** Audit events written since `since`, as `event count, …`. */
async function auditEvents(sql: postgres.Sql, since: Date): Promise<string> {
  const rows = await sql<{ event: string; n: number }[]>`select event::text as event, count(*)::int as n
    from audit_events where created_at >= ${since} group by 1 order by 1`;
  return rows.map((row) => `${row.event} ${row.n}`).join(', ') || 'none';
}

/** Milliseconds from `from` until a legitimate login from a new address answers 200 within normalLoginMs. */
async function timeToNormal(attacked: UnderAttack, from: number): Promise<number> {
  while (performance.now() - from < NORMAL_GIVE_UP_MS) {
    const answer = await attacked.legitLogin(newAddress());
    if (answer.status === 200 && answer.ms <= attacked.normalLoginMs) return performance.now() - from;
    await Bun.sleep(POLL_MS);
  }
  return Number.NaN;
}

/** `count` requests made by `make` at once, the legitimate logins during them, and how long until logins are normal. */
async function burst(
  attacked: UnderAttack,
  o: { label: string; oneClient: boolean; count: number; make: (i: number) => Promise<Answer> },
): Promise<BurstFigures> {
  log(`floods: ${o.label}`);
  await waitIdle(attacked.t.pid);
  const since = new Date();
  const started = performance.now();
  const flood = Promise.all(Array.from({ length: o.count }, (_, i) => o.make(i)));
  await Bun.sleep(QUEUED_MS);
  const [known, stranger] = await Promise.all([attacked.legitLogin(KNOWN_ADDRESS), attacked.legitLogin(newAddress())]);
  const answers = await flood;
  const answered = performance.now();
  const atLastAnswer = await auditEvents(attacked.sql, since);
  const normalAfterMs = await timeToNormal(attacked, answered);
  await Bun.sleep(1000); // anything a handler still wrote after its answer shows up by now
  return {
    label: o.label,
    oneClient: o.oneClient,
    answers: summarize(answers),
    allAnsweredMs: answered - started,
    known,
    stranger,
    normalAfterMs,
    audit: { atLastAnswer, afterNormal: await auditEvents(attacked.sql, since) },
  };
}

/** The login runs: cold, right after a warm-up whose clients disconnected, and under a GET /users/me flood. */
async function loginRuns(
  t: Target,
  users: SeededUsers,
  seconds: number,
  readToken: string,
): Promise<FloodFigures['logins']> {
  const logins = (secs: number) =>
    wrk(`${t.base}/token`, { conns: LOGIN_CLIENTS, secs, users, mode: 'token', forwarded: true });
  log(`floods: login runs (c${LOGIN_CLIENTS}): cold, after a ${WARMUP_S} s warm-up, under a GET /users/me flood`);
  await waitIdle(t.pid);
  const cold = await logins(seconds);
  await waitIdle(t.pid);
  const warmup = await logins(WARMUP_S);
  const afterWarmup = await logins(seconds); // at once: wrk has just closed the warm-up's connections
  await waitIdle(t.pid);
  // The read flood outlasts the login run by a second each side, so every login meets it.
  const readFlood = wrk(`${t.base}/users/me`, { conns: 50, secs: seconds + 2, token: readToken, users });
  await Bun.sleep(1000);
  const underReads = await logins(seconds);
  const reads = await readFlood;
  await waitIdle(t.pid);
  return { cold, warmup, afterWarmup, underReads, reads };
}
