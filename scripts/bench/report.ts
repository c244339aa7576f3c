/** What the benchmark prints: progress on stderr, the markdown tables and the PASS/FAIL lines of the targets. */
import type { Answer, FloodFigures } from './floods';
import type { ScaleFigures } from './scale';
import { percentiles } from './stats';
import type { TokenFigures } from './tokens';
import type { WrkResult } from './wrk';

export const SCENARIOS: [key: string, label: string][] = [
  ['health', 'GET /health (c50)'],
  ['me', 'GET /users/me (c50)'],
  ['welcome', 'GET /welcome (c50)'],
  ['token', 'POST /token (c16)'],
  ['flood-me', 'GET /users/me (c50) during a /token flood'],
  ['flood-token', '… the /token flood (c16)'],
  ['register', 'POST /register (c8)'],
];

export type Results = Record<string, WrkResult>;

/** One server's figures: the scenarios, its memory, and how busy the machine was just before. */
export interface Measured {
  results: Results;
  startRss: number;
  idleRss: number;
  peakRss: number;
  busy: number;
}

export interface RuntimeFigures {
  name: string;
  me: WrkResult;
  idleRss: number;
}

/** What one run measured; a part it did not run (`--only`) is undefined. */
export interface Run {
  cores: number;
  cost: number;
  seconds: number;
  hashSecs: number;
  wrkTimeoutS: number;
  userCount: number;
  hashMs: number;
  ours?: Measured;
  ref?: Measured;
  tokens?: TokenFigures;
  perRuntime: RuntimeFigures[];
  floods?: FloodFigures;
  scale?: ScaleFigures;
  wallSeconds: number;
}

/**
 * "Within a few hash times": a legitimate login during a flood may take this many idle logins: its own hash
 * after the ones running when it arrives (a known address skips the strangers' queue), on workers that share
 * the CPU with the flood's requests.
 */
const LEGIT_LOGIN_IDLE_MULTIPLE = 4;
/**
 * "Answered in milliseconds": the p99 of a burst's refusals. 300 requests arrive at once and the last refusals
 * wait for the server to read the ones before them (≈ 150 ms at cost 8 on the 2-core VM), but never for a hash:
 * before admission control they waited out REQUEST_TIMEOUT_MS (10 s).
 */
const REFUSAL_P99_MS = 500;

const fmtMs = (ms: number) =>
  Number.isNaN(ms) ? '–' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(2)} ms`;
const fmtRps = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const pass = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

const socketErrors = (w: WrkResult) => Object.values(w.socket).reduce((n, k) => n + k, 0);

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

function runtimeTable(me: WrkResult, ours: Measured, perRuntime: RuntimeFigures[]): string[] {
  const row = (name: string, w: WrkResult, rss: number) =>
    `| ${name} | ${fmtRps(w.rps)} | ${fmtMs(w.p50)} | ${fmtMs(w.p99)} | ${fmtErrors(w)} | ${rss.toFixed(0)} MB |`;
  return [
    '## GET /users/me per runtime (c50, PostgreSQL)',
    '',
    '| runtime | req/s | p50 | p99 | errors | idle RSS (all processes) |',
    '|---|--:|--:|--:|---|--:|',
    row('bun', me, ours.idleRss),
    ...perRuntime.map((r) => row(r.name, r.me, r.idleRss)),
    '',
  ];
}

function tokensSection({ lagMs, loadDuringRevocations, rotation }: TokenFigures): string[] {
  const loads = (ws: WrkResult[]) =>
    ws.map((w, i) => `${'AB'[i]} ${fmtRps(w.rps)} req/s (p99 ${fmtMs(w.p99)}, errors ${fmtErrors(w)})`).join('; ');
  return [
    '## Two instances on one database (GET /users/me load on both, c25 each)',
    '',
    `Revocation lag, A's logout answer → B's first 401: p50 ${fmtMs(lagMs.p50)}, p99 ${fmtMs(lagMs.p99)}, ` +
      `max ${fmtMs(lagMs.max)} over ${lagMs.samples} revocations; load meanwhile: ${loads(loadDuringRevocations)}`,
    `Key rotation (\`bun run cli keys rotate\`) under load: ${rotation.logins} logins on A each used on B, ` +
      `${rotation.failures.length} failed${rotation.failures.length ? ` (${rotation.failures.slice(0, 3).join('; ')})` : ''}; ` +
      `kid ${rotation.kidBefore} → ${rotation.kidAfter}; load meanwhile: ${loads(rotation.load)}`,
    '',
  ];
}

/** The throughput part's targets, each PASS, FAIL or SKIP with the figures it compares. */
function serverTargets(run: Run, ours: Measured): string[] {
  const { ref, cores, hashMs } = run;
  const o = ours.results;
  const me = o.me as WrkResult;
  const health = o.health as WrkResult;
  const floodMe = o['flood-me'] as WrkResult;
  const login = loginRate(o.token as WrkResult); // 200s only: a fast 503 is no login
  const loginCeiling = (cores * 1000) / hashMs;
  const refMe = ref?.results.me;
  return [
    refMe
      ? `- ${pass(me.rps >= 40 * refMe.rps)} GET /users/me ≥ 40× the reference: ${fmtRps(me.rps)} vs ${fmtRps(refMe.rps)} req/s = ${(me.rps / refMe.rps).toFixed(1)}×`
      : '- SKIP GET /users/me ≥ 40× the reference: the reference was not run',
    `- ${pass(me.rps >= 0.6 * health.rps)} GET /users/me ≥ 60% of GET /health: ${fmtRps(me.rps)} vs ${fmtRps(health.rps)} req/s → ${pct(me.rps / health.rps)}`,
    `- ${pass(login >= 0.9 * loginCeiling)} login throughput ≥ 90% of cores ÷ hash time: ${fmtRps(login)} logins/s vs ${cores} ÷ ${hashMs.toFixed(0)} ms = ${loginCeiling.toFixed(1)}/s → ${pct(login / loginCeiling)}`,
    `- ${pass(floodMe.rps >= 0.5 * me.rps)} during a /token flood GET /users/me keeps ≥ 50% of idle req/s: ${fmtRps(floodMe.rps)} vs ${fmtRps(me.rps)} → ${pct(floodMe.rps / me.rps)}`,
    `- ${pass(floodMe.p99 <= 2 * me.p99)} during a /token flood GET /users/me p99 ≤ 2× idle: ${fmtMs(floodMe.p99)} vs ${fmtMs(me.p99)} → ${(floodMe.p99 / me.p99).toFixed(2)}×`,
    `- ${pass(ours.startRss < 80)} idle RSS < 80 MB: ${ours.startRss.toFixed(1)} MB after start; ${ours.idleRss.toFixed(1)} MB idle after the warm-up, ${ours.peakRss.toFixed(1)} MB peak under load`,
  ];
}

function tokenTargets({ lagMs, rotation }: TokenFigures): string[] {
  const rotationErrors = rotation.load.reduce((n, w) => n + w.non2xx + socketErrors(w), 0) + rotation.failures.length;
  return [
    `- ${pass(lagMs.p99 <= 1000)} a revocation on A is refused by B within 1 s at p99: p50 ${fmtMs(lagMs.p50)}, p99 ${fmtMs(lagMs.p99)}, max ${fmtMs(lagMs.max)} over ${lagMs.samples}`,
    `- ${pass(rotationErrors === 0 && rotation.kidAfter !== rotation.kidBefore)} key rotation under load fails no request and the new key takes over: ${rotationErrors} failed, kid ${rotation.kidBefore} → ${rotation.kidAfter}`,
  ];
}

const fmtAnswer = (a: Answer) => `${a.status || 'no answer'} in ${fmtMs(a.ms)}`;
/** Logins per second: the 2xx share of what wrk completed (the rest were refused). */
const loginRate = (w: WrkResult) => (w.requests ? (w.rps * (w.requests - w.non2xx)) / w.requests : 0);

function floodsSection(f: FloodFigures): string[] {
  const statuses = (s: Record<number, number>) =>
    Object.entries(s)
      .map(([status, n]) => `${n} × ${status === '0' ? 'no answer' : status}`)
      .join(', ');
  const retry = (values: string[]) =>
    values.length ? ` (Retry-After ${values.slice(0, 6).join('/')}${values.length > 6 ? '/…' : ''})` : '';
  const bursts = f.bursts.map(({ label, answers: a, allAnsweredMs, known, stranger, normalAfterMs }) => {
    const refusals = percentiles(a.refusalMs);
    return (
      `| ${label} | ${statuses(a.statuses)} | ${fmtMs(a.ms.p50)} | ${fmtMs(a.ms.p99)} | ` +
      `${fmtMs(refusals.p50)} / ${fmtMs(refusals.p99)}${retry(a.retryAfter)} | ` +
      `${fmtMs(allAnsweredMs)} | ${fmtAnswer(known)} | ${fmtAnswer(stranger)} | ${fmtMs(normalAfterMs)} |`
    );
  });
  const { cold, warmup, afterWarmup, underReads, reads } = f.logins;
  const run = (label: string, w: WrkResult) =>
    `| ${label} | ${fmtRps(loginRate(w))} | ${fmtMs(w.p50)} | ${fmtMs(w.p99)} | ${fmtErrors(w)} |`;
  return [
    '## Floods (rate limits at their defaults, TRUST_PROXY=1, every client its own X-Forwarded-For)',
    '',
    `An idle login takes ${fmtMs(f.idleLoginMs)} (p50, each from a new address); one within ${fmtMs(f.normalLoginMs)} is normal. ` +
      `CPU used by other processes just before: ${pct(f.busy)}.`,
    '',
    '| flood | answers | p50 | p99 | refusals p50 / p99 | all answered | legit login, known address | … new address | normal again after |',
    '|---|---|--:|--:|--:|--:|---|---|--:|',
    ...bursts,
    '',
    'Audit events since each burst began, at its last answer → once logins were normal again (+1 s):',
    ...f.bursts.map((b) => `- ${b.label}: ${b.audit.atLastAnswer} → ${b.audit.afterNormal}`),
    '',
    '| login run (wrk c50 on POST /token, every request from a new address) | logins/s | p50 | p99 | errors |',
    '|---|--:|--:|--:|---|',
    run('cold', cold),
    run('2 s warm-up (then its clients disconnect)', warmup),
    run('right after the warm-up', afterWarmup),
    run('while GET /users/me is flooded', underReads),
    `| … the GET /users/me flood (c50), req/s | ${fmtRps(reads.rps)} | ${fmtMs(reads.p50)} | ${fmtMs(reads.p99)} | ${fmtErrors(reads)} |`,
    '',
  ];
}

function floodTargets(f: FloodFigures): string[] {
  const bound = LEGIT_LOGIN_IDLE_MULTIPLE * f.idleLoginMs;
  const fine = (a: Answer) => a.status === 200 && a.ms <= bound;
  const legit = f.bursts.map(
    (b) =>
      `- ${pass(fine(b.known) && (!b.oneClient || fine(b.stranger)))} during ${b.label} a legitimate login answers 200 ` +
      `within ${LEGIT_LOGIN_IDLE_MULTIPLE}× an idle login (${fmtMs(bound)}) from a known address` +
      `${b.oneClient ? ' and from a new one' : ''}: ${fmtAnswer(b.known)}, new address ${fmtAnswer(b.stranger)}`,
  );
  const normal = f.bursts.map((b) => b.normalAfterMs);
  const refusals = f.bursts.map(({ answers: a }) => ({
    ...a,
    p99: percentiles(a.refusalMs).p99,
    slow: a.refusalMs.filter((ms) => ms > REFUSAL_P99_MS).length,
  }));
  const { cold, afterWarmup, underReads } = f.logins;
  const vsCold = (w: WrkResult) =>
    `${fmtRps(loginRate(w))} vs ${fmtRps(loginRate(cold))}/s → ${pct(loginRate(w) / loginRate(cold))}`;
  return [
    ...legit,
    `- ${pass(normal.every((ms) => ms <= 1000))} within 1 s after each flood a login answers normally: ${normal.map(fmtMs).join(', ')}`,
    `- ${pass(refusals.every((a) => a.improper === 0 && !(a.p99 > REFUSAL_P99_MS)))} every refusal is 503 + Retry-After or 429, ` +
      `p99 ≤ ${REFUSAL_P99_MS} ms: ${refusals
        .map((a) => `${a.refusalMs.length} refused, p99 ${fmtMs(a.p99)}, ${a.slow} slower, ${a.improper} other`)
        .join('; ')}`,
    `- ${pass(loginRate(afterWarmup) >= 0.8 * loginRate(cold))} logins right after a warm-up whose clients disconnected ≥ 80% of a cold run: ${vsCold(afterWarmup)}`,
    `- ${pass(loginRate(underReads) >= 0.5 * loginRate(cold))} while GET /users/me is flooded logins keep ≥ 50% of idle: ${vsCold(underReads)}`,
  ];
}

function serversSection(ours: Measured, ref?: Measured): string[] {
  return [
    table(ours.results, ref?.results),
    '',
    `Memory: RSS ${ours.startRss.toFixed(1)} MB idle after start, ${ours.idleRss.toFixed(1)} MB idle after the warm-up ` +
      `(a registration loads the 49k-entry common-password list), peak under load (VmHWM) ${ours.peakRss.toFixed(1)} MB` +
      (ref ? `; reference idle ${ref.idleRss.toFixed(1)} MB, peak ${ref.peakRss.toFixed(1)} MB` : ''),
    `CPU used by other processes just before the scenarios: ours ${pct(ours.busy)}${ref ? `, reference ${pct(ref.busy)}` : ''} ` +
      '(well above 0% means the figures are skewed by other work on the box)',
    '',
  ];
}

/** Within 10% of the 1,000-user figure: what a table a thousand times larger may cost. */
const SCALE_TOLERANCE = 0.9;

function scaleSection(s: ScaleFigures): string[] {
  const row = (label: string, w: WrkResult, rate = w.rps) =>
    `| ${label} | ${fmtRps(rate)} | ${fmtMs(w.p50)} | ${fmtMs(w.p99)} | ${fmtErrors(w)} |`;
  const head = ['| | req/s | p50 | p99 | errors |', '|---|--:|--:|--:|---|'];
  const direct = s.balanced.find((b) => b.direct)?.direct;
  const one = s.balanced.find((b) => b.instances === 1)?.me;
  return [
    `## Scale (${s.cores} cores)`,
    '',
    `Users table at ${s.small.users.toLocaleString('en-US')} and, after COPY (${s.copySeconds.toFixed(0)} s), ` +
      `${s.large.users.toLocaleString('en-US')} rows sharing one real bcrypt hash; no access view, so every ` +
      'GET /users/me reads its user and session by index (with the view it answers from memory at any size):',
    '',
    ...head,
    row(
      `POST /token (logins/s), ${s.small.users.toLocaleString('en-US')} users`,
      s.small.login,
      loginRate(s.small.login),
    ),
    row(
      `POST /token (logins/s), ${s.large.users.toLocaleString('en-US')} users`,
      s.large.login,
      loginRate(s.large.login),
    ),
    row(`GET /users/me, ${s.small.users.toLocaleString('en-US')} users`, s.small.me),
    row(`GET /users/me, ${s.large.users.toLocaleString('en-US')} users`, s.large.me),
    '',
    'GET /users/me through nginx (`bun run cluster`: PgBouncer pool 5, Redis, the view on), c50:',
    '',
    ...head,
    ...(direct ? [row('one instance, directly (no nginx)', direct)] : []),
    ...s.balanced.map((b) => row(`nginx → ${b.instances} instance${b.instances > 1 ? 's' : ''}`, b.me)),
    '',
    `On ${s.cores} cores wrk, nginx and every instance share the same CPUs, so more instances cannot add capacity ` +
      'here: the rows show the shape (what a second and third instance add or cost when the cores are already ' +
      `busy) and nginx's overhead${direct && one ? ` (one instance through nginx: ${pct(one.rps / direct.rps)} of direct)` : ''}, ` +
      'not what three machines would do.',
    '',
  ];
}

function scaleTargets(s: ScaleFigures): string[] {
  const within = (large: number, small: number) => `${fmtRps(large)} vs ${fmtRps(small)} → ${pct(large / small)}`;
  const [loginSmall, loginLarge] = [loginRate(s.small.login), loginRate(s.large.login)];
  return [
    `- ${pass(loginLarge >= SCALE_TOLERANCE * loginSmall)} logins at ${s.large.users.toLocaleString('en-US')} users within 10% of ${s.small.users.toLocaleString('en-US')}: ${within(loginLarge, loginSmall)}`,
    `- ${pass(s.large.me.rps >= SCALE_TOLERANCE * s.small.me.rps)} GET /users/me at ${s.large.users.toLocaleString('en-US')} users within 10% of ${s.small.users.toLocaleString('en-US')}: ${within(s.large.me.rps, s.small.me.rps)}`,
  ];
}

/** The whole report, as markdown: the section and the targets of each part the run measured. */
export function report(run: Run): string {
  const { ours, ref, tokens, floods } = run;
  return [
    '',
    `## Benchmark — ${new Date().toISOString()}, ${run.cores} cores, bcrypt cost ${run.cost}, ` +
      `${run.seconds} s per scenario (bcrypt-bound ones ${run.hashSecs} s), ` +
      `wrk -t2 --timeout ${run.wrkTimeoutS}s, ${run.userCount} seeded users`,
    '',
    ...(ours ? serversSection(ours, ref) : []),
    ...(tokens ? tokensSection(tokens) : []),
    ...(ours && run.perRuntime.length > 0 ? runtimeTable(ours.results.me as WrkResult, ours, run.perRuntime) : []),
    ...(floods ? floodsSection(floods) : []),
    ...(run.scale ? scaleSection(run.scale) : []),
    '## Targets',
    '',
    ...(ours ? serverTargets(run, ours) : []),
    ...(tokens ? tokenTargets(tokens) : []),
    ...(floods ? floodTargets(floods) : []),
    ...(run.scale ? scaleTargets(run.scale) : []),
    '',
    `Wall time: ${run.wallSeconds.toFixed(0)} s`,
  ].join('\n');
}
