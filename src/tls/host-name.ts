/**
 * The host names leaves are issued for and TLS server names are compared by: light enough for the
 * proxy to use without loading the certificate machinery of ca.ts.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/** Something `issueLeaf` cannot make a certificate for (empty, malformed, not a host name). */
export class InvalidHostError extends Error {
  override name = 'InvalidHostError';
}

export type HostTarget = { kind: 'dns'; name: string } | { kind: 'ip'; address: string };

/**
 * Canonical form of a CONNECT/SNI host: lower-case, no trailing dot, IDN to punycode, IPv6
 * without brackets or zone and in one spelling (so `[::1]`, `0:0::1` and `::1` are one host).
 * Throws InvalidHostError for something that is neither a DNS name nor an IP literal.
 */
export function parseHost(input: string): HostTarget {
  let host = input.trim();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const zone = host.indexOf('%');
  if (zone > 0 && host.includes(':')) host = host.slice(0, zone);
  const family = isIP(host);
  if (family === 4) return { kind: 'ip', address: host };
  if (family === 6) return { kind: 'ip', address: canonicalIPv6(host) };
  if (host.endsWith('.')) host = host.slice(0, -1);
  // only letters, digits, '.', '-', '_' (domainToASCII would quietly cut "a/b" down to "a")
  const ascii = host === '' || /[^A-Za-z0-9._\u{80}-\u{10ffff}-]/u.test(host) ? '' : domainToASCII(host);
  if (ascii === '' || ascii.length > 253 || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(ascii) || ascii.split('.').some((l) => l.length > 63)) {
    throw new InvalidHostError(`not a host name or IP address: ${JSON.stringify(input)}`);
  }
  // the URL host parser reads "127.1" or "0x7f.0.0.1" as IPv4, as clients' URL parsers do
  if (isIP(ascii) === 4) return { kind: 'ip', address: ascii };
  return { kind: 'dns', name: ascii };
}

/** `parseHost` as a string: the cache key and the name a leaf is issued for. */
export function normalizeHost(input: string): string {
  const t = parseHost(input);
  return t.kind === 'dns' ? t.name : t.address;
}

/** RFC 5952 / WHATWG spelling of an IPv6 literal already checked by net.isIP (`::ffff:102:304` for mapped IPv4). */
function canonicalIPv6(addr: string): string {
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

