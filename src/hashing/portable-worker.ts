/**
 * One bcryptjs job at a time, synchronously, on this worker thread (see pool.ts).
 * Runs under Node (built to dist/hashing/portable-worker.js) and Deno (this file).
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import type { HashJob, HashReply, HashWorkerData } from './pool';

const LOWEST_NICE = 19;

// On Linux a nice value belongs to a thread, and pid 0 means the calling thread: this changes only this
// worker. Without SCHED_IDLE here (no FFI), idle is the lowest niceness. Best effort: a sandbox or another OS
// may refuse, and hashing works either way.
const priority = (workerData as HashWorkerData | undefined)?.priority ?? 0;
if (priority !== 0) {
  try {
    setPriority(0, priority === 'idle' ? LOWEST_NICE : priority);
  } catch {}
}

parentPort?.on('message', (job: HashJob) => {
  let reply: HashReply;
  try {
    const value =
      job.op === 'hash' ? bcrypt.hashSync(job.password, job.cost) : bcrypt.compareSync(job.password, job.hash);
    reply = { ok: true, value };
  } catch (error) {
    // compareSync throws on a hash it cannot parse; that is a mismatch, not a fault.
    reply = job.op === 'verify' ? { ok: true, value: false } : { ok: false, error: String(error) };
  }
  parentPort?.postMessage(reply);
});
