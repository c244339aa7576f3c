/**
 * bcrypt for Node and Deno: bcryptjs on a private pool of `node:worker_threads`.
 *
 * bcryptjs is pure JavaScript: a cost-12 hash keeps whatever thread runs it busy for ~250 ms, so on the
 * main thread every login would stall every other request for that long. Each worker runs the *Sync
 * functions on its own thread, one job at a time; the FIFO queue lives here. As in the Bun pool
 * (bun-hasher.ts), workers lower their own scheduling priority (nice 19) so a login flood uses spare CPU
 * without starving cheap requests.
 *
 * Hashes are `$2b$` (bcryptjs 3), and `$2a$`/`$2b$`/`$2y$` verify: interchangeable with Bun.password and
 * passlib for passwords up to 72 UTF-8 bytes, which the API enforces.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { PasswordHasher } from '../lib/password-hasher';

export interface PortableHasherOptions {
  /** bcrypt cost (log2 rounds), 4–31. */
  cost: number;
  /** Worker threads; defaults to the number of cores, since bcrypt is CPU-bound. */
  threads?: number;
  /** Run the workers at the lowest priority (default true). Best effort: ignored where the OS refuses. */
  lowPriority?: boolean;
}

export type PortableHashJob =
  | { op: 'hash'; password: string; cost: number }
  | { op: 'verify'; password: string; hash: string };
export type PortableHashReply = { ok: true; value: string | boolean } | { ok: false; error: string };
export interface PortableWorkerData {
  lowPriority: boolean;
}

interface Pending {
  job: PortableHashJob;
  resolve(value: string | boolean): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
}

// Checked up front so garbage never occupies a worker; bcrypt hashes are exactly this shape.
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

// Next to this module: the .ts source under Deno, dist/runtimes/portable-hash-worker.js in the Node build.
const WORKER_URL = new URL(`./portable-hash-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);

export function createPortableHasher(options: PortableHasherOptions): PasswordHasher & { close(): Promise<void> } {
  const { cost, lowPriority = true } = options;
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) {
    throw new RangeError(`bcrypt cost must be an integer 4–31, got ${cost}`);
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
    const workerData: PortableWorkerData = { lowPriority };
    const worker = new Worker(WORKER_URL, { workerData });
    const slot: Slot = { worker, current: null };
    // Referenced only while busy: an idle pool must not keep the process alive, but a
    // caller awaiting a hash must not see the process exit under it.
    worker.unref();
    worker.on('message', (reply: PortableHashReply) => {
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

  function submit(job: PortableHashJob): Promise<string | boolean> {
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
