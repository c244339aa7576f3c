/**
 * The README as a newcomer uses it: its curl examples, pasted in order into bash against a real server (a
 * new PGlite directory, so the first admin is created the way the README says, while the service runs);
 * its links resolve inside the repository; its copy of the contract is current.
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand, TEST_BASE_URL } from './helpers';
import { SERVER_TEST_TIMEOUT_MS, startServer } from './server-process';

const ROOT = join(import.meta.dir, '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The text of a `## ` section, heading included. */
function section(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no section "${heading}"`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

const shellBlocks = (text: string) => [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] as string);

describe('README.md', () => {
  test('every relative link resolves to a file of the repository', () => {
    const links = [...readme.matchAll(/\]\((?!https?:|#|mailto:)([^)#\s]+)/g)].map((match) => match[1] as string);
    expect(links).toContain('docs/API.md');
    expect(links.filter((link) => !existsSync(join(ROOT, link)))).toEqual([]);
  });

  const shared = join(ROOT, '..', 'shared', 'API.md');
  test.skipIf(!existsSync(shared))('docs/API.md is the shared contract (cp ../shared/API.md, keeping its note)', () => {
    const copy = readFileSync(join(ROOT, 'docs/API.md'), 'utf8');
    expect(copy.slice(copy.indexOf('-->\n\n') + '-->\n\n'.length)).toBe(readFileSync(shared, 'utf8'));
  });

  // A server process of its own, on a new PGlite directory: the examples create `ada` and the first admin.
  test.skipIf(TEST_BASE_URL !== undefined)(
    'the curl examples run in order as pasted, every request succeeding',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hpa-readme-'));
      const server = await startServer({ PGLITE_DIR: dir });
      try {
        const host = server.url.replace(/^http:\/\//, '');
        // As pasted, except: the server's own port; curl fails on an HTTP error (so a failed step fails the
        // test); no browser is opened.
        const script = shellBlocks(section('curl examples'))
          .join('\n')
          .replaceAll('localhost:8000', host)
          .replaceAll('curl -s ', 'curl -sSf ')
          .replace(/^xdg-open .*$/m, 'true');
        expect(script).toContain('create-admin');
        const { stdout, stderr, code } = await runCommand(['bash', '-euo', 'pipefail', '-c', script], {
          cwd: ROOT,
          env: { PGLITE_DIR: dir, BCRYPT_COST: '4' },
        });
        // `bun run` echoes the script it runs (`$ bun scripts/cli.ts …`); nothing else may reach stderr.
        const complaints = stderr.split('\n').filter((line) => line && !line.startsWith('$ '));
        expect({ code, complaints }).toEqual({ code: 0, complaints: [] });
        expect(stdout).toContain('"last_login_time":null');
        expect(stdout).toContain('Welcome, ada@example.com!');
        expect(stdout).toContain('created admin root@example.com');
        expect(stdout).toContain('"user_disabled"');
        // DELETE of a session, the password change, the logout, the DELETE of a user.
        expect(stdout.match(/204\n/g)).toHaveLength(4); // a body before it has no newline of its own
      } finally {
        server.proc.kill('SIGTERM');
        await server.proc.exited;
        rmSync(dir, { recursive: true, force: true });
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
