/**
 * bcrypt for Bun on a private pool of Worker threads.
 *
 * Why not plain `Bun.password.hash/verify`: Bun runs those on the same native FIFO
 * pool as WebCrypto, so a burst of logins queues every `crypto.subtle` HMAC (hono/jwt
 * bearer checks) behind ~270 ms hashes and cheap authenticated requests stall for
 * seconds. Here each worker runs the *Sync bcrypt on its own thread and the queue lives
 * in JS, so WebCrypto's pool stays free and login throughput still scales with cores.
 *
 * Workers also run at the lowest scheduling priority (Linux SCHED_IDLE, else nice 19): at
 * normal priority they take an equal share of the CPU from the main thread and the database
 * during a login flood (cheap-request p99 ~3.5x idle on 2 cores). At idle priority they still
 * use every spare cycle, so login-only throughput is unchanged, but a request that needs the
 * CPU preempts them at once.
 */
import { availableParallelism } from 'node:os';
import type { PasswordHasher } from '../lib/password-hasher';

export interface BunHasherOptions {
  /** bcrypt cost (log2 rounds), 4–31. */
  cost: number;
  /** Worker threads; defaults to the number of cores, since bcrypt is CPU-bound. */
  threads?: number;
  /** Run the workers at idle priority (default true). Best effort: ignored where the OS refuses. */
  lowPriority?: boolean;
}

export type WorkerInit = { op: 'init'; lowPriority: boolean };
export type HashJob = { op: 'hash'; password: string; cost: number } | { op: 'verify'; password: string; hash: string };
export type HashReply = { ok: true; value: string | boolean } | { ok: false; error: string };

interface Pending {
  job: HashJob;
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
}

// Checked up front so garbage never occupies a worker; bcrypt hashes are exactly this shape.
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

const WORKER_URL = new URL('./bun-hash-worker.ts', import.meta.url).href;

export function createBunHasher(options: BunHasherOptions): PasswordHasher & { close(): void } {
  const { cost, lowPriority = true } = options;
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) {
    throw new RangeError(`bcrypt cost must be an integer 4–31, got ${cost}`);
  }
  const threads = options.threads ?? defaultThreads();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }

  // FIFO without Array#shift, which is O(n) and a flood can queue thousands of jobs.
  let queue: Pending[] = [];
  let head = 0;
  let closed = false;
  const slots: Slot[] = [];

  function spawn(): Slot {
    const worker = new Worker(WORKER_URL);
    const slot: Slot = { worker, current: null };
    const init: WorkerInit = { op: 'init', lowPriority };
    worker.postMessage(init);
    // Referenced only while busy: an idle pool must not keep the process alive, but a
    // caller awaiting a hash (e.g. a CLI script) must not see the process exit under it.
    worker.unref();
    worker.addEventListener('message', (event: MessageEvent<HashReply>) => {
      const pending = slot.current;
      slot.current = null;
      if (pending) {
        const reply = event.data;
        if (reply.ok) pending.resolve(reply.value);
        else pending.reject(new Error(reply.error));
      }
      next(slot);
    });
    // An uncaught error is followed by 'close', so death is handled once, there.
    worker.addEventListener('error', (event) => event.preventDefault());
    worker.addEventListener('close', () => {
      if (closed) return;
      const pending = slot.current;
      slot.current = null;
      pending?.reject(new Error('bcrypt worker exited unexpectedly'));
      const index = slots.indexOf(slot);
      if (index === -1) return;
      const replacement = spawn();
      slots[index] = replacement;
      next(replacement);
    });
    return slot;
  }

  function next(slot: Slot): void {
    if (head === queue.length) {
      slot.worker.unref();
      return;
    }
    const pending = queue[head] as Pending;
    queue[head++] = undefined as unknown as Pending;
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    slot.current = pending;
    slot.worker.ref();
    slot.worker.postMessage(pending.job);
  }

  function submit(job: HashJob): Promise<string | boolean> {
    if (closed) return Promise.reject(new Error('hasher is closed'));
    return new Promise((resolve, reject) => {
      queue.push({ job, resolve, reject });
      const idle = slots.find((slot) => slot.current === null);
      if (idle) next(idle);
    });
  }

  for (let i = 0; i < threads; i++) slots.push(spawn());

  return {
    async hash(password) {
      return (await submit({ op: 'hash', password, cost })) as string;
    },
    async verify(password, hash) {
      if (typeof hash !== 'string' || !BCRYPT_HASH.test(hash)) return false;
      return (await submit({ op: 'verify', password, hash })) as boolean;
    },
    close() {
      if (closed) return;
      closed = true;
      const error = new Error('hasher is closed');
      for (const slot of slots) {
        slot.current?.reject(error);
        slot.current = null;
        slot.worker.terminate();
      }
      for (let i = head; i < queue.length; i++) queue[i]?.reject(error);
      queue = [];
      head = 0;
      slots.length = 0;
    },
  };
}

function defaultThreads(): number {
  return navigator.hardwareConcurrency || availableParallelism() || 1;
}
