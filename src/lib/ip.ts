/**
 * The bucket a client address counts against. An IPv6 client normally holds a whole /64 and can rotate
 * through it at will, so IPv6 is keyed by its /64; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as the IPv4
 * address. Without a known address (no socket information) every such request shares one bucket.
 */
export function clientKey(ip: string | null): string {
  if (!ip) return 'unknown';
  const address = ip.split('%')[0] ?? ip; // drop an IPv6 zone id (fe80::1%eth0)
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!address.includes(':')) return address;
  const [left = '', right] = address.split('::');
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0); // a.b.c.d fills two
  const groups = right === undefined ? head : [...head, ...Array(8 - width(head) - width(tail)).fill('0'), ...tail];
  const prefix = groups.slice(0, 4).map((g) => Number.parseInt(g, 16));
  if (prefix.length < 4 || prefix.some((g) => !(g >= 0 && g <= 0xffff))) return address; // not one we can parse
  return `${prefix.map((g) => g.toString(16)).join(':')}::/64`;
}

/** An IP address as a number: IPv4 in 32 bits, IPv6 in 128 (an IPv4-mapped IPv6 address counts as IPv4). */
export interface ParsedAddress {
  version: 4 | 6;
  value: bigint;
}

/** A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is its own /32 or /128). */
export interface Cidr extends ParsedAddress {
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseIpv4(text: string): bigint | null {
  const octets = IPV4.exec(text)?.slice(1).map(Number);
  if (!octets || octets.some((octet) => octet > 255)) return null;
  return octets.reduce((value, octet) => (value << 8n) | BigInt(octet), 0n);
}

function parseIpv6(text: string): bigint | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const expand = (list: string[]): bigint[] | null => {
    const out: bigint[] = [];
    for (const [index, group] of list.entries()) {
      if (index === list.length - 1 && group.includes('.')) {
        const v4 = parseIpv4(group);
        if (v4 === null) return null;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else if (/^[0-9a-f]{1,4}$/i.test(group)) out.push(BigInt(`0x${group}`));
      else return null;
    }
    return out;
  };
  const head = expand(groups(halves[0]));
  const tail = halves.length === 2 ? expand(groups(halves[1])) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...Array<bigint>(missing).fill(0n), ...tail].reduce((value, group) => (value << 16n) | group, 0n);
}

/**
 * Parses what a socket or a proxy reports: IPv4, IPv6 (a zone id is dropped), `[IPv6]` and either with a
 * `:port`, as some load balancers write them into X-Forwarded-For. Null for anything else.
 */
export function parseAddress(text: string): ParsedAddress | null {
  let address = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed?.[1]) address = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(address)) address = address.slice(0, address.lastIndexOf(':'));
  address = address.split('%')[0] ?? '';
  const v4 = parseIpv4(address);
  if (v4 !== null) return { version: 4, value: v4 };
  const v6 = address.includes(':') ? parseIpv6(address) : null;
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { version: 4, value: v6 & 0xffffffffn }; // ::ffff:0:0/96 is IPv4
  return { version: 6, value: v6 };
}

export function parseCidr(text: string): Cidr | null {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  if (rest.length > 0) return null;
  const parsed = parseAddress(address);
  if (!parsed) return null;
  const width = parsed.version === 4 ? 32 : 128;
  const mapped = parsed.version === 4 && address.includes(':'); // ::ffff:10.0.0.0/104 is 10.0.0.0/8
  const given = prefixText === undefined ? width : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  const prefix = mapped && prefixText !== undefined ? given - 96 : given;
  if (!(prefix >= 0 && prefix <= width)) return null;
  return { ...parsed, prefix, value: parsed.value & networkMask(width, prefix) };
}

const networkMask = (width: number, prefix: number) =>
  ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - prefix)) - 1n);

export function cidrContains(network: Cidr, address: ParsedAddress): boolean {
  if (network.version !== address.version) return false;
  return (address.value & networkMask(address.version === 4 ? 32 : 128, network.prefix)) === network.value;
}

/**
 * How far X-Forwarded-For is believed (TRUST_PROXY): `false` not at all; a hop count (`true` is one) when
 * that many proxies stand in front of the service, each appending the address it received from; or the
 * networks of the trusted proxies, which may be any number.
 */
export type TrustProxy = boolean | number | readonly Cidr[];

/**
 * The client's address from the socket's peer and X-Forwarded-For. The header lists the client first and
 * each proxy appends the address it heard from, so only its right end is written by proxies we trust, and
 * everything left of that can be forged by the client: with a hop count, the address that many hops in from
 * the socket; with trusted networks, the rightmost address that is not one of them (RFC 7239 §7.4's advice
 * for Forwarded). Without a peer address (a runtime that does not tell), a hop count still applies, as if the
 * peer were the first trusted proxy; trusted networks need the peer, so the header is then ignored.
 */
export function resolveClientAddress(
  peer: string | null,
  forwardedFor: string | undefined,
  trust: TrustProxy,
): string | null {
  if (trust === false || forwardedFor === undefined) return peer;
  const forwarded = forwardedFor
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (forwarded.length === 0) return peer;
  if (typeof trust === 'boolean' || typeof trust === 'number') {
    const hops = trust === true ? 1 : trust;
    // forwarded + the peer; the peer is hop 1, so `hops` back from the end of forwarded is hops − 1.
    return forwarded[Math.max(0, forwarded.length - hops)] ?? peer;
  }
  if (peer === null) return null;
  const chain = [...forwarded, peer];
  for (let i = chain.length - 1; i >= 0; i--) {
    const address = parseAddress(chain[i] as string);
    if (!address || !trust.some((network) => cidrContains(network, address))) return chain[i] as string;
  }
  return chain[0] as string; // every hop is a trusted proxy: the furthest one is all we know
}

/** 127.0.0.0/8 or ::1 (an IPv4-mapped loopback counts): a client on this machine. */
export function isLoopback(ip: string | null): boolean {
  const address = ip === null ? null : parseAddress(ip);
  if (!address) return false;
  return address.version === 4 ? address.value >> 24n === 127n : address.value === 1n;
}
