/**
 * bcrypt on a private pool of worker threads (node:worker_threads, which Bun, Node and Deno all run).
 *
 * Why threads of our own: bcrypt at cost 12 keeps a thread busy for ~250 ms. On the main thread every login
 * would stall every other request that long; and in Bun, `Bun.password`'s async API runs on the same native
 * FIFO pool as WebCrypto, so a burst of logins would queue every `crypto.subtle` HMAC (the bearer check)
 * behind the hashes. Here each worker runs one synchronous hash at a time, the FIFO queue lives in JS, and
 * the workers lower their own scheduling priority (see the worker files), so a login flood uses every spare
 * cycle but yields the CPU to requests at once. Login throughput still scales with cores.
 *
 * The worker file does the hashing (Bun.password in Bun, bcryptjs elsewhere); this module owns the queue,
 * the threads, and their failures. Hashes are `$2b$`; `$2a$`/`$2b$`/`$2y$` verify, interchangeably between
 * runtimes and with passlib for passwords up to 72 UTF-8 bytes, which the API enforces.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { isBcryptHash, MAX_BCRYPT_COST, MIN_BCRYPT_COST } from './bcrypt';
import type { PasswordHasher } from './hasher';

export interface HashPoolOptions {
  /** bcrypt cost (log2 rounds), 4–31. */
  cost: number;
  /** Worker threads; defaults to the number of cores, since bcrypt is CPU-bound. */
  threads?: number;
  /** Run the workers at idle priority (default true). Best effort: ignored where the OS refuses. */
  lowPriority?: boolean;
}

/** What a pool's worker receives as `workerData`, and then one job at a time. */
export interface HashWorkerData {
  lowPriority: boolean;
}
export type HashJob = { op: 'hash'; password: string; cost: number } | { op: 'verify'; password: string; hash: string };
export type HashReply = { ok: true; value: string | boolean } | { ok: false; error: string };

export type HashPool = PasswordHasher & { close(): Promise<void> };

interface Pending {
  job: HashJob;
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
}

export function createHashPool(workerUrl: URL, options: HashPoolOptions): HashPool {
  const { cost, lowPriority = true } = options;
  if (!Number.isInteger(cost) || cost < MIN_BCRYPT_COST || cost > MAX_BCRYPT_COST) {
    throw new RangeError(`bcrypt cost must be an integer ${MIN_BCRYPT_COST}–${MAX_BCRYPT_COST}, got ${cost}`);
  }
  const threads = options.threads ?? (availableParallelism() || 1);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }

  // FIFO without Array#shift, which is O(n) and a flood can queue thousands of jobs.
  let queue: Pending[] = [];
  let head = 0;
  let closed = false;
  const slots: Slot[] = [];

  function spawn(): Slot {
    const workerData: HashWorkerData = { lowPriority };
    const worker = new Worker(workerUrl, { workerData });
    const slot: Slot = { worker, current: null };
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
        if (reply.ok) pending.resolve(reply.value);
        else pending.reject(new Error(reply.error));
      }
      next(slot);
    });
    // An uncaught error is followed by 'exit', so death is handled once, there.
    worker.on('error', () => {});
    worker.on('exit', () => {
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
      // Checked up front so garbage never occupies a worker.
      if (!isBcryptHash(hash)) return false;
      return (await submit({ op: 'verify', password, hash })) as boolean;
    },
    async close() {
      if (closed) return;
      closed = true;
      const error = new Error('hasher is closed');
      const exits = slots.map((slot) => {
        slot.current?.reject(error);
        slot.current = null;
        return slot.worker.terminate();
      });
      for (let i = head; i < queue.length; i++) queue[i]?.reject(error);
      queue = [];
      head = 0;
      slots.length = 0;
      await Promise.allSettled(exits);
    },
  };
}
