import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { clientKey } from '../lib/ip';
import { consumeLimit } from '../rate-limit/limits';

/** Route middleware: counts the request against the client address's limit `name` before its body is parsed. */
export const limitByClientIp = (name: 'loginPerIp' | 'registerPerIp' | 'recoveryPerIp') =>
  createMiddleware<AppEnv>(async (c, next) => {
    await consumeLimit(c.var.ctx, name, clientKey(c.var.meta.ip));
    await next();
  });
