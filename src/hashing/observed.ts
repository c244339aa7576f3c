import type { HashOperation, Metrics } from '../lib/metrics';
import type { Tracer } from '../lib/tracing';
import type { PasswordHasher } from './hasher';

/**
 * The app's hasher, timed: each hash or check that ran is a `password hash` span (tracing on) and an
 * observation of the hash-time histogram, from asking to its result, the wait for a worker included. A job
 * the pool refused (overload) or dropped (its client left) did no hashing and is not observed.
 */
export function observeHasher(hasher: PasswordHasher, { metrics, tracer }: { metrics: Metrics; tracer: Tracer }) {
  const timed = async <T>(operation: HashOperation, work: () => Promise<T>): Promise<T> => {
    const span = tracer.start(`password ${operation}`, 'internal', { 'password.operation': operation });
    const started = performance.now();
    try {
      const result = await work();
      metrics.hashed(operation, (performance.now() - started) / 1000);
      span.end();
      return result;
    } catch (error) {
      span.end(error);
      throw error;
    }
  };
  const observed: PasswordHasher = {
    hash: (password, options) => timed('hash', () => hasher.hash(password, options)),
    verify: (password, hash, options) => timed('verify', () => hasher.verify(password, hash, options)),
  };
  return observed;
}
