import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';

const MAX_USER_AGENT_LENGTH = 512; // enough for any real browser; stops a client from bloating the audit log
const MAX_ADDRESS_LENGTH = 64;

/**
 * Puts the client address and user agent on `c.var.meta`, once, for sessions, the audit log and the rate
 * limits. The address comes from the socket (each runtime injects how to read it); `X-Forwarded-For` is
 * believed only with TRUST_PROXY, since any client can send one. Behind one trusted proxy, the client is
 * the last address that proxy appended.
 */
export const requestMeta = createMiddleware<AppEnv>(async (c, next) => {
  const { config, remoteAddress } = c.var.ctx;
  let ip = remoteAddress?.(c) ?? null;
  if (config.TRUST_PROXY) {
    const forwarded = c.req.header('X-Forwarded-For')?.split(',').at(-1)?.trim();
    if (forwarded) ip = forwarded.slice(0, MAX_ADDRESS_LENGTH);
  }
  c.set('meta', { ip, userAgent: c.req.header('User-Agent')?.slice(0, MAX_USER_AGENT_LENGTH) ?? null });
  await next();
});
