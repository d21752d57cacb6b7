/**
 * IP addresses in one canonical form, for everything that compares them: request hosts, rule hosts,
 * `destinations.allow` ranges and the destination guard. Parsed with `ipaddr.js`. Only strict
 * literals count (dotted-quad IPv4, IPv6 without a zone id); URL spellings such as `127.1` or
 * `0x7f.1` are the request canonicaliser's to turn into dotted quads first.
 *
 * An IPv6 address that embeds an IPv4 one is the IPv4 address: IPv4-mapped (`::ffff:127.0.0.1`),
 * IPv4-compatible (`::127.0.0.1`) and NAT64 well-known-prefix (`64:ff9b::7f00:1`). A rule on
 * `127.0.0.1` and the guard then see the same address however the agent spells it, and the dial goes
 * to the IPv4 address both checked.
 */
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';

export type Ip = ipaddr.IPv4 | ipaddr.IPv6;

/** The IPv4 address an IPv6 one embeds, if any. */
function embedded(ip: ipaddr.IPv6): ipaddr.IPv4 | null {
  if (ip.isIPv4MappedAddress()) return ip.toIPv4Address();
  const p = ip.parts;
  const low = (): ipaddr.IPv4 => new ipaddr.IPv4([p[6]! >> 8, p[6]! & 0xff, p[7]! >> 8, p[7]! & 0xff]);
  const zeroMiddle = p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0;
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052; not the local-use 64:ff9b:1::/48).
  if (p[0] === 0x64 && p[1] === 0xff9b && zeroMiddle) return low();
  // IPv4-compatible (deprecated): ::a.b.c.d, but not :: or ::1.
  if (p[0] === 0 && p[1] === 0 && zeroMiddle && (p[6] !== 0 || p[7]! > 1)) return low();
  return null;
}

/** An IP literal as written, embedded IPv4 not unwrapped (for ranges, which must say what they mean). */
function parseLiteral(s: string): Ip | null {
  if (typeof s !== 'string' || s.includes('%')) return null;
  const family = isIP(s);
  if (family === 4) return ipaddr.IPv4.parse(s);
  if (family === 6) return ipaddr.IPv6.parse(s);
  return null;
}

/** An IP literal in its canonical form (embedded IPv4 unwrapped), or null when `s` is not one. */
export function parseIp(s: string): Ip | null {
  const ip = parseLiteral(s);
  if (ip === null || ip.kind() === 'ipv4') return ip;
  return embedded(ip as ipaddr.IPv6) ?? ip;
}

/** Dotted-quad IPv4, RFC 5952 IPv6 (lower case, compressed). */
export function formatIp(ip: Ip): string {
  return ip.kind() === 'ipv4' ? ip.toString() : (ip as ipaddr.IPv6).toRFC5952String();
}

/** The canonical text of an IP literal, or null when `s` is not one. */
export function canonicalIp(s: string): string | null {
  const ip = parseIp(s);
  return ip === null ? null : formatIp(ip);
}

export function familyOf(ip: Ip): 4 | 6 {
  return ip.kind() === 'ipv4' ? 4 : 6;
}

export interface IpRange {
  readonly base: Ip;
  readonly prefix: number;
}

export function inRange(ip: Ip, r: IpRange): boolean {
  return ip.kind() === r.base.kind() && ip.match(r.base, r.prefix);
}

/** A CIDR or single address as written by a person; `exact` when it names one address. */
export type RangeEntry = { ok: true; range: IpRange; exact: string | null } | { ok: false; message: string };

const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * `10.0.0.0/8`, `fd00::/8`, `192.168.1.10`, `::1`. Refused: host bits set (`10.0.0.1/8`: say which you
 * mean), prefixes out of range, zone ids, and IPv6 ranges that embed IPv4 (`::ffff:10.0.0.0/104`,
 * `64:ff9b::/96`: those addresses are the IPv4 they carry, so write the IPv4 range). A single address
 * (or /32, /128) is an exact entry.
 */
export function parseRange(entry: string): RangeEntry {
  if (typeof entry !== 'string' || entry === '') return { ok: false, message: 'empty destination entry' };
  const slash = entry.indexOf('/');
  const literal = parseLiteral(slash < 0 ? entry : entry.slice(0, slash));
  if (literal === null) return { ok: false, message: `"${entry}" is not an IP address or CIDR` };
  const bits = literal.kind() === 'ipv4' ? 32 : 128;
  if (slash < 0) {
    const ip = parseIp(entry)!;
    return { ok: true, range: { base: ip, prefix: ip.kind() === 'ipv4' ? 32 : 128 }, exact: formatIp(ip) };
  }
  const prefixPart = entry.slice(slash + 1);
  if (!PREFIX.test(prefixPart) || Number(prefixPart) > bits) return { ok: false, message: `"${entry}": prefix length must be 0-${bits}` };
  const prefix = Number(prefixPart);
  if (literal.kind() === 'ipv6' && embedded(literal as ipaddr.IPv6) !== null) {
    return { ok: false, message: `"${entry}": IPv4-mapped, IPv4-compatible and NAT64 addresses are checked as the IPv4 they embed; write the IPv4 range` };
  }
  const network = literal.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(entry) : ipaddr.IPv6.networkAddressFromCIDR(entry);
  if (formatIp(network) !== formatIp(literal)) return { ok: false, message: `"${entry}" has host bits set; did you mean ${formatIp(network)}/${prefix}?` };
  return { ok: true, range: { base: literal, prefix }, exact: prefix === bits ? formatIp(literal) : null };
}
