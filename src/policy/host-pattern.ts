/**
 * Host patterns of rules and policy settings (`api.internal`, `*.data.internal`, `*`), compiled to the
 * same canonical form as a request's host so the two compare as equals.
 */
import { isIP } from 'node:net';
import { canonicalHost } from '../request/host.js';
import type { HostPattern } from './types.js';

/** The compiled pattern, or why `raw` is not one. */
export function compileHost(raw: string): HostPattern | string {
  if (raw === '*') return { kind: 'any' };
  const wildcard = raw.startsWith('*.');
  const name = wildcard ? raw.slice(2) : raw;
  if (name.includes('*')) return `host pattern "${raw}": "*" is only allowed alone or as a leading "*." (e.g. "*.example.com")`;
  if (name === '' || /[\s/?#@\\%]/.test(name)) return `host pattern "${raw}" is not a host name`;
  const bracketed = name.startsWith('[') && name.endsWith(']');
  if (!bracketed && name.includes(':')) return `host pattern "${raw}" must not contain a port (use match.ports; write IPv6 addresses in brackets)`;
  if (bracketed && wildcard) return `host pattern "${raw}": an IPv6 address cannot have a wildcard`;
  const host = canonicalHost(name);
  if (!host.ok) return `host pattern "${raw}" is not a valid host name (${host.message})`;
  if (wildcard) {
    // The URL parser reads a numeric last label as IPv4 (and rewrites it); a wildcard needs a domain.
    if (/(?:^|\.)[0-9]+$/.test(name.replace(/\.$/, '')) || isIP(host.host) !== 0) return `host pattern "${raw}": a wildcard needs a domain name, not an address`;
    return { kind: 'suffix', suffix: host.host };
  }
  return { kind: 'exact', host: host.host };
}

/** Whether canonical `host` matches `h`. */
export function hostMatches(h: HostPattern, host: string): boolean {
  return h.kind === 'any' || (h.kind === 'exact' ? h.host === host : host.endsWith(`.${h.suffix}`));
}
