/**
 * Which IP addresses are not public destinations (loopback, private, link-local, CGNAT,
 * documentation, multicast, reserved, and the IPv4 embeddings in IPv6): the outbound guard
 * (guarded-fetch.ts) refuses to connect to them unless private addresses are allowed.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** `[::1]` → `::1` (URL hostnames keep IPv6 brackets). */
export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * IPv4 blocks that are not publicly routable destinations, after the IANA IPv4
 * Special-Purpose Address Registry (RFC 6890) and the multicast/reserved space.
 */
const IPV4_NON_PUBLIC: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network", incl. the unspecified 0.0.0.0 (RFC 791, RFC 1122)
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared address space / CGNAT (RFC 6598)
  ['127.0.0.0', 8], // loopback (RFC 1122)
  ['169.254.0.0', 16], // link-local (RFC 3927), incl. cloud metadata 169.254.169.254
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments (RFC 6890)
  ['192.0.2.0', 24], // documentation TEST-NET-1 (RFC 5737)
  ['192.88.99.0', 24], // deprecated 6to4 relay anycast (RFC 7526)
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking (RFC 2544)
  ['198.51.100.0', 24], // documentation TEST-NET-2 (RFC 5737)
  ['203.0.113.0', 24], // documentation TEST-NET-3 (RFC 5737)
  ['224.0.0.0', 4], // multicast (RFC 5771)
  ['240.0.0.0', 4], // reserved (RFC 1112), incl. limited broadcast 255.255.255.255
];

/**
 * IPv6 blocks inside global unicast 2000::/3 that are still not public destinations
 * (IANA IPv6 Special-Purpose Address Registry). Everything outside 2000::/3 is refused as a
 * whole (::, ::1, fc00::/7 unique-local, fe80::/10 link-local, fec0::/10, ff00::/8 multicast,
 * 100::/64 discard, 64:ff9b:1::/48, 5f00::/16 ...), except the IPv4-embedding forms below.
 */
const IPV6_NON_PUBLIC: ReadonlyArray<readonly [string, number]> = [
  ['2001::', 23], // IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID (RFC 2928)
  ['2001:db8::', 32], // documentation (RFC 3849)
  ['3fff::', 20], // documentation (RFC 9637)
];

const V4_RANGES = IPV4_NON_PUBLIC.map(([base, bits]) => {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { base: (parseIPv4(base)! & mask) >>> 0, mask };
});

const V6_RANGES = IPV6_NON_PUBLIC.map(([base, bits]) => ({ base: parseIPv6(base)!, bits }));

/**
 * Pure: true when `ip` (IPv4, or IPv6 incl. IPv4-mapped, NAT64 and 6to4 forms) is loopback,
 * private, link-local, CGNAT, unspecified, multicast, broadcast, benchmarking, documentation
 * or otherwise not a public destination. Anything that is not a valid IP address (including
 * a zoned IPv6 address such as fe80::1%eth0) is answered true: fail closed.
 */
export function isNonPublicAddress(ip: string): boolean {
  const host = stripBrackets(ip.trim());
  if (isIPv4(host)) return isNonPublicIPv4(parseIPv4(host)!);
  if (!isIPv6(host) || host.includes('%')) return true;
  const v6 = parseIPv6(host);
  if (v6 === null) return true;

  // IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2) and NAT64 64:ff9b::/96 (RFC 6052): judge
  // the embedded IPv4 address; the packet ends up there.
  if (v6 >> 32n === 0xffffn || v6 >> 32n === 0x0064ff9b_0000_0000_0000_0000n) {
    return isNonPublicIPv4(Number(v6 & 0xffffffffn));
  }
  // 6to4 2002::/16 (RFC 3056) embeds the IPv4 address of its relay endpoint in bits 16..47.
  if (v6 >> 112n === 0x2002n) {
    return isNonPublicIPv4(Number((v6 >> 80n) & 0xffffffffn));
  }
  if (v6 >> 125n !== 0b001n) return true; // outside global unicast 2000::/3
  return V6_RANGES.some(({ base, bits }) => v6 >> BigInt(128 - bits) === base >> BigInt(128 - bits));
}

function isNonPublicIPv4(v4: number): boolean {
  return V4_RANGES.some(({ base, mask }) => ((v4 & mask) >>> 0) === base);
}

/** Dotted-quad → unsigned 32-bit number; null unless strictly a.b.c.d. */
function parseIPv4(s: string): number | null {
  if (!isIPv4(s)) return null;
  const parts = s.split('.').map(Number);
  return parts.reduce((acc, octet) => acc * 256 + octet, 0);
}

/** Textual IPv6 (incl. "::" and a dotted IPv4 tail) → 128-bit bigint; null if malformed. */
function parseIPv6(s: string): bigint | null {
  if (!isIPv6(s) || s.includes('%')) return null;
  let text = s;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : (halves[0] ?? '').split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] ?? '').split(':')) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...rest];
  let value = 0n;
  for (const group of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  return value;
}
