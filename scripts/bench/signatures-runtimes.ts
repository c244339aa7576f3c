/**
 * `bun scripts/bench/signatures-runtimes.ts`: the signature micro-bench on Bun, Node, Deno and workerd, in
 * one run, one after another (never at once: they would share the two cores).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../lib/processes';
import { ALGORITHMS } from './signatures';

const ROOT = resolve(import.meta.dir, '../..');
const run = (cmd: string[]) => {
  const result = Bun.spawnSync(cmd, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  if (result.exitCode !== 0) throw new Error(`${cmd.join(' ')}: ${result.stderr.toString()}`);
  return result.stdout.toString().trim();
};

console.log(run(['bun', 'scripts/bench/signatures.ts']));
const built = join(mkdtempSync(join(tmpdir(), 'hpa-sig-')), 'signatures.mjs');
run(['bun', 'build', 'scripts/bench/signatures.ts', '--target=node', '--outfile', built]);
console.log(run(['node', built]));
console.log(run(['node_modules/deno/deno', 'run', '--allow-env', '--allow-read', 'scripts/bench/signatures.ts']));
rmSync(resolve(built, '..'), { recursive: true, force: true });

// workerd: time requests from outside, each doing N operations, less a request doing none.
const dir = mkdtempSync(join(tmpdir(), 'hpa-sig-worker-'));
const config = join(dir, 'wrangler.toml');
writeFileSync(
  config,
  `name = "signatures"\nmain = "${join(ROOT, 'scripts/bench/signatures-worker.ts')}"\ncompatibility_date = "2026-04-01"\n`,
);
const port = freePort();
const wrangler = Bun.spawn(
  [
    'node_modules/.bin/wrangler',
    'dev',
    '--local',
    '--config',
    config,
    '--port',
    String(port),
    '--ip',
    '127.0.0.1',
    '--show-interactive-dev-session=false',
  ],
  {
    cwd: ROOT,
    stdout: 'ignore',
    stderr: 'ignore',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    detached: true,
  },
);
try {
  const base = `http://127.0.0.1:${port}/run`;
  for (let i = 0; i < 300; i++) {
    if (
      await fetch(`${base}?alg=HS256&n=0`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await Bun.sleep(200);
  }
  const N = 2000;
  const elapsed = async (query: string) => {
    const times: number[] = [];
    for (let round = 0; round < 5; round++) {
      const started = performance.now();
      await (await fetch(`${base}?${query}`)).text();
      times.push(performance.now() - started);
    }
    return times.sort((a, b) => a - b)[2] as number;
  };
  for (const alg of ALGORITHMS) {
    const baseline = await elapsed(`alg=${alg}&op=sign&n=0`);
    const sign = ((await elapsed(`alg=${alg}&op=sign&n=${N}`)) - baseline) * (1000 / N);
    const verify = ((await elapsed(`alg=${alg}&op=verify&n=${N}`)) - baseline) * (1000 / N);
    console.log(`workerd\t${alg}\tsign ${sign.toFixed(1)} µs\tverify ${verify.toFixed(1)} µs`);
  }
} finally {
  try {
    process.kill(-wrangler.pid, 'SIGTERM');
  } catch {}
  await wrangler.exited;
  rmSync(dir, { recursive: true, force: true });
}
