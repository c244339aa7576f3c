/** What the benchmark prints: progress on stderr, the markdown tables and the PASS/FAIL lines of the targets. */
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

export interface Run {
  cores: number;
  cost: number;
  seconds: number;
  hashSecs: number;
  wrkTimeoutS: number;
  userCount: number;
  hashMs: number;
  ours: Measured;
  ref?: Measured;
  tokens: TokenFigures;
  perRuntime: RuntimeFigures[];
  wallSeconds: number;
}

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

/** The targets, each PASS, FAIL or SKIP with the figures it compares. */
function targets(run: Run): string[] {
  const { ours, ref, cores, hashMs } = run;
  const o = ours.results;
  const me = o.me as WrkResult;
  const health = o.health as WrkResult;
  const { lagMs, rotation } = run.tokens;
  const rotationErrors = rotation.load.reduce((n, w) => n + w.non2xx + socketErrors(w), 0) + rotation.failures.length;
  const floodMe = o['flood-me'] as WrkResult;
  const login = (o.token as WrkResult).rps;
  const loginCeiling = (cores * 1000) / hashMs;
  const refMe = ref?.results.me;
  return [
    refMe
      ? `- ${pass(me.rps >= 40 * refMe.rps)} GET /users/me ≥ 40× the reference: ${fmtRps(me.rps)} vs ${fmtRps(refMe.rps)} req/s = ${(me.rps / refMe.rps).toFixed(1)}×`
      : '- SKIP GET /users/me ≥ 40× the reference: the reference was not run',
    `- ${pass(me.rps >= 0.6 * health.rps)} GET /users/me ≥ 60% of GET /health: ${fmtRps(me.rps)} vs ${fmtRps(health.rps)} req/s → ${pct(me.rps / health.rps)}`,
    `- ${pass(lagMs.p99 <= 1000)} a revocation on A is refused by B within 1 s at p99: p50 ${fmtMs(lagMs.p50)}, p99 ${fmtMs(lagMs.p99)}, max ${fmtMs(lagMs.max)} over ${lagMs.samples}`,
    `- ${pass(rotationErrors === 0 && rotation.kidAfter !== rotation.kidBefore)} key rotation under load fails no request and the new key takes over: ${rotationErrors} failed, kid ${rotation.kidBefore} → ${rotation.kidAfter}`,
    `- ${pass(login >= 0.9 * loginCeiling)} login throughput ≥ 90% of cores ÷ hash time: ${fmtRps(login)} req/s vs ${cores} ÷ ${hashMs.toFixed(0)} ms = ${loginCeiling.toFixed(1)}/s → ${pct(login / loginCeiling)}`,
    `- ${pass(floodMe.rps >= 0.5 * me.rps)} during a /token flood GET /users/me keeps ≥ 50% of idle req/s: ${fmtRps(floodMe.rps)} vs ${fmtRps(me.rps)} → ${pct(floodMe.rps / me.rps)}`,
    `- ${pass(floodMe.p99 <= 2 * me.p99)} during a /token flood GET /users/me p99 ≤ 2× idle: ${fmtMs(floodMe.p99)} vs ${fmtMs(me.p99)} → ${(floodMe.p99 / me.p99).toFixed(2)}×`,
    `- ${pass(ours.startRss < 80)} idle RSS < 80 MB: ${ours.startRss.toFixed(1)} MB after start; ${ours.idleRss.toFixed(1)} MB idle after the warm-up, ${ours.peakRss.toFixed(1)} MB peak under load`,
  ];
}

/** The whole report, as markdown. */
export function report(run: Run): string {
  const { ours, ref } = run;
  return [
    '',
    `## Benchmark — ${new Date().toISOString()}, ${run.cores} cores, bcrypt cost ${run.cost}, ` +
      `${run.seconds} s per scenario (bcrypt-bound ones ${run.hashSecs} s), ` +
      `wrk -t2 --timeout ${run.wrkTimeoutS}s, ${run.userCount} seeded users`,
    '',
    table(ours.results, ref?.results),
    '',
    `Memory: RSS ${ours.startRss.toFixed(1)} MB idle after start, ${ours.idleRss.toFixed(1)} MB idle after the warm-up ` +
      `(a registration loads the 49k-entry common-password list), peak under load (VmHWM) ${ours.peakRss.toFixed(1)} MB` +
      (ref ? `; reference idle ${ref.idleRss.toFixed(1)} MB, peak ${ref.peakRss.toFixed(1)} MB` : ''),
    `CPU used by other processes just before the scenarios: ours ${pct(ours.busy)}${ref ? `, reference ${pct(ref.busy)}` : ''} ` +
      '(well above 0% means the figures are skewed by other work on the box)',
    '',
    ...tokensSection(run.tokens),
    ...(run.perRuntime.length > 0 ? runtimeTable(ours.results.me as WrkResult, ours, run.perRuntime) : []),
    '## Targets',
    '',
    ...targets(run),
    '',
    `Wall time: ${run.wallSeconds.toFixed(0)} s`,
  ].join('\n');
}
