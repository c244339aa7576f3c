import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { clientKey } from '../lib/ip';
import { consumeLimit } from '../rate-limit/limits';

/** Route middleware: counts the request against the client IP's limit `name` before the body is even parsed. */
export const limitByClientIp = (name: 'loginPerIp' | 'registerPerIp' | 'recoveryPerIp') =>
  createMiddleware<AppEnv>(async (c, next) => {
    await consumeLimit(c.var.ctx, name, clientKey(c.var.meta.ip));
    await next();
  });
