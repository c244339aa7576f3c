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
