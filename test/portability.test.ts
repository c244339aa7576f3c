import { describe, expect, test } from 'bun:test';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const ROOT = join(import.meta.dir, '..');
// The runtime-independent core: it must run unchanged on Bun, Node, Deno and Workers.
const PORTABLE = [
  'src/app.ts',
  'src/app-env.ts',
  'src/openapi.ts',
  'src/config.ts',
  'src/deps.ts',
  'src/routes/**/*.ts',
  'src/services/**/*.ts',
  'src/middleware/**/*.ts',
  'src/lib/**/*.ts',
  'src/schemas/**/*.ts',
  'src/rate-limit/**/*.ts',
  'src/mail/{templates,sender}.ts',
  'src/docs/assets.ts',
  'src/hashing/{bcrypt,hasher,inline}.ts',
  'src/db/{schema,database,errors,rows,migration-status}.ts',
];

const FORBIDDEN: [what: string, pattern: RegExp][] = [
  ['Bun.', /\bBun\./],
  ['Deno.', /\bDeno\./],
  ['process.env', /\bprocess\.env\b/],
  ['node:fs', /(?:from|import|require)\s*\(?\s*['"](?:node:)?fs(?:\/promises)?['"]/],
  ['bun', /(?:from|import|require)\s*\(?\s*['"]bun(?::[\w/]+)?['"]/],
];

/**
 * The source with comments blanked out (strings and template literals kept), so a comment that
 * mentions `Bun.password` is not a reference but `const x = Bun.file(...)` is.
 */
function stripComments(source: string): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] as string;
    const next = source[i + 1];
    if (quote) {
      out += ch;
      if (ch === '\\') out += source[++i] ?? '';
      else if (ch === quote) quote = null;
    } else if (ch === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
      out += '\n';
    } else if (ch === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      i = end === -1 ? source.length : end + 1;
      out += ' ';
    } else {
      if (ch === '"' || ch === "'" || ch === '`') quote = ch;
      out += ch;
    }
  }
  return out;
}

function violations(source: string): string[] {
  const code = stripComments(source);
  return FORBIDDEN.filter(([, pattern]) => pattern.test(code)).map(([what]) => what);
}

async function portableFiles(): Promise<string[]> {
  const files = new Set<string>();
  for (const pattern of PORTABLE) {
    for await (const file of new Bun.Glob(pattern).scan({ cwd: ROOT })) files.add(file);
  }
  return [...files].sort();
}

describe('portability of the core', () => {
  test('the checker flags each forbidden reference in code', () => {
    expect(violations('const f = Bun.file("x");')).toEqual(['Bun.']);
    expect(violations('const e = Deno.env.get("X");')).toEqual(['Deno.']);
    expect(violations('const p = process.env.PORT;')).toEqual(['process.env']);
    expect(violations("import { readFile } from 'node:fs/promises';")).toEqual(['node:fs']);
    expect(violations("import { readFileSync } from 'fs';")).toEqual(['node:fs']);
    expect(violations("const fs = await import('node:fs');")).toEqual(['node:fs']);
    expect(violations("import { $ } from 'bun';")).toEqual(['bun']);
  });

  test('the checker ignores mentions in comments', () => {
    expect(violations('// Bun uses Bun.password\n/** process.env or Deno.env */\nconst x = 1;')).toEqual([]);
  });

  test('finds the core files', async () => {
    const files = await portableFiles();
    expect(files).toContain('src/app.ts');
    expect(files).toContain('src/middleware/auth.ts');
    expect(files.length).toBeGreaterThanOrEqual(15);
  });

  test('no core file references Bun., Deno., process.env, node:fs or bun', async () => {
    const found: string[] = [];
    for (const file of await portableFiles()) {
      const bad = violations(await readFile(join(ROOT, file), 'utf8'));
      if (bad.length > 0) found.push(`${file}: ${bad.join(', ')}`);
    }
    expect(found).toEqual([]);
  });
});
