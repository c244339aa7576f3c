import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { resolveClientAddress } from '../lib/ip';

const MAX_USER_AGENT_LENGTH = 512; // enough for any real browser; stops a client from bloating the audit log
const MAX_ADDRESS_LENGTH = 64;

/**
 * Puts the client address, the user agent and the request's abort signal on `c.var.meta`, once, for
 * sessions, the audit log, the rate limits and the hash pool. The address comes from the socket (each
 * runtime injects how to read it); `X-Forwarded-For` is believed only as far as TRUST_PROXY says, since any
 * client can send one (lib/ip.ts resolveClientAddress: the rightmost address no trusted proxy wrote).
 */
export const requestMeta = createMiddleware<AppEnv>(async (c, next) => {
  const { config, remoteAddress } = c.var.ctx;
  const ip = resolveClientAddress(remoteAddress?.(c) ?? null, c.req.header('X-Forwarded-For'), config.TRUST_PROXY);
  c.set('meta', {
    ip: ip?.slice(0, MAX_ADDRESS_LENGTH) ?? null,
    userAgent: c.req.header('User-Agent')?.slice(0, MAX_USER_AGENT_LENGTH) ?? null,
    signal: c.var.deadline?.signal,
    deadline: c.var.deadline?.at,
  });
  await next();
});
