import type { Context } from 'hono';
import type { AppEnv } from '../deps';
import type { RequestMeta } from '../services/audit';

const MAX_USER_AGENT_LENGTH = 512; // enough for any real browser; stops a client from bloating the audit log

/**
 * The client address and user agent, for sessions and the audit log. The address comes from the socket
 * (each runtime injects how to read it); `X-Forwarded-For` is believed only with TRUST_PROXY, since any
 * client can send one. Behind one trusted proxy, the client is the last address that proxy appended.
 */
export function requestMeta(c: Context<AppEnv>): RequestMeta {
  const { config, remoteAddress } = c.var.deps;
  let ip = remoteAddress?.(c) ?? null;
  if (config.TRUST_PROXY) {
    const forwarded = c.req.header('X-Forwarded-For')?.split(',').at(-1)?.trim();
    if (forwarded) ip = forwarded.slice(0, 64);
  }
  return { ip, userAgent: c.req.header('User-Agent')?.slice(0, MAX_USER_AGENT_LENGTH) ?? null };
}
