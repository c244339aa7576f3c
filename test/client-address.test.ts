/**
 * Which address is the client's (TRUST_PROXY, src/lib/ip.ts): what sessions, the audit log, the rate limits
 * and the hash pool's shares see. X-Forwarded-For is believed only as far as the proxies that wrote it are
 * trusted: by a hop count, or by the networks of the trusted proxies (the rightmost untrusted address wins).
 */
import { describe, expect, test } from 'bun:test';
import { parseCidr, resolveClientAddress } from '../src/lib/ip';
import { bearer, createTestApp, json, registerUser, TEST_PASSWORD, type TokenBody } from './helpers';

/** Logs in once through `app` with these request headers; the address its session recorded. */
async function recordedAddress(env: Record<string, string>, headers: Record<string, string>, peer?: string) {
  const { app } = await createTestApp({ env, ...(peer ? { remoteAddress: () => peer } : {}) });
  const { email } = await registerUser(app);
  const res = await app.request('/token', {
    method: 'POST',
    headers,
    body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
  });
  expect(res.status).toBe(200);
  const { access_token } = await json<TokenBody>(res);
  const sessions = await json<{ ip: string | null }[]>(
    await app.request('/users/me/sessions', { headers: bearer(access_token) }),
  );
  return sessions[0]?.ip;
}

describe('TRUST_PROXY', () => {
  test('with a hop count, the address that many proxies in from the socket', async () => {
    // client → CDN → load balancer → us: the client sent a forged entry first.
    const headers = { 'X-Forwarded-For': '6.6.6.6, 198.51.100.9, 203.0.113.80' };
    expect(await recordedAddress({ TRUST_PROXY: '2' }, headers, '10.0.0.2')).toBe('198.51.100.9');
    expect(await recordedAddress({ TRUST_PROXY: '1' }, headers, '10.0.0.2')).toBe('203.0.113.80');
  });

  test('with trusted networks, the rightmost address that is not one of them', async () => {
    const env = { TRUST_PROXY: '10.0.0.0/8, 2001:db8:ffff::/48' };
    const headers = { 'X-Forwarded-For': '6.6.6.6, 198.51.100.9, 2001:db8:ffff::7, 10.1.1.1' };
    expect(await recordedAddress(env, headers, '10.0.0.2')).toBe('198.51.100.9');
  });

  test('with trusted networks, a peer outside them is the client, whatever it forwards', async () => {
    const env = { TRUST_PROXY: '10.0.0.0/8' };
    expect(await recordedAddress(env, { 'X-Forwarded-For': '198.51.100.9' }, '203.0.113.50')).toBe('203.0.113.50');
  });

  test('off, X-Forwarded-For is ignored', async () => {
    expect(await recordedAddress({}, { 'X-Forwarded-For': '198.51.100.9' }, '203.0.113.50')).toBe('203.0.113.50');
  });
});

describe('resolveClientAddress and parseCidr', () => {
  const networks = ['10.0.0.0/8', '::ffff:192.168.0.0/112', '2001:db8::/32'].map((cidr) => {
    const network = parseCidr(cidr);
    if (!network) throw new Error(`${cidr} did not parse`);
    return network;
  });

  test('matches IPv4, IPv4-mapped IPv6 and IPv6 addresses, with ports and brackets as proxies write them', () => {
    const chain = '198.51.100.1, 192.168.3.4:5555, [2001:db8::1]:443, ::ffff:10.9.9.9';
    expect(resolveClientAddress('10.0.0.1', chain, networks)).toBe('198.51.100.1');
  });

  test('takes the leftmost address when every hop is trusted, and the peer when no header came', () => {
    expect(resolveClientAddress('10.0.0.1', '10.2.2.2, 10.3.3.3', networks)).toBe('10.2.2.2');
    expect(resolveClientAddress('10.0.0.1', undefined, networks)).toBe('10.0.0.1');
    expect(resolveClientAddress('10.0.0.1', ' , ', 2)).toBe('10.0.0.1');
  });

  test('a hop count larger than the chain gives its leftmost address', () => {
    expect(resolveClientAddress('10.0.0.1', '198.51.100.1', 3)).toBe('198.51.100.1');
  });

  test('refuses what is not a network', () => {
    for (const text of ['10.0.0.0/33', '10.0.0/8', 'example.com', '2001:db8::/129', '1.2.3.4/8/8', ':::1']) {
      expect(parseCidr(text)).toBeNull();
    }
  });
});
