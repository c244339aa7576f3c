/**
 * The machine the benchmark runs on: its prerequisites (wrk, a running PostgreSQL), how busy it is, and
 * what a server process uses of it (CPU time, memory), read from /proc.
 */
import { readdirSync, readFileSync } from 'node:fs';
import postgres from 'postgres';
import { log } from './log';

export const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Runs a command with its output on this terminal; throws unless it exits 0. */
export function sh(cmd: string[]): void {
  log(`$ ${cmd.join(' ')}`);
  const r = Bun.spawnSync(cmd, { stdout: 'inherit', stderr: 'inherit' });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} exited with ${r.exitCode}`);
}

async function postgresUp(): Promise<boolean> {
  const sql = postgres(ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** wrk (installed with apt-get when missing) and PostgreSQL on 127.0.0.1:5432 (started when it is not). */
export async function ensurePrerequisites(): Promise<void> {
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

/** Resident memory of every process in the group (wrangler runs workerd, and both count), in MB. */
export function rssOfGroup(pgid: number): number {
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
export async function waitIdle(pid: number, maxMs = 60_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const before = cpuSeconds(pid);
    await Bun.sleep(500);
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
  await Bun.sleep(1000);
  const b = sample();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}

/** Other processes on the box skew every figure: give them up to a minute to finish, then record what remains. */
export async function waitForQuietMachine(): Promise<number> {
  let busy = await machineBusy();
  for (let i = 0; i < 30 && busy > 0.25; i++) {
    if (i === 0)
      log(`the machine is ${(busy * 100).toFixed(0)}% busy with other work; waiting up to 60 s for it to calm down`);
    busy = await machineBusy();
  }
  return busy;
}

export function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
