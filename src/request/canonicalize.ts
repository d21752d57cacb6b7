/**
 * Strict parsing of one HTTP request into the CanonicalRequest that policy evaluates and the
 * proxy forwards. Anything two parsers could read differently is refused, never guessed at.
 * Pure: no I/O, no clock.
 */

import type { CanonicalRequest, CompiledPolicy, Identity } from '../policy/types.js';
import { DEFAULT_PORT, canonicalHost, formatAuthority, parseAuthority } from './host.js';
import { inspectQuery } from '../inspect/query.js';
import { HeaderList } from './headers.js';
import { exceptionsFor } from '../policy/exceptions.js';
import { OVERRIDE_HEADERS, OVERRIDE_REFUSED, overrideField } from './method-override.js';
import { isRerouting } from './rerouting-headers.js';
import { canonicalPath } from './path.js';

export interface RawRequest {
  method: string;
  /** request-target as received: absolute-form URL (`http://host:port/p?q`), or origin-form (`/p?q`) when destination is set */
  target: string;
  /** Node-style flat [name, value, name, value, ...] exactly as received (req.rawHeaders) */
  rawHeaders: readonly string[];
  /**
   * Set for origin-form requests: inside a CONNECT tunnel (host/port from the CONNECT) or a reverse route (the route's upstream).
   * `host` as canonicalizeAuthority returns it (IPv6 without brackets); it is canonicalized again all the same.
   */
  destination?: { scheme: 'http' | 'https'; host: string; port: number };
  /**
   * Whether a Host header must name the same host:port as the target (or destination). Reverse
   * routes pass 'ignore': there the Host header names the proxy itself. Default 'must-match'.
   */
  hostHeader?: 'must-match' | 'ignore';
}

/** A refusal: 400, or 405 for a method never forwarded, or 414 for a path too long. */
export type CanonicalizeResult = { ok: true; request: CanonicalRequest } | { ok: false; message: string; status?: 405 | 414 };

/** Methods never forwarded: TRACE (and IIS's TRACK) echo the request back, credentials included. */
const NEVER_FORWARDED = new Set(['TRACE', 'TRACK']);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^[0-9]+$/;

/** Headers a request may carry at most once: two of them can be read two ways. */
const SINGLE = new Set(['host', 'content-length', 'transfer-encoding', 'proxy-authorization', 'authorization']);

/** Never forwarded: hop-by-hop headers (RFC 9110 §7.6.1) and the caller's proxy credentials. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  // `Expect: 100-continue` is answered by the proxy's own server; undici refuses to send it on.
  'expect',
]);

interface HeaderAliases {
  /** Inspected header names (plus the classification header) with `_` turned into `-`. */
  dashed: ReadonlySet<string>;
  /** Some inspected name itself has a `_`: then every request header name must be dashed to compare. */
  underscoreInRules: boolean;
}

// Policies are immutable once compiled, so the alias set is derived once per policy object.
const aliasCache = new WeakMap<CompiledPolicy, HeaderAliases>();

function aliasesOf(policy: CompiledPolicy): HeaderAliases {
  let a = aliasCache.get(policy);
  if (a === undefined) {
    const names = [...policy.inspectedHeaders];
    if (policy.classification !== null) names.push(policy.classification.header);
    a = {
      dashed: new Set(names.map((n) => n.replaceAll('_', '-'))),
      underscoreInRules: names.some((n) => n.includes('_')),
    };
    aliasCache.set(policy, a);
  }
  return a;
}

/**
 * The one canonical request for `raw`, or a short user-facing reason (sent back as a 400) why it
 * is ambiguous. `identity` is stored as given.
 */
export function canonicalize(raw: RawRequest, identity: Identity | null, policy: CompiledPolicy): CanonicalizeResult {
  const { method, target } = raw;
  if (!TOKEN.test(method)) return fail('invalid method');
  if (method === 'CONNECT') return fail('CONNECT cannot be canonicalized as a request');
  if (NEVER_FORWARDED.has(method.toUpperCase())) return { ok: false, status: 405, message: `${method} is never forwarded (it echoes the request back, credentials included)` };

  // --- target -------------------------------------------------------------------------------
  let scheme: 'http' | 'https';
  let host: string;
  let port: number;
  let rest: string; // path + query
  if (raw.destination !== undefined) {
    if (target.charCodeAt(0) !== 0x2f) return fail('request target must be a path (origin-form) here');
    const d = raw.destination;
    const h = canonicalHost(d.host.includes(':') ? `[${d.host}]` : d.host);
    if (!h.ok) return h;
    scheme = d.scheme;
    host = h.host;
    port = d.port;
    rest = target;
  } else {
    if (target === '*') return fail('asterisk-form request target is not supported');
    if (target.charCodeAt(0) === 0x2f) return fail('request target must be an absolute URL (http://host/path)');
    const sep = target.indexOf('://');
    if (sep < 0) return fail('request target is not an http(s) URL');
    const s = target.slice(0, sep).toLowerCase();
    if (s !== 'http' && s !== 'https') return fail('URL scheme must be http or https');
    scheme = s;
    let end = sep + 3;
    while (end < target.length) {
      const c = target.charCodeAt(end);
      if (c === 0x2f || c === 0x3f || c === 0x23) break; // '/', '?', '#'
      end++;
    }
    const authority = parseAuthority(target.slice(sep + 3, end), DEFAULT_PORT[scheme]);
    if (!authority.ok) return authority;
    host = authority.host;
    port = authority.port;
    rest = target.slice(end);
    // `http://host` and `http://host?q` have an empty path, which means `/` (RFC 9112 §3.2.2).
    if (rest === '' || rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  }
  if (rest.includes('#')) return fail('request target contains a fragment (#)');
  const exceptions = exceptionsFor(policy.exceptions, host);
  const q = rest.indexOf('?');
  const p = canonicalPath(q < 0 ? rest : rest.slice(0, q), exceptions.pathCharacters);
  if (!p.ok) return p;
  const query = q < 0 ? '' : rest.slice(q + 1);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return fail('query contains whitespace, a control or a non-ASCII character');
  }
  if (!exceptions.methodOverride && overrideField(query)) return fail(OVERRIDE_REFUSED('a _method query parameter'));
  const inspectedQuery = inspectQuery(query, policy.inspectedQuery);
  if (!inspectedQuery.ok) return inspectedQuery;

  // --- headers: one pass ----------------------------------------------------------------------
  const inspected = policy.inspectedHeaders;
  const classHeader = policy.classification?.header ?? null;
  const aliases = aliasesOf(policy);
  const rh = raw.rawHeaders;
  if (rh.length % 2 !== 0) return fail('malformed header list');
  const flat: string[] = new Array<string>(rh.length);
  // The headers read below, taken as the pass meets them (each may appear once: SINGLE or inspected).
  let te: string | undefined;
  let cl: string | undefined;
  let hostValue: string | undefined;
  let classValue: string | undefined;
  let connection = false;
  let override: string | undefined;
  for (let i = 0; i < rh.length; i += 2) {
    const rawName = rh[i] as string;
    const value = rh[i + 1] as string;
    if (!TOKEN.test(rawName)) return fail('invalid header name');
    if (hasControlChar(value)) return fail(`header ${rawName} contains a control character`);
    const name = rawName.toLowerCase();
    const isInspected = inspected.has(name) || name === classHeader;
    if (!isInspected && (aliases.underscoreInRules || name.includes('_'))) {
      if (aliases.dashed.has(name.replaceAll('_', '-'))) {
        return fail(`header ${rawName} is too similar to a header the policy inspects (_ versus -)`);
      }
    }
    if (SINGLE.has(name) || isInspected) {
      for (let j = 0; j < i; j += 2) if (flat[j] === name) return fail(`more than one ${rawName} header`);
      if (name === 'transfer-encoding') te = value;
      else if (name === 'content-length') cl = value;
      else if (name === 'host') hostValue = value;
      if (name === classHeader) classValue = value;
    }
    if (name === 'connection') connection = true;
    else if (OVERRIDE_HEADERS.has(name)) override ??= name;
    flat[i] = name;
    flat[i + 1] = value;
  }
  const headers = new HeaderList(flat);
  if (override !== undefined && !exceptions.methodOverride) return fail(OVERRIDE_REFUSED(`the ${override} header`));

  if (te !== undefined) {
    if (te.trim().toLowerCase() !== 'chunked') return fail('Transfer-Encoding must be exactly "chunked"');
    if (cl !== undefined) return fail('both Transfer-Encoding and Content-Length are set');
  }
  if (cl !== undefined && !DIGITS.test(cl.trim())) return fail('invalid Content-Length');

  if (connection) {
    for (const n of connectionTokens(headers.get('connection')!)) {
      if (n === 'host' || n === 'content-length' || inspected.has(n) || n === classHeader) {
        return fail(`Connection header may not name ${n}: it would be dropped before forwarding`);
      }
    }
  }

  if (hostValue !== undefined && raw.hostHeader !== 'ignore') {
    // Node hands header bytes over as latin1, so non-ASCII here is not the Unicode the client meant.
    if (hasNonAscii(hostValue)) return fail('Host header contains a non-ASCII character');
    const h = parseAuthority(hostValue.trim(), DEFAULT_PORT[scheme]);
    if (!h.ok) return fail(`invalid Host header: ${h.message}`);
    if (h.host !== host || h.port !== port) {
      return fail(`Host header (${formatAuthority(scheme, h.host, h.port)}) does not match the request target (${formatAuthority(scheme, host, port)})`);
    }
  }

  // --- classification -----------------------------------------------------------------------
  let classification: string | null = null;
  const cc = policy.classification;
  if (cc !== null) {
    const v = classValue;
    if (v === undefined) {
      classification = cc.missing;
    } else {
      const wanted = v.trim().toLowerCase();
      const level = cc.levels.find((l) => l.toLowerCase() === wanted);
      if (level === undefined) {
        return fail(`unknown data classification ${JSON.stringify(v.slice(0, 64))}; expected one of ${cc.levels.join(', ')}`);
      }
      classification = level;
    }
  }

  return {
    ok: true,
    request: {
      method,
      scheme,
      host,
      port,
      path: p.path,
      encodedPath: p.encodedPath,
      query,
      params: inspectedQuery.params,
      headers,
      identity,
      classification,
      exceptions,
    },
  };
}

/** Canonical host for a CONNECT authority-form target `host:port` (same host rules as above). */
export function canonicalizeAuthority(
  authority: string,
): { ok: true; host: string; port: number } | { ok: false; message: string } {
  return parseAuthority(authority, null);
}

/**
 * Headers to send upstream: canonical headers minus hop-by-hop ones (and any named in
 * Connection), minus proxy credentials, minus Airlock's own `x-airlock-*` control headers, minus
 * headers that re-route the request or assert who sent it (unless the host's exceptions forward
 * them), with `host` set to the canonical authority (default port omitted).
 */
export function upstreamHeaders(req: CanonicalRequest): string[] {
  const conn = req.headers.get('connection');
  const nominated = conn === undefined ? null : new Set(connectionTokens(conn));
  const kept = req.exceptions.forwardHeaders;
  // A flat [name, value, …] list: undici takes it as it is, without walking an object's keys again.
  const f = req.headers.flat;
  const out: string[] = [];
  for (let i = 0; i < f.length; i += 2) {
    const name = f[i]!;
    if (name === 'host' || NOT_FORWARDED.has(name) || name.startsWith('x-airlock-') || nominated?.has(name) === true) continue;
    if (isRerouting(name) && !kept.has(name)) continue;
    out.push(name, f[i + 1]!);
  }
  out.push('host', formatAuthority(req.scheme, req.host, req.port));
  return out;
}

function connectionTokens(value: string | readonly string[]): string[] {
  const joined = typeof value === 'string' ? value : value.join(',');
  const names: string[] = [];
  for (const t of joined.split(',')) {
    const n = t.trim().toLowerCase();
    if (n !== '') names.push(n);
  }
  return names;
}

/** Field values may hold HTAB and obs-text, never other controls (Node refuses them too; the CLI may not). */
export function hasControlChar(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

function hasNonAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return true;
  return false;
}

function fail(message: string): { ok: false; message: string } {
  return { ok: false, message };
}
