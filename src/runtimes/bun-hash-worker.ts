/**
 * One bcrypt job at a time, synchronously, on this worker's own thread.
 * The *Sync calls matter: the async Bun.password API would hand the work to the
 * native pool that crypto.subtle also uses, which is what this worker exists to avoid.
 */
import { setPriority } from 'node:os';
import type { HashJob, HashReply, WorkerInit } from './bun-hasher';

// bun-types declares `self` as the global scope without Worker's onmessage/postMessage.
declare const self: { onmessage: ((event: MessageEvent) => void) | null; postMessage(message: unknown): void };

self.onmessage = (event) => {
  const msg = event.data as WorkerInit | HashJob;
  if (msg.op === 'init') {
    // Linux niceness is per thread, so pid 0 here lowers only this worker's thread
    // (checked via /proc/self/task/*/stat). Best effort: a sandbox may refuse it.
    if (msg.nice) {
      try {
        setPriority(0, msg.nice);
      } catch {}
    }
    return;
  }
  let reply: HashReply;
  try {
    const value =
      msg.op === 'hash'
        ? Bun.password.hashSync(msg.password, { algorithm: 'bcrypt', cost: msg.cost })
        : Bun.password.verifySync(msg.password, msg.hash, 'bcrypt');
    reply = { ok: true, value };
  } catch (error) {
    // verifySync throws on a hash it cannot parse; that is a mismatch, not a fault.
    reply = msg.op === 'verify' ? { ok: true, value: false } : { ok: false, error: String(error) };
  }
  self.postMessage(reply);
};
