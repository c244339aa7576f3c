import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { AppError } from '../lib/problems';
import { RequestAbandoned } from '../lib/request-meta';

/**
 * The request's time limit (REQUEST_TIMEOUT_MS) and its abort signal. hono's timeout() answers 503 at the
 * limit but lets the handler run on: a login flood then keeps hashing, writing audit rows and counting
 * failures for clients that have their answer, and the next clients wait behind that work. Here the request
 * also gets an AbortSignal, aborted when the limit passes or when the client disconnects (every runtime
 * aborts `Request.signal` then), and its deadline; request-meta puts both on `c.var.meta`, so every service
 * call carries them: the hash pool refuses work that cannot finish in time and drops work nobody waits for,
 * and the services that hash (login, registration, password change) and refresh write nothing once the
 * signal is aborted. Revocations (logout, ending a session, an admin's changes) complete regardless: a
 * client that sends a logout and leaves must still be logged out.
 */
export const requestDeadline = (timeoutMs: number) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const controller = new AbortController();
    const client = c.req.raw.signal;
    const disconnected = () => controller.abort(new RequestAbandoned('the client disconnected'));
    if (client.aborted) disconnected();
    else client.addEventListener('abort', disconnected, { once: true });
    c.set('deadline', { signal: controller.signal, at: performance.now() + timeoutMs });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort(new RequestAbandoned('the request timed out'));
        reject(new AppError('timeout'));
      }, timeoutMs);
    });
    try {
      await Promise.race([next(), expired]);
    } finally {
      clearTimeout(timer);
      client.removeEventListener('abort', disconnected);
    }
  });
