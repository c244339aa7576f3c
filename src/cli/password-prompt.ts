import { DescribedError } from '../lib/logger';

/** A password for the CLI: typed at a hidden prompt, or the first line of piped stdin (never argv, which `ps` shows). */
export async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const text = await new Response(Bun.stdin.stream()).text();
    return text.split(/\r?\n/)[0] ?? '';
  }
  process.stdout.write('Password (not shown): ');
  process.stdin.setRawMode(true);
  let password = '';
  try {
    for await (const chunk of process.stdin) {
      for (const char of String(chunk)) {
        if (char === '\r' || char === '\n') return password;
        if (char === '\u0003') throw new DescribedError('cancelled');
        password = char === '\u007f' ? password.slice(0, -1) : password + char;
      }
    }
    return password;
  } finally {
    process.stdin.setRawMode(false);
    process.stdout.write('\n');
  }
}
