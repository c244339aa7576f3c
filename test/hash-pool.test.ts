/**
 * The hash pool's admission control (src/hashing/pool.ts), on real worker threads. The worker is the Bun
 * one, except that a password `slow:<ms> …` holds its thread that long first (test/fixtures/slow-hash-worker.ts),
 * and `expectedHashMs` fixes what the pool expects a hash to take until it has measured one: so which jobs are
 * admitted is decided by the figures the test gives, not by how fast this machine hashes today.
 */
import { afterEach, expect, test } from 'bun:test';
import { createHashPool, type HashPool, type HashPoolOptions } from '../src/hashing/pool';
import { AppError } from '../src/lib/problems';

const SLOW_WORKER = new URL('./fixtures/slow-hash-worker.ts', import.meta.url);
const pools: HashPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function slowPool(options: Partial<HashPoolOptions> = {}): HashPool {
  const pool = createHashPool(SLOW_WORKER, { cost: 4, threads: 1, expectedHashMs: 1, ...options });
  pools.push(pool);
  return pool;
}

/** What `promise` rejects with; fails the test if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

async function expectOverloaded(promise: Promise<unknown>): Promise<number> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe('overloaded');
  expect((error as AppError).status).toBe(503);
  const retryAfter = Number((error as AppError).options.headers?.['Retry-After']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  return retryAfter;
}

const inMs = (ms: number) => performance.now() + ms;

test('refuses at once, 503 overloaded, a job that cannot finish before its deadline, with the wait as Retry-After', async () => {
  const pool = slowPool({ expectedHashMs: 60_000 }); // a hash is expected to take a minute
  const retryAfter = await expectOverloaded(pool.hash('x', { deadline: inMs(10_000) }));
  // 60 s of work against the 8 s (80% of 10 s) the request has for it: room in about 52 s.
  expect(retryAfter).toBeGreaterThanOrEqual(50);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(pool.stats()).toMatchObject({ queued: 0, running: 0 });
  // A job with no deadline (the CLI's) waits its turn instead.
  expect(await pool.hash('x')).toStartWith('$2b$04$');
});

test('admits a job only if the work queued ahead of it, and its own, fit before its deadline', async () => {
  const pool = slowPool({ expectedHashMs: 400 });
  const ahead = Array.from({ length: 5 }, () => pool.hash('slow:20 ahead')); // 2 s expected, no deadline
  const tooSoon = pool.hash('x', { deadline: inMs(1_000) });
  const inTime = pool.hash('x', { deadline: inMs(60_000) });
  await expectOverloaded(tooSoon);
  await Promise.all([...ahead, inTime]);
});

test('counts a verify by the cost of the hash it checks', async () => {
  const pool = slowPool({ expectedHashMs: 1_000 }); // cost 4: 1 s expected, so a cost-8 hash 16 s
  const cost8 = Bun.password.hashSync('pw', { algorithm: 'bcrypt', cost: 8 });
  const cost4 = Bun.password.hashSync('pw', { algorithm: 'bcrypt', cost: 4 });
  await expectOverloaded(pool.verify('pw', cost8, { deadline: inMs(10_000) }));
  expect(await pool.verify('pw', cost4, { deadline: inMs(10_000) })).toBe(true);
});

test('drops a queued job whose signal aborts: its caller is rejected at once, and it never runs', async () => {
  const pool = slowPool();
  const first = pool.hash('slow:300 first');
  const controller = new AbortController();
  const second = pool.hash('slow:300 second', { signal: controller.signal });
  expect(pool.stats()).toMatchObject({ queued: 1, running: 1 });
  controller.abort(new Error('the client disconnected'));
  expect(String(await rejectionOf(second))).toContain('the client disconnected');
  expect(pool.stats().queued).toBe(0);
  await first;
  expect(pool.stats()).toMatchObject({ queued: 0, running: 0 }); // the worker found nothing left to run
});

test('rejects the caller of a running job as soon as its signal aborts, not when the hash ends', async () => {
  const pool = slowPool();
  const controller = new AbortController();
  const started = performance.now();
  const running = pool.hash('slow:3000 long', { signal: controller.signal });
  setTimeout(() => controller.abort(new Error('answered by the timeout')), 50);
  expect(String(await rejectionOf(running))).toContain('answered by the timeout');
  expect(performance.now() - started).toBeLessThan(2_000);
});

test('refuses a job whose signal is already aborted without queueing it', async () => {
  const pool = slowPool();
  const error = await rejectionOf(pool.hash('x', { signal: AbortSignal.abort(new Error('gone')) }));
  expect(String(error)).toContain('gone');
  expect(pool.stats()).toMatchObject({ queued: 0, running: 0 });
});

test('lets one owner hold only a small share of what fits before a deadline, and admits the others', async () => {
  // One worker, 50 ms per hash, 1 s deadlines: 20 jobs fit, and an owner may hold a tenth of that, or 2.
  const pool = slowPool({ expectedHashMs: 50 });
  const mine = ['slow:100 a', 'slow:100 b'].map((pw) =>
    pool.hash(pw, { deadline: inMs(1_000), owners: ['address:198.51.100.1'] }),
  );
  const third = pool.hash('x', { deadline: inMs(1_000), owners: ['address:198.51.100.1', 'account:a@example.com'] });
  const someoneElse = pool.hash('x', { deadline: inMs(1_000), owners: ['address:198.51.100.2'] });
  await expectOverloaded(third);
  await Promise.all([...mine, someoneElse]);
  // Their share is back once their jobs are done.
  await pool.hash('x', { deadline: inMs(1_000), owners: ['address:198.51.100.1'] });
});

test('serves preferred jobs before ordinary ones that were queued earlier', async () => {
  const pool = slowPool();
  const order: string[] = [];
  const track = (name: string, job: Promise<string>) => job.then(() => order.push(name));
  await Promise.all([
    track('running', pool.hash('slow:200 running')),
    track('ordinary 1', pool.hash('slow:10 one')),
    track('ordinary 2', pool.hash('slow:10 two')),
    track('preferred', pool.hash('slow:10 known', { preferred: true })),
  ]);
  expect(order).toEqual(['running', 'preferred', 'ordinary 1', 'ordinary 2']);
});

test('refuses, instead of running, a job whose deadline passed while it waited', async () => {
  const pool = slowPool(); // expects 1 ms a hash, so the job is admitted behind the slow one
  const first = pool.hash('slow:300 first');
  const late = pool.hash('slow:300 late', { deadline: inMs(100) });
  await expectOverloaded(late);
  await first;
  expect(pool.stats().running).toBe(0);
});

test('measures its hash time: the expectation follows the measured mean', async () => {
  const pool = slowPool({ expectedHashMs: 10_000 });
  for (let i = 0; i < 30; i++) await pool.hash('slow:50 x');
  const { meanHashMs } = pool.stats();
  expect(meanHashMs).toBeGreaterThan(40);
  expect(meanHashMs).toBeLessThan(200);
});
