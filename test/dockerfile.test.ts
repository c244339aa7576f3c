/**
 * No Docker engine runs in CI, so this replays the Dockerfile's build steps outside Docker: each stage in
 * its own directory, COPY as copies (--from a stage too), the `bun install` and `mkdir` RUN steps, the
 * ENV of the final stage. Then it starts the image's CMD and runs its HEALTHCHECK. A file the runtime
 * stage forgets to copy, or a dependency the production install leaves out, fails here.
 */
import { afterAll, expect, test } from 'bun:test';
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, runProcess, spawnProcess, waitUntilServing } from '../scripts/lib/processes';
import { TEST_SECRET_KEY, testDatabaseUrl } from './helpers';
import { PROJECT_ROOT, SERVER_TEST_TIMEOUT_MS, START_TIMEOUT_MS, stopAll } from './server-process';

const root = mkdtempSync(join(tmpdir(), 'hpa-dockerfile-'));
afterAll(async () => {
  await stopAll();
  // The stages hold a production node_modules: tens of thousands of files, seconds to delete on a busy disk.
  await rm(root, { recursive: true, force: true });
}, SERVER_TEST_TIMEOUT_MS);

interface Stage {
  dir: string;
  workdir: string;
  env: Record<string, string>;
  cmd?: string[];
  healthcheck?: string[];
}

/** Instructions of the Dockerfile, continuation lines joined, comments dropped. */
function instructions(text: string): [string, string][] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return [keyword.toUpperCase(), rest.join(' ')];
    });
}

function build(): Stage {
  const stages = new Map<string, Stage>();
  let stage: Stage | undefined;
  const inStage = (s: Stage, path: string) => join(s.dir, path.startsWith('/') ? path : join(s.workdir, path));
  for (const [keyword, args] of instructions(readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8'))) {
    if (keyword === 'FROM') {
      const name = args.split(/\s+AS\s+/i)[1] ?? String(stages.size);
      stage = { dir: join(root, name), workdir: '/', env: {} };
      stages.set(name, stage);
      continue;
    }
    if (!stage) continue; // ARG before the first FROM
    if (keyword === 'WORKDIR') {
      stage.workdir = args;
      mkdirSync(inStage(stage, args), { recursive: true });
    } else if (keyword === 'ENV') {
      for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[key as string] = value as string;
    } else if (keyword === 'COPY') {
      const from = /--from=(\S+)/.exec(args)?.[1];
      const paths = args.replace(/--\S+/g, '').trim().split(/\s+/);
      const dest = paths.pop() as string;
      const source = from ? stages.get(from) : undefined;
      for (const path of paths) {
        const src = source ? inStage(source, path) : join(PROJECT_ROOT, path);
        const target = dest.endsWith('/')
          ? join(inStage(stage, dest), path.split('/').pop() as string)
          : inStage(stage, dest);
        cpSync(src, target, { recursive: true });
      }
    } else if (keyword === 'RUN') {
      for (const command of args.split('&&').map((c) => c.trim())) {
        if (command.startsWith('bun ')) {
          const result = Bun.spawnSync(command.split(/\s+/), {
            cwd: inStage(stage, '.'),
            stdout: 'pipe',
            stderr: 'pipe',
          });
          if (result.exitCode !== 0) throw new Error(`RUN ${command} failed: ${result.stderr.toString()}`);
        } else if (command.startsWith('mkdir -p ')) {
          mkdirSync(inStage(stage, command.slice('mkdir -p '.length)), { recursive: true });
        } // chown needs root and the image's `bun` user: left to the real build
      }
    } else if (keyword === 'CMD') {
      stage.cmd = JSON.parse(args);
    } else if (keyword === 'HEALTHCHECK') {
      stage.healthcheck = JSON.parse(args.slice(args.indexOf('CMD') + 3));
    }
  }
  if (!stage) throw new Error('Dockerfile has no stage');
  return stage;
}

test(
  "the image's build steps produce a service that starts, passes its HEALTHCHECK and stops on SIGTERM",
  async () => {
    const image = build();
    expect(image.cmd).toBeDefined();
    expect(image.healthcheck).toBeDefined();
    const cwd = join(image.dir, image.workdir);
    const databaseUrl = await testDatabaseUrl();
    const port = freePort();
    const env = {
      ...image.env,
      PGLITE_DIR: join(cwd, 'data'),
      PORT: String(port),
      HOST: '127.0.0.1',
      SECRET_KEY: TEST_SECRET_KEY,
      LOG_LEVEL: 'warn',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    };
    expect(image.env.NODE_ENV).toBe('production');
    const server = spawnProcess('the image', image.cmd as string[], { cwd, env });
    let stopped: Promise<number | null>;
    try {
      await waitUntilServing(server, { url: `http://127.0.0.1:${port}` }, START_TIMEOUT_MS);
      const check = await runProcess(image.healthcheck as string[], { cwd, env });
      expect(check.code).toBe(0);
      const docs = await fetch(`http://127.0.0.1:${port}/vendor/swagger-ui-dist/swagger-ui-bundle.js`);
      expect(docs.status).toBe(200); // the docs assets are in the production dependencies
    } finally {
      stopped = server.stop();
    }
    expect(await stopped).toBe(0);
    // The operator CLI runs in the image too (`docker compose exec app bun run cli …`): all it imports was copied.
    const cli = await runProcess(['bun', 'scripts/cli.ts', 'mail', 'status'], { cwd, env });
    expect(cli.stderr).toBe('');
    expect(cli.stdout).toContain('waiting');
  },
  // Replaying the build runs a production `bun install` into a fresh directory before the server starts.
  SERVER_TEST_TIMEOUT_MS * 2,
);
