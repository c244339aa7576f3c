/**
 * bcrypt on a private pool of worker threads (node:worker_threads, which Bun, Node and Deno all run), with
 * admission control.
 *
 * Why threads of our own: bcrypt at cost 12 keeps a thread busy for ~250 ms. On the main thread every login
 * would stall every other request that long; and in Bun, `Bun.password`'s async API runs on the same native
 * FIFO pool as WebCrypto, so a burst of logins would queue every `crypto.subtle` HMAC (the bearer check)
 * behind the hashes. Here each worker runs one synchronous hash at a time and the queue lives in JS.
 *
 * Why admission control: the pool does a few hashes per second per core, and a flood asks for hundreds.
 * Queued without bound, every job waits behind the whole flood, finishes after its request was answered
 * 503 by the timeout (or its client left), and the next clients wait behind work nobody receives. So:
 * - a job is admitted only if the work queued ahead of it, at the speed the workers have shown (a moving
 *   average of measured hash times per worker: workers at different priorities get different CPU), plus its
 *   own, ends within 80% of its request's remaining time;
 *   otherwise it is refused at once with 503 `overloaded` and a `Retry-After` of the seconds until the
 *   queue is expected to have room for it;
 * - one owner (a client address, an account) may hold only a small share of what fits before a deadline,
 *   so a flood from one address or at one account leaves room for everyone else;
 * - a job whose request was answered, or whose client disconnected (its AbortSignal), is dropped before it
 *   starts, and its caller is rejected at once even if it is already running;
 * - preferred jobs (a client that has logged in to this account from this address before) are served
 *   before the others, so a flood of strangers cannot keep a known user out;
 * - a job still queued when its deadline passes is refused instead of run.
 *
 * The worker file does the hashing (Bun.password in Bun, bcryptjs elsewhere); this module owns the queue,
 * the threads, and their failures. Hashes are `$2b$`; `$2a$`/`$2b$`/`$2y$` verify, interchangeably between
 * runtimes and with passlib for passwords up to 72 UTF-8 bytes, which the API enforces.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AppError } from '../lib/problems';
import { bcryptCost, isBcryptHash, MAX_BCRYPT_COST, MIN_BCRYPT_COST } from './bcrypt';
import type { HashOptions, PasswordHasher } from './hasher';

export interface HashPoolOptions {
  /** bcrypt cost (log2 rounds), 4–31. */
  cost: number;
  /** Worker threads; defaults to the number of cores, since bcrypt is CPU-bound. */
  threads?: number;
  /**
   * Lower the workers' CPU priority (default true; best effort, ignored where the OS refuses): the first
   * worker runs at nice 5, the others at idle priority (see GUARANTEED_NICE).
   */
  lowPriority?: boolean;
  /**
   * What one hash at `cost` is expected to take, in ms, until the pool has measured its own; by default
   * scaled from this project's 2-core VM (cost 12 ≈ 270 ms). The measurement takes over within a few jobs.
   */
  expectedHashMs?: number;
}

/** What a pool's worker receives as `workerData`, and then one job at a time. */
export interface HashWorkerData {
  /** `idle` (SCHED_IDLE where possible, else nice 19), or a nice value. */
  priority: 'idle' | number;
}
export type HashJob = { op: 'hash'; password: string; cost: number } | { op: 'verify'; password: string; hash: string };
export type HashReply = { ok: true; value: string | boolean } | { ok: false; error: string };

export interface HashPoolStats {
  /** Jobs waiting for a worker. */
  queued: number;
  /** Jobs a worker is running (including ones whose caller has gone). */
  running: number;
  /** The measured mean time of one hash at the pool's cost, in ms. */
  meanHashMs: number;
}

export type HashPool = PasswordHasher & { close(): Promise<void>; stats(): HashPoolStats };

const SEED_MS_PER_ROUND = 270 / 2 ** 12; // cost 12 ≈ 270 ms per hash on the 2-core VM (STACK-NOTES.md)
const EWMA_WEIGHT = 0.2; // each new measurement moves the mean a fifth of the way: a few jobs follow a load change
const SHARE_OF_CAPACITY = 1 / 10; // one owner may hold a tenth of the jobs that fit before a deadline…
const MIN_SHARE = 2; // …but at least this many, so a slow hash never leaves a client none
// A job must fit in 80% of its request's remaining time: the measured mean lags when a flood starts taking the
// CPU (a burst of the bench's floods saw the last 20 of 300 admitted logins time out with a 10% margin), and the
// request still has its database work to do after the hash.
const SLACK = 0.2;
/**
 * CPU fairness both ways. At idle priority (SCHED_IDLE, weight 3 against a normal thread's 1024) hashing got
 * no CPU at all while cheap reads kept the cores busy: logins fell from ~7/s to ~2/s and then to 503s. At
 * normal priority every hash competes evenly with the thread serving requests, and reads' p99 grew 2.7–4.5×
 * during a login flood (scripts/bench/floods.ts). So one worker runs at nice 5 (weight 335: at least about a
 * quarter of a core against a saturating normal thread, which keeps about three quarters), a guaranteed share
 * for logins; the others run at idle priority and take only the CPU nobody else wants.
 */
const GUARANTEED_NICE = 5;

type State = 'queued' | 'running' | 'done';

interface Pending {
  job: HashJob;
  /** The job's work in units of one hash at the pool's cost (a verify of a cost-13 hash in a cost-12 pool: 2). */
  weight: number;
  deadline: number;
  owners: readonly string[];
  state: State;
  /** Resolved or rejected: its caller has its answer (or has gone). */
  answered: boolean;
  startedAt: number;
  resolve(value: string | boolean): void;
  reject(reason: unknown): void;
  detach(): void;
}

/** A FIFO without Array#shift (O(n); a flood queues thousands). Dropped jobs stay in place and are skipped. */
class Lane {
  private items: (Pending | undefined)[] = [];
  private head = 0;
  /** Live jobs, and their work in units (Pending.weight). */
  size = 0;
  units = 0;

  push(pending: Pending): void {
    this.items.push(pending);
    this.size++;
    this.units += pending.weight;
  }

  /** Takes a job out of the count without removing it from the array; shift() skips it later. */
  forget(pending: Pending): void {
    this.size--;
    this.units -= pending.weight;
  }

  shift(): Pending | undefined {
    while (this.head < this.items.length) {
      const pending = this.items[this.head];
      this.items[this.head++] = undefined;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (pending?.state === 'queued') {
        this.forget(pending);
        return pending;
      }
    }
    return undefined;
  }

  drain(): Pending[] {
    const live = this.items.filter((pending): pending is Pending => pending?.state === 'queued');
    this.items = [];
    this.head = 0;
    this.size = 0;
    this.units = 0;
    return live;
  }
}

interface Slot {
  worker: Worker;
  current: Pending | null;
  /** This worker's measured ms per unit of work: workers at different priorities get different shares of CPU. */
  meanMs: number;
}

const overloaded = (waitMs: number, detail?: string) =>
  new AppError('overloaded', {
    ...(detail ? { detail } : {}),
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
  });

export function createHashPool(workerUrl: URL, options: HashPoolOptions): HashPool {
  const { cost, lowPriority = true } = options;
  if (!Number.isInteger(cost) || cost < MIN_BCRYPT_COST || cost > MAX_BCRYPT_COST) {
    throw new RangeError(`bcrypt cost must be an integer ${MIN_BCRYPT_COST}–${MAX_BCRYPT_COST}, got ${cost}`);
  }
  const threads = options.threads ?? (availableParallelism() || 1);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }

  const expectedMs = options.expectedHashMs ?? SEED_MS_PER_ROUND * 2 ** cost;
  const preferred = new Lane();
  const others = new Lane();
  const held = new Map<string, number>(); // owner → its jobs queued or running
  const slots: Slot[] = [];
  let closed = false;

  // A worker's speed: its measured mean, or slower while its current job has run longer than that (a worker
  // the OS gives no CPU, as an idle-priority one under load, stops counting long before its job ends).
  const slotMs = (slot: Slot, now: number) =>
    slot.current ? Math.max(slot.meanMs, (now - slot.current.startedAt) / slot.current.weight) : slot.meanMs;
  /** Units of work the whole pool does per ms. */
  const rate = (now: number) => slots.reduce((sum, slot) => sum + 1 / slotMs(slot, now), 0);
  /** What the running jobs have left, in units, by their workers' measured speed. */
  const runningUnits = (now: number) =>
    slots.reduce(
      (sum, slot) =>
        slot.current ? sum + Math.max(0, slot.current.weight - (now - slot.current.startedAt) / slot.meanMs) : sum,
      0,
    );
  /** The mean time of one hash at the pool's cost on one worker, as the pool runs now. */
  const meanHashMs = (now: number) => slots.length / rate(now);

  /** Why a job may not be queued now, or null when it may. */
  function refusal(weight: number, { deadline, owners = [], preferred: isPreferred }: HashOptions): AppError | null {
    if (deadline === undefined) return null; // no request behind it (the CLI): it waits its turn
    const now = performance.now();
    const budget = deadline - now;
    const perMs = rate(now);
    const ahead = preferred.units + (isPreferred ? 0 : others.units) + runningUnits(now);
    const finish = ahead / perMs + weight * meanHashMs(now);
    const usable = budget * (1 - SLACK);
    if (finish > usable) return overloaded(finish - usable);
    const share = Math.max(MIN_SHARE, Math.floor(budget * perMs * SHARE_OF_CAPACITY));
    for (const owner of owners) {
      const jobs = held.get(owner) ?? 0;
      if (jobs >= share) {
        return overloaded(
          jobs / perMs,
          'Too many password checks for this client or account are in progress; try again shortly',
        );
      }
    }
    return null;
  }

  /** The job leaves the pool's books: its owners' shares and its abort listener. */
  function release(pending: Pending): void {
    pending.state = 'done';
    pending.detach();
    for (const owner of pending.owners) {
      const jobs = (held.get(owner) ?? 1) - 1;
      if (jobs > 0) held.set(owner, jobs);
      else held.delete(owner);
    }
  }

  function answer(pending: Pending, outcome: { value: string | boolean } | { error: unknown }): void {
    if (pending.answered) return;
    pending.answered = true;
    if ('value' in outcome) pending.resolve(outcome.value);
    else pending.reject(outcome.error);
  }

  function spawn(index: number, meanMs = expectedMs): Slot {
    const workerData: HashWorkerData = { priority: !lowPriority ? 0 : index === 0 ? GUARANTEED_NICE : 'idle' };
    const worker = new Worker(workerUrl, { workerData });
    const slot: Slot = { worker, current: null, meanMs };
    // Referenced only while busy: an idle pool must not keep the process alive, but a
    // caller awaiting a hash (a CLI command, say) must not see the process exit under it.
    // Bun ignores an unref() made while the worker is still loading, hence once more when it is up.
    worker.unref();
    worker.once('online', () => {
      if (slot.current === null) worker.unref();
    });
    worker.on('message', (reply: HashReply) => {
      const pending = slot.current;
      slot.current = null;
      if (pending) {
        // Jobs whose caller has gone still measure the pool: the worker spent that time.
        slot.meanMs += EWMA_WEIGHT * ((performance.now() - pending.startedAt) / pending.weight - slot.meanMs);
        release(pending);
        answer(pending, reply.ok ? { value: reply.value } : { error: new Error(reply.error) });
      }
      next(slot);
    });
    // An uncaught error is followed by 'exit', so death is handled once, there.
    worker.on('error', () => {});
    worker.on('exit', () => {
      if (closed) return;
      const pending = slot.current;
      slot.current = null;
      if (pending) {
        release(pending);
        answer(pending, { error: new Error('bcrypt worker exited unexpectedly') });
      }
      const index = slots.indexOf(slot);
      if (index === -1) return;
      const replacement = spawn(index, slot.meanMs);
      slots[index] = replacement;
      next(replacement);
    });
    return slot;
  }

  function next(slot: Slot): void {
    for (let pending = preferred.shift() ?? others.shift(); pending; pending = preferred.shift() ?? others.shift()) {
      if (performance.now() > pending.deadline) {
        // Its request is being answered 503 by its timeout right now; running it would help nobody.
        release(pending);
        answer(pending, { error: overloaded(meanHashMs(performance.now())) });
        continue;
      }
      pending.state = 'running';
      pending.startedAt = performance.now();
      slot.current = pending;
      slot.worker.ref();
      slot.worker.postMessage(pending.job);
      return;
    }
    slot.worker.unref();
  }

  function submit(job: HashJob, weight: number, options: HashOptions = {}): Promise<string | boolean> {
    if (closed) return Promise.reject(new Error('hasher is closed'));
    const { signal, owners = [] } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const refused = refusal(weight, options);
    if (refused) return Promise.reject(refused);
    const lane = options.preferred ? preferred : others;
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        job,
        weight,
        deadline: options.deadline ?? Number.POSITIVE_INFINITY,
        owners,
        state: 'queued',
        answered: false,
        startedAt: 0,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', abandon),
      };
      // The caller has gone: a queued job is dropped; a running one finishes unseen (a synchronous bcrypt
      // cannot be interrupted, and a new thread costs more than the rest of one hash).
      function abandon() {
        if (pending.state === 'queued') {
          lane.forget(pending);
          release(pending);
        }
        answer(pending, { error: signal?.reason });
      }
      signal?.addEventListener('abort', abandon, { once: true });
      for (const owner of owners) held.set(owner, (held.get(owner) ?? 0) + 1);
      lane.push(pending);
      const idle = slots.find((slot) => slot.current === null);
      if (idle) next(idle);
    });
  }

  for (let i = 0; i < threads; i++) slots.push(spawn(i));

  return {
    async hash(password, options) {
      return (await submit({ op: 'hash', password, cost }, 1, options)) as string;
    },
    async verify(password, hash, options) {
      // Checked up front so garbage never occupies a worker.
      const hashCost = bcryptCost(hash);
      if (hashCost === null || !isBcryptHash(hash)) return false;
      return (await submit({ op: 'verify', password, hash }, 2 ** (hashCost - cost), options)) as boolean;
    },
    stats() {
      return {
        queued: preferred.size + others.size,
        running: slots.filter((slot) => slot.current !== null).length,
        meanHashMs: meanHashMs(performance.now()),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      const error = new Error('hasher is closed');
      const exits = slots.map((slot) => {
        const pending = slot.current;
        slot.current = null;
        if (pending) {
          release(pending);
          answer(pending, { error });
        }
        return slot.worker.terminate();
      });
      for (const pending of [...preferred.drain(), ...others.drain()]) {
        release(pending);
        answer(pending, { error });
      }
      slots.length = 0;
      await Promise.allSettled(exits);
    },
  };
}
