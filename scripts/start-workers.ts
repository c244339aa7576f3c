/**
 * `bun run start:workers`: the Workers entry under `wrangler dev --local` (workerd, offline), configured
 * from the environment like `bun run start`: PORT, HOST, DATABASE_URL, SECRET_KEY and every other key of
 * src/config.ts. Values go to wrangler through a private env file (not argv, which `ps` shows), deleted
 * when wrangler exits. Without SECRET_KEY a random one is used for this run, with a warning.
 * Extra arguments are passed to wrangler.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CONFIG_KEYS } from '../src/config';
import { buildDocsAssets } from './build-docs-assets';

const ROOT = resolve(import.meta.dir, '..');

await buildDocsAssets();

const vars: Record<string, string> = {};
for (const key of CONFIG_KEYS) {
  const value = process.env[key];
  if (value !== undefined && value !== '') vars[key] = value;
}
if (!vars.SECRET_KEY) {
  console.warn('SECRET_KEY is not set: using a random key for this run, so tokens will not survive a restart');
  vars.SECRET_KEY = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString('base64');
}
const port = vars.PORT ?? '8000';
const host = vars.HOST ?? '0.0.0.0';

const dir = mkdtempSync(join(tmpdir(), 'hpa-workers-'));
const envFile = join(dir, 'dev.vars');
// One KEY="value" per line, JSON-quoted: dotenv parsing keeps such a value exactly.
writeFileSync(
  envFile,
  Object.entries(vars)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join('\n'),
  { mode: 0o600 },
);

const wrangler = Bun.spawn(
  [
    join(ROOT, 'node_modules/.bin/wrangler'),
    'dev',
    '--local',
    '--port',
    port,
    '--ip',
    host,
    '--env-file',
    envFile,
    '--show-interactive-dev-session=false',
    ...process.argv.slice(2),
  ],
  {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: ['inherit', 'inherit', 'inherit'],
  },
);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => wrangler.kill(signal));
const code = await wrangler.exited;
rmSync(dir, { recursive: true, force: true });
process.exit(code);
