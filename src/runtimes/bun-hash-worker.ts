/**
 * One bcrypt job at a time, synchronously, on this worker's own thread.
 * The *Sync calls matter: the async Bun.password API would hand the work to the
 * native pool that crypto.subtle also uses, which is what this worker exists to avoid.
 */
import { dlopen, FFIType, ptr } from 'bun:ffi';
import { setPriority } from 'node:os';
import type { HashJob, HashReply, WorkerInit } from './bun-hasher';

// bun-types declares `self` as the global scope without Worker's onmessage/postMessage.
declare const self: { onmessage: ((event: MessageEvent) => void) | null; postMessage(message: unknown): void };

const SCHED_IDLE = 5; // linux/sched.h
const LOWEST_NICE = 19;

/**
 * Scheduling policy and niceness are per thread on Linux, so `0` (the calling thread) lowers only this
 * worker. SCHED_IDLE runs it only when no normal thread wants the CPU; where that is refused (another
 * OS, a seccomp sandbox, no glibc), nice 19 comes close. Best effort: hashing works either way.
 */
function lowerPriority(): void {
  try {
    const libc = dlopen('libc.so.6', {
      sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    const param = new Int32Array(1); // struct sched_param { int sched_priority = 0 }
    const ok = libc.symbols.sched_setscheduler(0, SCHED_IDLE, ptr(param)) === 0;
    libc.close();
    if (ok) return;
  } catch {}
  try {
    setPriority(0, LOWEST_NICE);
  } catch {}
}

self.onmessage = (event) => {
  const msg = event.data as WorkerInit | HashJob;
  if (msg.op === 'init') {
    if (msg.lowPriority) lowerPriority();
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
