/**
 * One bcrypt job at a time, synchronously, on this worker thread (see pool.ts). The *Sync calls
 * matter: Bun.password's async API would hand the work to the native pool that crypto.subtle also uses.
 */
import { dlopen, FFIType, ptr } from 'bun:ffi';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { HashJob, HashReply, HashWorkerData } from './pool';

const SCHED_IDLE = 5; // linux/sched.h
const LOWEST_NICE = 19;

/**
 * Scheduling policy and niceness are per thread on Linux, so `0` (the calling thread) changes only this
 * worker. SCHED_IDLE runs it only when no normal thread wants the CPU; where that is refused (another
 * OS, a seccomp sandbox, no glibc), nice 19 comes close. Best effort: hashing works either way.
 */
function runWhenIdle(): void {
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

const priority = (workerData as HashWorkerData | undefined)?.priority ?? 0;
if (priority === 'idle') runWhenIdle();
else if (priority !== 0) {
  try {
    setPriority(0, priority);
  } catch {}
}

parentPort?.on('message', (job: HashJob) => {
  let reply: HashReply;
  try {
    const value =
      job.op === 'hash'
        ? Bun.password.hashSync(job.password, { algorithm: 'bcrypt', cost: job.cost })
        : Bun.password.verifySync(job.password, job.hash, 'bcrypt');
    reply = { ok: true, value };
  } catch (error) {
    // verifySync throws on a hash it cannot parse; that is a mismatch, not a fault.
    reply = job.op === 'verify' ? { ok: true, value: false } : { ok: false, error: String(error) };
  }
  parentPort?.postMessage(reply);
});
