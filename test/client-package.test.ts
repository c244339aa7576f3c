/**
 * `@hono-postgres-auth/client` as a consumer gets it: built, packed, installed alone into an empty project
 * (whose node_modules holds nothing but the package and `hono`), type-checked with `strict`, and the README's
 * snippet run against a real server.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClient, CLIENT_DIR } from '../scripts/build-client';
import { runCommand, TEST_BASE_URL, testDatabaseUrl } from './helpers';
import { SERVER_TEST_TIMEOUT_MS, startServer } from './server-process';

const ROOT = join(import.meta.dir, '..');
const BUILD_TIMEOUT_MS = 120_000;
const consumer = mkdtempSync(join(tmpdir(), 'hpa-client-consumer-'));
const installed = join(consumer, 'node_modules/@hono-postgres-auth/client');
let tarballFiles: string[] = [];

/** The README's snippet, exactly as a reader copies it. */
function readmeSnippet(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /<!-- client-snippet -->\n```ts\n([\s\S]*?)```\n<!-- \/client-snippet -->/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no client snippet between <!-- client-snippet --> markers');
  return block;
}

const run = (cmd: string[], cwd: string) => runCommand(cmd, { cwd });

/** The consumer's type check: strict, and the package's own declarations checked too (no skipLibCheck). */
const typecheck = () => run([join(ROOT, 'node_modules/.bin/tsc'), '-p', consumer], consumer);

beforeAll(async () => {
  await buildClient();
  const pack = await run(['bun', 'pm', 'pack', '--destination', consumer, '--quiet'], CLIENT_DIR);
  if (pack.code !== 0) throw new Error(`bun pm pack failed: ${pack.stderr}`);
  const tarball = join(consumer, pack.stdout.trim().split('\n').at(-1)?.split('/').at(-1) as string);
  tarballFiles = (await run(['tar', '-tzf', tarball], consumer)).stdout.trim().split('\n').sort();
  mkdirSync(installed, { recursive: true });
  const untar = await run(['tar', '-xzf', tarball, '-C', installed, '--strip-components=1'], consumer);
  if (untar.code !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  // The package's one dependency, as an install would put it beside the package; nothing else is there.
  symlinkSync(join(ROOT, 'node_modules/hono'), join(consumer, 'node_modules/hono'));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022', 'DOM'],
        types: [],
        noEmit: true,
        skipLibCheck: false,
      },
      include: ['*.ts'],
    }),
  );
}, BUILD_TIMEOUT_MS);

afterAll(() => rmSync(consumer, { recursive: true, force: true }));

describe('@hono-postgres-auth/client', () => {
  test('the tarball holds the package.json and dist only, and depends on hono alone', () => {
    expect(tarballFiles).toEqual([
      'package/dist/app-type.d.ts',
      'package/dist/index.d.ts',
      'package/dist/index.js',
      'package/package.json',
    ]);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(Object.keys(manifest.dependencies)).toEqual(['hono']);
    expect(manifest.devDependencies).toBeUndefined();
    expect(readdirSync(join(consumer, 'node_modules')).sort()).toEqual(['@hono-postgres-auth', 'hono']);
  });

  test('its code and types import nothing but hono', () => {
    for (const file of ['index.js', 'index.d.ts', 'app-type.d.ts']) {
      const text = readFileSync(join(installed, 'dist', file), 'utf8');
      const specifiers = [...text.matchAll(/(?:from\s+|import\()\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
      expect(
        specifiers.filter((s) => !s.startsWith('hono') && !s.startsWith('./')),
        file,
      ).toEqual([]);
    }
  });

  test(
    "the README's snippet compiles with strict TypeScript",
    async () => {
      writeFileSync(join(consumer, 'readme.ts'), readmeSnippet());
      const { code, stdout } = await typecheck();
      expect({ code, stdout }).toEqual({ code: 0, stdout: '' });
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'the types are real: reading a body before narrowing on the status does not compile',
    async () => {
      const wrong = join(consumer, 'wrong.ts');
      writeFileSync(
        wrong,
        "import { createClient } from '@hono-postgres-auth/client';\n" +
          "const me = await createClient('http://localhost:8000').users.me.$get();\n" +
          'console.log((await me.json()).email);\n',
      );
      try {
        const { code, stdout } = await typecheck();
        expect(code).not.toBe(0);
        expect(stdout).toContain("Property 'email' does not exist");
      } finally {
        rmSync(wrong);
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  // A server process of its own (or the one under test).
  test(
    "the README's snippet runs against a real server",
    async () => {
      const databaseUrl = await testDatabaseUrl();
      const dir = mkdtempSync(join(tmpdir(), 'hpa-client-server-'));
      const server = TEST_BASE_URL
        ? undefined
        : await startServer(databaseUrl ? { DATABASE_URL: databaseUrl } : { PGLITE_DIR: dir });
      const url = TEST_BASE_URL ?? (server?.url as string);
      try {
        const email = `client-${process.pid}-${Date.now()}@example.com`;
        const script = readmeSnippet()
          .replace("'http://localhost:8000'", JSON.stringify(url))
          .replace('grace@example.com', email);
        writeFileSync(join(consumer, 'run.ts'), script);
        const { code, stdout, stderr } = await run(['bun', 'run.ts'], consumer);
        expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
        expect(stdout).toMatch(new RegExp(`^${email} user \\d{4}-\\d\\d-\\d\\dT`));
      } finally {
        server?.proc.kill('SIGTERM');
        await server?.proc.exited;
        rmSync(dir, { recursive: true, force: true });
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
