/**
 * Host and authority canonicalisation shared by request targets, Host headers and CONNECT
 * authorities (and usable by whatever needs to compare a host the same way, e.g. rule hosts).
 */

import { domainToASCII, domainToUnicode } from 'node:url';
import { canonicalIp } from '../net/address.js';

export type Failure = { ok: false; message: string };
export type HostResult = { ok: true; host: string } | Failure;
export type AuthorityResult = { ok: true; host: string; port: number } | Failure;

export const DEFAULT_PORT: Readonly<Record<'http' | 'https', number>> = { http: 80, https: 443 };

// Already canonical unless the last label could be an IPv4 number (starts with a digit) or a
// label is punycode (must be validated): both go through WHATWG URL.
const SIMPLE_HOST = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/i;
const LAST_LABEL_STARTS_WITH_DIGIT = /(?:^|\.)[0-9][^.]*$/;
// What a canonical domain (or dotted IPv4) may contain after URL parsing: LDH plus `_`, no empty
// labels. Anything else URL lets through (`*`, `$`, `!`, …) is not a name DNS will resolve.
const CANONICAL_DOMAIN = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const PORT = /^[0-9]{1,5}$/;
// Dotted-decimal IPv4 without leading zeros is already what URL would make of it.
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const CANONICAL_IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/**
 * Canonical form of a host as written in an authority (IPv6 in brackets): lower case, IDNA to
 * punycode, numeric IPv4 spellings resolved, one trailing dot removed, IPv6 without brackets in its
 * canonical form (src/net/address.ts: an IPv6 spelling of an IPv4 address is that IPv4 address).
 */
export function canonicalHost(raw: string): HostResult {
  if (raw === '') return { ok: false, message: 'empty host' };
  if (raw.includes('%')) return { ok: false, message: 'host contains a percent sign (encoded host or IPv6 zone id)' };
  if (raw.startsWith('[')) {
    // One form for rules and the dialler alike: an IPv6 spelling of an IPv4 address is that address.
    const ip = raw.endsWith(']') ? canonicalIp(raw.slice(1, -1)) : null;
    if (ip === null || !raw.includes(':')) return { ok: false, message: 'invalid IPv6 address in host' };
    return { ok: true, host: ip };
  }
  // `example.com.` names the same host as `example.com` (absolute DNS name); more dots are junk.
  const name = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (name === '' || name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    return { ok: false, message: 'host has an empty label' };
  }
  if (CANONICAL_IPV4.test(name)) return { ok: true, host: name };
  if (SIMPLE_HOST.test(name)) {
    const lower = name.toLowerCase();
    if (!LAST_LABEL_STARTS_WITH_DIGIT.test(lower) && !lower.includes('xn--')) return { ok: true, host: lower };
  }
  const parsed = whatwgHost(name);
  if (parsed === null || !punycodeValid(parsed)) return { ok: false, message: 'invalid host' };
  if (!CANONICAL_DOMAIN.test(parsed)) return { ok: false, message: 'host contains characters not allowed in a domain name' };
  return { ok: true, host: parsed };
}

/**
 * Every `xn--` label must decode and encode back to itself. The URL parser lets undecodable labels
 * (`xn--zz`) through as they are, and resolvers and upstream frameworks disagree on what such a name is.
 */
function punycodeValid(host: string): boolean {
  if (!host.includes('xn--')) return true;
  for (const label of host.split('.')) {
    if (!label.startsWith('xn--')) continue;
    const unicode = domainToUnicode(label);
    if (unicode === '' || unicode === label || domainToASCII(unicode) !== label) return false;
  }
  return true;
}

/** The WHATWG host parser (IDNA, IPv4 number forms, IPv6 compression), or null when it refuses. */
function whatwgHost(host: string): string | null {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return null;
  }
}

/**
 * `host[:port]` (userinfo, paths and percent signs refused). `defaultPort` null means the port is
 * mandatory (CONNECT authority-form).
 */
export function parseAuthority(authority: string, defaultPort: number | null): AuthorityResult {
  for (let i = 0; i < authority.length; i++) {
    const c = authority.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return { ok: false, message: 'host contains whitespace or a control character' };
    if (c === 0x40) return { ok: false, message: 'userinfo (user@) is not allowed in the URL; use Proxy-Authorization' };
    if (c === 0x5c) return { ok: false, message: 'host contains a backslash' };
    if (c === 0x2f || c === 0x3f || c === 0x23) return { ok: false, message: 'invalid character in host' };
  }
  let hostPart: string;
  let portPart: string | null;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return { ok: false, message: 'invalid IPv6 address in host' };
    hostPart = authority.slice(0, close + 1);
    const rest = authority.slice(close + 1);
    if (rest === '') portPart = null;
    else if (rest.startsWith(':')) portPart = rest.slice(1);
    else return { ok: false, message: 'invalid IPv6 address in host' };
  } else {
    const colon = authority.indexOf(':');
    if (colon < 0) {
      hostPart = authority;
      portPart = null;
    } else {
      hostPart = authority.slice(0, colon);
      portPart = authority.slice(colon + 1);
    }
  }
  let port: number;
  if (portPart === null) {
    if (defaultPort === null) return { ok: false, message: 'port is required (host:port)' };
    port = defaultPort;
  } else {
    if (!PORT.test(portPart)) return { ok: false, message: 'port must be a number' };
    port = Number(portPart);
    if (port < 1 || port > 65535) return { ok: false, message: 'port out of range (1-65535)' };
  }
  const host = canonicalHost(hostPart);
  return host.ok ? { ok: true, host: host.host, port } : host;
}

/** `host[:port]` as sent in a Host header or URL: IPv6 bracketed, default port omitted. */
export function formatAuthority(scheme: 'http' | 'https', host: string, port: number): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return port === DEFAULT_PORT[scheme] ? h : `${h}:${port}`;
}
