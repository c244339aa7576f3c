/** Runs wrk against one URL (post.lua beside this file for the POST scenarios) and parses what it prints. */
import { join } from 'node:path';
import { spawnProcess } from '../lib/processes';
import type { SeededUsers } from './seed';

const POST_LUA = join(import.meta.dir, 'post.lua');
export const WRK_TIMEOUT_S = 10; // wrk's default 2 s would drop the slow requests (bcrypt queues, the reference) from p99

export interface WrkResult {
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

export function parseWrk(out: string): WrkResult {
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

let forwardedRuns = 0;

/**
 * `wrk -t2` for `secs` seconds; POST modes log in or register the seeded users (post.lua), `forwarded`
 * each from an X-Forwarded-For address of its own (for a server behind a trusted proxy, its limits on).
 */
export async function wrk(
  url: string,
  o: {
    conns: number;
    secs: number;
    users: SeededUsers;
    token?: string;
    mode?: 'token' | 'register';
    forwarded?: boolean;
  },
): Promise<WrkResult> {
  const args = ['-t2', `-c${o.conns}`, `-d${o.secs}s`, '--timeout', `${WRK_TIMEOUT_S}s`, '--latency'];
  if (o.token) args.push('-H', `Authorization: Bearer ${o.token}`);
  if (o.mode) args.push('-s', POST_LUA);
  const env = {
    BENCH_MODE: o.mode ?? '',
    BENCH_PREFIX: o.users.prefix,
    BENCH_PASSWORD: o.users.password,
    BENCH_USERS: `${o.users.count}`,
    // A run number of its own (1–255): the addresses of one run are never an earlier run's, known to the server.
    BENCH_FORWARD: o.forwarded ? `${(forwardedRuns++ % 255) + 1}` : '',
  };
  const child = spawnProcess('wrk', ['wrk', ...args, url], { env });
  const kill = setTimeout(() => child.proc.kill('SIGKILL'), (o.secs + WRK_TIMEOUT_S + 10) * 1000); // bounded runtime
  const code = await child.finished;
  clearTimeout(kill);
  if (code !== 0) {
    throw new Error(`wrk on ${url} exited with ${code ?? child.proc.signalCode}: ${child.stderr.join('\n')}`);
  }
  const stdout = child.stdout.join('\n');
  return parseWrk(stdout);
}
