import { expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { createBunHasher } from '../src/hashing/bun';
import { createHashPool } from '../src/hashing/pool';

const SCHED_IDLE = 5; // linux/sched.h

const COST = 4;
// These tests are about results, not scheduling: their pools run at normal priority, since on a busy machine
// idle-priority workers get the CPU only when nothing else wants it. The priority has its own test below.
const NORMAL_PRIORITY = { lowPriority: false };

test('hash round-trips and produces a $2b$ bcrypt string at the configured cost', async () => {
  const hasher = createBunHasher({ cost: COST, threads: 1, ...NORMAL_PRIORITY });
  try {
    const hash = await hasher.hash('correct horse battery staple');
    expect(hash).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);
    expect(await hasher.verify('correct horse battery staple', hash)).toBe(true);
    expect(await hasher.hash('correct horse battery staple')).not.toBe(hash);
  } finally {
    hasher.close();
  }
});

test('wrong password resolves false', async () => {
  const hasher = createBunHasher({ cost: COST, threads: 1, ...NORMAL_PRIORITY });
  try {
    const hash = await hasher.hash('s3cret');
    expect(await hasher.verify('s3creT', hash)).toBe(false);
    expect(await hasher.verify('', hash)).toBe(false);
  } finally {
    hasher.close();
  }
});

test('verifies bcryptjs-style $2a$ and passlib $2b$ hashes', async () => {
  const hasher = createBunHasher({ cost: COST, ...NORMAL_PRIORITY });
  try {
    // $2a$ and $2b$ compute the same hash for every password bcrypt reads (<= 72 bytes),
    // so relabelling yields exactly what bcryptjs would have produced.
    const twoA = Bun.password.hashSync('interop', { algorithm: 'bcrypt', cost: COST }).replace(/^\$2b\$/, '$2a$');
    expect(twoA.startsWith('$2a$04$')).toBe(true);
    expect(await hasher.verify('interop', twoA)).toBe(true);
    expect(await hasher.verify('interoP', twoA)).toBe(false);

    // John the Ripper vector, part of passlib's bcrypt known-correct hashes.
    const jtr = '$2a$05$c92SVSfjeiCD6F2nAD6y0uBpJDjdRkt0EgeC4/31Rf2LUZbDRDE.O';
    expect(await hasher.verify('U*U*U*U*', jtr)).toBe(true);

    // passlib.hash.bcrypt.hash("password", rounds=12, ident="2b") (zitadel/passwap test values).
    const passlib = '$2b$12$bIRGj4QPPoSUMWsJE.4Pk.T1qTpDWz7HhMnuiQhGzGinKPsx/HQdq';
    expect(await hasher.verify('password', passlib)).toBe(true);
    expect(await hasher.verify('Password', passlib)).toBe(false);
  } finally {
    hasher.close();
  }
});

test('malformed or foreign hashes resolve false instead of throwing', async () => {
  const hasher = createBunHasher({ cost: COST, threads: 1, ...NORMAL_PRIORITY });
  try {
    const good = await hasher.hash('pw');
    const malformed = [
      '',
      'garbage',
      '$2b$04$short',
      good.slice(0, -1),
      `${good}x`,
      good.replace('$04$', '$99$'),
      good.replace(/.$/, '!'),
      '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG',
      null as unknown as string,
    ];
    for (const hash of malformed) {
      expect(await hasher.verify('pw', hash)).toBe(false);
    }
    // The pool is still healthy afterwards.
    expect(await hasher.verify('pw', good)).toBe(true);
  } finally {
    hasher.close();
  }
});

test('many concurrent jobs all resolve to the right answer', async () => {
  const hasher = createBunHasher({ cost: COST, threads: 2, ...NORMAL_PRIORITY });
  try {
    const passwords = Array.from({ length: 60 }, (_, i) => `pw-${i}-${'é'.repeat(i % 5)}`);
    const hashes = await Promise.all(passwords.map((pw) => hasher.hash(pw)));
    expect(new Set(hashes).size).toBe(passwords.length);
    const results = await Promise.all(
      passwords.flatMap((pw, i) => [
        hasher.verify(pw, hashes[i] as string),
        hasher.verify(pw, hashes[(i + 1) % hashes.length] as string),
      ]),
    );
    expect(results).toEqual(passwords.flatMap(() => [true, false]));
  } finally {
    hasher.close();
  }
});

test('a worker that dies rejects its in-flight job and is replaced', async () => {
  const crashing = new URL('./fixtures/crashing-hash-worker.ts', import.meta.url);
  const hasher = createHashPool(crashing, { cost: COST, threads: 1, ...NORMAL_PRIORITY });
  try {
    const inFlight = hasher.hash('crash');
    const queued = hasher.hash('survives');
    await expect(inFlight).rejects.toThrow(/exited unexpectedly/);
    expect(await hasher.verify('survives', await queued)).toBe(true); // the replacement worker serves the queue
  } finally {
    await hasher.close();
  }
});

test('close() rejects pending work and refuses new work', async () => {
  const hasher = createBunHasher({ cost: 12, threads: 1 });
  const pending = Promise.allSettled([hasher.hash('a'), hasher.hash('b')]);
  hasher.close();
  for (const result of await pending) {
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/closed/);
  }
  await expect(hasher.hash('c')).rejects.toThrow(/closed/);
  await expect(hasher.verify('c', '$2b$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234')).rejects.toThrow(
    /closed/,
  );
});

test('rejects an invalid cost or thread count up front', () => {
  expect(() => createBunHasher({ cost: 3 })).toThrow(RangeError);
  expect(() => createBunHasher({ cost: 32 })).toThrow(RangeError);
  expect(() => createBunHasher({ cost: 10.5 })).toThrow(RangeError);
  expect(() => createBunHasher({ cost: COST, threads: 0 })).toThrow(RangeError);
});

async function runScript(source: string): Promise<{ code: number; stdout: string }> {
  const modulePath = new URL('../src/hashing/bun.ts', import.meta.url).pathname;
  const proc = Bun.spawn([process.execPath, '-e', source.replaceAll('MODULE', JSON.stringify(modulePath))], {
    stdout: 'pipe',
    stderr: 'inherit',
  });
  // A hung child would otherwise hang the suite; kill it well past any plausible runtime.
  const timer = setTimeout(() => proc.kill(), 15_000);
  const [code, stdout] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
  clearTimeout(timer);
  return { code, stdout };
}

test('close() lets the process exit', async () => {
  const { code, stdout } = await runScript(`
    const { createBunHasher } = await import(MODULE);
    const hasher = createBunHasher({ cost: 4, threads: 2, lowPriority: false });
    const hash = await hasher.hash('x');
    console.log(await hasher.verify('x', hash));
    hasher.close();
  `);
  expect(code).toBe(0);
  expect(stdout.trim()).toBe('true');
});

test('an idle pool does not keep the process alive, but pending work does', async () => {
  const { code, stdout } = await runScript(`
    const { createBunHasher } = await import(MODULE);
    const hasher = createBunHasher({ cost: 4, threads: 2, lowPriority: false });
    hasher.hash('late').then((hash) => console.log(hash.slice(0, 7)));
  `);
  expect(code).toBe(0);
  expect(stdout.trim()).toBe('$2b$04$');
});

// The rule changed with issue 10: at idle priority alone, a flood of cheap reads starved every login.
test('runs one worker thread at nice 5 and the others at idle priority, leaving the main thread alone (Linux)', async () => {
  const schedOf = (task: string) => {
    // /proc/<pid>/task/<tid>/stat: the command may contain spaces, so count fields after its closing paren.
    const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { nice: Number(fields[16]), policy: Number(fields[38]) }; // fields 19 and 41
  };
  const before = new Set(readdirSync('/proc/self/task'));
  const hasher = createBunHasher({ cost: 4, threads: 3 });
  try {
    await Promise.all([hasher.hash('warm up one'), hasher.hash('warm up two'), hasher.hash('warm up three')]);
    const workers = readdirSync('/proc/self/task')
      .filter((task) => !before.has(task))
      .map(schedOf);
    expect(workers.filter((w) => w.policy === SCHED_IDLE).length).toBeGreaterThanOrEqual(2);
    expect(workers.filter((w) => w.policy === 0 && w.nice === 5).length).toBeGreaterThanOrEqual(1);
    expect(schedOf(String(process.pid))).toEqual({ nice: 0, policy: 0 }); // requests keep normal priority
  } finally {
    hasher.close();
  }
});
