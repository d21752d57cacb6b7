/**
 * Destination guard: which IP addresses Airlock may open a connection to (SSRF defence).
 *
 * A host name is resolved ONCE, every address in the answer is classified, and the dial goes to a
 * checked IP literal, so a second lookup (DNS rebinding, TOCTOU) can never swap the destination.
 * Addresses are canonicalised before any check: IPv4-mapped (`::ffff:127.0.0.1`), IPv4-compatible
 * (`::127.0.0.1`) and NAT64 (`64:ff9b::7f00:1`) IPv6 spellings are checked as the IPv4 they embed.
 *
 * Pure classification (`canonicalIp`, `classifyAddress`, `checkAddress`) plus a compiled `Guard` with
 * a checked `resolve` and a `lookup` for `net.connect` / undici's `connect.lookup`. See
 * docs/destinations.md for what is refused and why.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';

export type AddressClass =
  | 'loopback'
  | 'link_local'
  | 'metadata'
  | 'unspecified'
  | 'private'
  | 'cgnat'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'ipv6_embedding'
  | 'public';

/** Stable machine-readable refusal codes (for audit events and metric labels). */
export type RefusalCode =
  /** The address's class is refused by default and `allow` does not cover it. */
  | 'destination_class'
  /** A cloud metadata address not listed exactly in `allow`. */
  | 'metadata'
  /** 0.0.0.0/8 or `::`: always refused (dialling it reaches this machine). */
  | 'unspecified'
  /** One of Airlock's own listeners: always refused. */
  | 'own_listener'
  /** Not an IP literal (or an IPv6 zone id, or a non-canonical resolver answer). */
  | 'not_ip'
  | 'invalid_port'
  | 'invalid_host'
  /** The name did not resolve (ENOTFOUND, EAI_AGAIN, timeout, empty answer): see `dnsCode`. */
  | 'dns_error';

export type Verdict =
  | { ok: true; address: string; family: 4 | 6 }
  | {
      ok: false;
      code: RefusalCode;
      reason: string;
      address?: string;
      class?: AddressClass;
      /** For `dns_error`: the resolver's error code (ENOTFOUND, EAI_AGAIN, ETIMEOUT, ENODATA). */
      dnsCode?: string;
    };

export type Refusal = Extract<Verdict, { ok: false }>;

export interface ResolvedAddress {
  address: string;
  family: number;
}

export interface GuardOptions {
  /**
   * CIDRs (or single IPs) that are allowed even though their class is refused by default, e.g.
   * ['10.0.0.0/8'] from the policy, or ['127.0.0.0/8'] in tests. A metadata address is only allowed
   * by an entry naming exactly that address; unspecified addresses and own listeners never are.
   */
  allow: readonly string[];
  /** Addresses+ports of Airlock's own listeners, always refused (even if allowed above). */
  ownListeners: readonly { host: string; port: number }[];
  /**
   * The machine's own interface addresses, used when an own listener is bound to a wildcard
   * (`0.0.0.0`, `::`) or a name. Defaults to `os.networkInterfaces()` read once at compile time.
   */
  localAddresses?: readonly string[];
  /** Resolver (tests inject one). Default: `dns.lookup(host, { all: true })` (getaddrinfo, /etc/hosts). */
  lookupImpl?: (hostname: string) => Promise<readonly ResolvedAddress[]>;
  /** Give up waiting for the resolver after this long (dnsCode ETIMEOUT). Default 5000 ms. */
  dnsTimeoutMs?: number;
}

export interface Guard {
  /** Decide one address (any spelling `canonicalIp` accepts) for a destination port. */
  check(ip: string, port: number): Verdict;
  /**
   * Resolve `host` once (or take the IP literal as is), check EVERY address, and return the first
   * one to dial. If ANY address is refused the whole name is refused: a DNS answer mixing public and
   * internal addresses is an attack (or a misconfiguration) either way, and refusing it means the
   * verdict never depends on which address a client or happy-eyeballs would have picked.
   */
  resolve(host: string, port: number): Promise<Verdict>;
  /**
   * `lookup` for `net.connect` / `tls.connect` / undici's `connect: { lookup }`: resolves once,
   * checks every address like `resolve`, and hands back only checked IP literals (`{ all: true }`
   * gets all of them — every one passed — otherwise the first of the requested family). Refusal is a
   * `DestinationRefusedError` (code EAIRLOCK_DESTINATION); resolver failures pass through with their
   * own code (ENOTFOUND, EAI_AGAIN, ETIMEOUT).
   * Two limits, both inherent to `lookup`: Node never calls it when the host is already an IP
   * literal, and it is not told the port, so it cannot refuse own listeners. Prefer `guardConnector`
   * (undici) or `resolve` + dial the literal (raw sockets), which cover both.
   */
  lookup: LookupFunction;
}

/** Error a guarded `lookup` fails with, so a connect error can be told apart from a network failure. */
export class DestinationRefusedError extends Error {
  readonly code = 'EAIRLOCK_DESTINATION';
  readonly hostname: string;
  readonly verdict: Refusal;
  constructor(hostname: string, verdict: Refusal) {
    super(`destination refused: ${verdict.reason}`);
    this.name = 'DestinationRefusedError';
    this.hostname = hostname;
    this.verdict = verdict;
  }
}

export const DESTINATION_REFUSED_CODE = 'EAIRLOCK_DESTINATION';

// ---------------------------------------------------------------------------------------------
// Parsing and canonical form

interface Ip {
  family: 4 | 6;
  /** The address as a 32- or 128-bit unsigned integer. */
  value: bigint;
}

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const DOTTED_QUAD = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;
const V4_BITS = 32n;
const V6_BITS = 128n;
const LOW32 = 0xffffffffn;
const MAPPED_PREFIX = 0xffffn; // ::ffff:0:0/96 >> 32
const NAT64_PREFIX = (0x64n << 80n) | (0xff9bn << 64n); // 64:ff9b::/96 >> 32

function parseV4(s: string): bigint | null {
  if (!DOTTED_QUAD.test(s)) return null;
  let v = 0n;
  for (const o of s.split('.')) v = (v << 8n) | BigInt(Number(o));
  return v;
}

/** 8 groups of a valid IPv6 literal (net.isIP already said yes), or null. */
function parseV6Groups(s: string): number[] | null {
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const toGroups = (part: string, allowV4Tail: boolean): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i] ?? '';
      if (p.includes('.')) {
        if (!allowV4Tail || i !== pieces.length - 1) return null;
        const v4 = parseV4(p);
        if (v4 === null) return null;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!HEX_GROUP.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  if (halves.length === 1) {
    const g = toGroups(s, true);
    return g !== null && g.length === 8 ? g : null;
  }
  const head = toGroups(halves[0] ?? '', false);
  const tail = toGroups(halves[1] ?? '', true);
  if (head === null || tail === null || head.length + tail.length > 7) return null;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** An IP literal exactly as written (no embedding unwrapped), or null. Zone ids are refused. */
function parseRaw(s: string): Ip | null {
  if (typeof s !== 'string' || s.includes('%')) return null;
  const kind = isIP(s);
  if (kind === 4) {
    const v = parseV4(s);
    return v === null ? null : { family: 4, value: v };
  }
  if (kind === 6) {
    const groups = parseV6Groups(s);
    if (groups === null) return null;
    let v = 0n;
    for (const g of groups) v = (v << 16n) | BigInt(g);
    return { family: 6, value: v };
  }
  return null;
}

/** IPv4-mapped, IPv4-compatible and well-known-prefix NAT64 IPv6 addresses → the IPv4 they embed. */
function unwrap(ip: Ip): Ip {
  if (ip.family === 4) return ip;
  const high = ip.value >> 32n;
  if (high === MAPPED_PREFIX || high === NAT64_PREFIX || (high === 0n && ip.value > 1n)) {
    return { family: 4, value: ip.value & LOW32 };
  }
  return ip;
}

function format(ip: Ip): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [v >> 24n, (v >> 16n) & 0xffn, (v >> 8n) & 0xffn, v & 0xffn].join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the first longest run of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function parseCanonical(address: string): Ip | null {
  const raw = parseRaw(address);
  return raw === null ? null : unwrap(raw);
}

/**
 * Canonical form of an IP literal (IPv4 dotted-quad; IPv6 compressed lower-case; IPv4-mapped/
 * compatible IPv6 → the IPv4 it embeds, also NAT64 64:ff9b::/96 → the IPv4), or null when not an IP.
 * Only strict literals count: `127.1`, `0x7f.0.0.1`, `0177.0.0.1`, `[::1]` and zone ids (`fe80::1%eth0`)
 * are null — the request canonicaliser turns URL spellings into dotted quads before they get here.
 */
export function canonicalIp(address: string): string | null {
  const ip = parseCanonical(address);
  return ip === null ? null : format(ip);
}

// ---------------------------------------------------------------------------------------------
// Classification

interface Range {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

interface ClassRange extends Range {
  cls: AddressClass;
}

function matches(r: Range, ip: Ip): boolean {
  if (r.family !== ip.family) return false;
  const shift = (ip.family === 4 ? V4_BITS : V6_BITS) - BigInt(r.prefix);
  return ip.value >> shift === r.base >> shift;
}

/** Special-purpose ranges (IANA registries, RFC 6890 and successors). Most specific match wins. */
const CLASS_TABLE: readonly [string, AddressClass][] = [
  // Cloud metadata / credential endpoints: only an exact allow entry opens them.
  ['169.254.169.254/32', 'metadata'], // AWS, GCP (metadata.google.internal), Azure, OCI, OpenStack, DO…
  ['169.254.170.2/32', 'metadata'], // AWS ECS task metadata / credentials
  ['169.254.170.23/32', 'metadata'], // AWS EKS Pod Identity agent
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['168.63.129.16/32', 'metadata'], // Azure WireServer (a public address, host-only service)
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['fd00:ec2::23/128', 'metadata'], // AWS EKS Pod Identity agent over IPv6

  // IPv4
  ['0.0.0.0/8', 'unspecified'], // "this network"; 0.0.0.0 dials the local host
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link_local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'reserved'], // TEST-NET-1
  ['192.88.99.0/24', 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking (also "fake-IP" DNS of some VPN clients)
  ['198.51.100.0/24', 'reserved'], // TEST-NET-2
  ['203.0.113.0/24', 'reserved'], // TEST-NET-3
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // class E
  ['255.255.255.255/32', 'broadcast'],

  // IPv6 (mapped, compatible and 64:ff9b::/96 never get here: they are checked as IPv4)
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0:0/96', 'ipv6_embedding'], // SIIT IPv4-translated
  ['64:ff9b:1::/48', 'ipv6_embedding'], // local-use NAT64 (RFC 8215)
  ['100::/64', 'reserved'], // discard-only
  ['2000::/3', 'public'], // global unicast, minus the blocks below
  ['2001::/23', 'reserved'], // IETF protocol assignments (benchmarking, ORCHID, …)
  ['2001::/32', 'ipv6_embedding'], // Teredo
  ['2001:db8::/32', 'reserved'], // documentation
  ['2002::/16', 'ipv6_embedding'], // 6to4
  ['3fff::/20', 'reserved'], // documentation (RFC 9637)
  ['5f00::/16', 'reserved'], // SRv6 SIDs (RFC 9602)
  ['fc00::/7', 'private'], // unique local
  ['fe80::/10', 'link_local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
];

/** A CIDR or single address as written by a person, or an error message. */
export type AllowEntry = { ok: true; range: Range; exact: string | null } | { ok: false; message: string };

const PREFIX = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Parse one `destinations.allow` entry: `10.0.0.0/8`, `fd00::/8`, `192.168.1.10`, `::1`. Refused:
 * host bits set (`10.0.0.1/8`: say which you mean), prefixes out of range, zone ids, and IPv6 ranges
 * that embed IPv4 (`::ffff:10.0.0.0/104`, `64:ff9b::/96`: those addresses are checked as the IPv4
 * they carry, so write the IPv4 range). A single address (or /32, /128) is an exact entry.
 */
export function parseAllowEntry(entry: string): AllowEntry {
  if (typeof entry !== 'string' || entry === '') return { ok: false, message: 'empty destination entry' };
  const slash = entry.indexOf('/');
  const addrPart = slash < 0 ? entry : entry.slice(0, slash);
  const raw = parseRaw(addrPart);
  if (raw === null) return { ok: false, message: `"${entry}" is not an IP address or CIDR` };
  const bits = raw.family === 4 ? 32 : 128;
  if (slash < 0) {
    const ip = unwrap(raw);
    return { ok: true, range: { family: ip.family, base: ip.value, prefix: ip.family === 4 ? 32 : 128 }, exact: format(ip) };
  }
  const prefixPart = entry.slice(slash + 1);
  if (!PREFIX.test(prefixPart) || Number(prefixPart) > bits) {
    return { ok: false, message: `"${entry}": prefix length must be 0-${bits}` };
  }
  const prefix = Number(prefixPart);
  if (unwrap(raw).family !== raw.family) {
    return {
      ok: false,
      message: `"${entry}": IPv4-mapped, IPv4-compatible and NAT64 addresses are checked as the IPv4 they embed; write the IPv4 range`,
    };
  }
  const hostBits = BigInt(bits - prefix);
  if ((raw.value & ((1n << hostBits) - 1n)) !== 0n) {
    const base = { family: raw.family, value: (raw.value >> hostBits) << hostBits };
    return { ok: false, message: `"${entry}" has host bits set; did you mean ${format(base)}/${prefix}?` };
  }
  return { ok: true, range: { family: raw.family, base: raw.value, prefix }, exact: prefix === bits ? format(raw) : null };
}

function compileRange(cidr: string): Range {
  const e = parseAllowEntry(cidr);
  if (!e.ok) throw new TypeError(e.message);
  return e.range;
}

const CLASS_RANGES: readonly ClassRange[] = CLASS_TABLE.map(([cidr, cls]) => ({ ...compileRange(cidr), cls })).sort(
  (a, b) => b.prefix - a.prefix,
);

function classify(ip: Ip): AddressClass {
  for (const r of CLASS_RANGES) if (matches(r, ip)) return r.cls;
  return ip.family === 4 ? 'public' : 'reserved'; // IPv6 outside 2000::/3 is not global unicast
}

/** Class of an IP address (any spelling `canonicalIp` accepts; throws TypeError when not an IP). */
export function classifyAddress(ip: string): AddressClass {
  const parsed = parseCanonical(ip);
  if (parsed === null) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  return classify(parsed);
}

const CLASS_LABEL: Record<AddressClass, string> = {
  loopback: 'a loopback address',
  link_local: 'a link-local address',
  metadata: 'a cloud metadata address',
  unspecified: 'an unspecified address',
  private: 'a private-network address',
  cgnat: 'a carrier-grade NAT address (100.64.0.0/10)',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved (special-purpose, not globally routable) address',
  ipv6_embedding: 'an IPv6 address embedding IPv4 (6to4, Teredo, NAT64/SIIT)',
  public: 'a public address',
};

// ---------------------------------------------------------------------------------------------
// Compiled guard

interface OwnPort {
  /** Listener bound to a wildcard or a name: every address of this machine counts. */
  anyLocal: boolean;
  addresses: Set<string>;
}

function defaultLocalAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

const defaultLookup = (hostname: string): Promise<readonly ResolvedAddress[]> => dnsLookup(hostname, { all: true });

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return p;
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(`DNS lookup timed out after ${ms} ms`), { code: 'ETIMEOUT' })), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function stripBrackets(host: string): string {
  return host.length > 2 && host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Compile options once (ranges, exact entries, own listeners) — what the proxy keeps per policy load. */
export function compileGuard(opts: GuardOptions): Guard {
  const allowRanges: Range[] = [];
  const exact = new Set<string>();
  for (const entry of opts.allow) {
    const e = parseAllowEntry(entry);
    if (!e.ok) throw new TypeError(`destinations.allow: ${e.message}`);
    allowRanges.push(e.range);
    if (e.exact !== null) exact.add(e.exact);
  }

  const local = new Set<string>();
  for (const a of opts.localAddresses ?? defaultLocalAddresses()) {
    const c = canonicalIp(a);
    if (c !== null) local.add(c);
  }
  const own = new Map<number, OwnPort>();
  for (const l of opts.ownListeners) {
    if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) throw new TypeError(`own listener port out of range: ${l.port}`);
    const entry = own.get(l.port) ?? { anyLocal: false, addresses: new Set<string>() };
    const host = canonicalIp(stripBrackets(l.host));
    if (host === null || classifyAddress(host) === 'unspecified') entry.anyLocal = true;
    else entry.addresses.add(host);
    own.set(l.port, entry);
  }

  const isOwnListener = (canon: string, cls: AddressClass, port: number): boolean => {
    const o = own.get(port);
    if (o === undefined) return false;
    // 0.0.0.0 / :: reach this machine whatever the listener is bound to.
    if (cls === 'unspecified' || o.addresses.has(canon)) return true;
    return o.anyLocal && (cls === 'loopback' || local.has(canon));
  };

  const allowed = (ip: Ip): boolean => allowRanges.some((r) => matches(r, ip));

  /** `port` null: the caller cannot know the port (a bare `lookup`), so own listeners are not matched. */
  const decide = (address: string, port: number | null): Verdict => {
    const ip = parseCanonical(address);
    if (ip === null) {
      const reason = typeof address === 'string' && address.includes('%') ? 'IPv6 zone ids are not allowed' : 'not an IP address';
      return { ok: false, code: 'not_ip', reason: `${JSON.stringify(address)}: ${reason}` };
    }
    const canon = format(ip);
    const cls = classify(ip);
    if (port !== null && (!Number.isInteger(port) || port < 1 || port > 65535)) {
      return { ok: false, code: 'invalid_port', reason: `port ${port} out of range (1-65535)`, address: canon, class: cls };
    }
    const ok: Verdict = { ok: true, address: canon, family: ip.family };
    if (port !== null && isOwnListener(canon, cls, port)) {
      return { ok: false, code: 'own_listener', reason: `${canon}:${port} is one of Airlock's own listeners`, address: canon, class: cls };
    }
    switch (cls) {
      case 'public':
        return ok;
      case 'unspecified':
        return { ok: false, code: 'unspecified', reason: `${canon} is ${CLASS_LABEL[cls]} (always refused)`, address: canon, class: cls };
      case 'metadata':
        if (exact.has(canon)) return ok;
        return {
          ok: false,
          code: 'metadata',
          reason: `${canon} is ${CLASS_LABEL[cls]} (refused unless destinations.allow lists this exact address)`,
          address: canon,
          class: cls,
        };
      default:
        if (allowed(ip)) return ok;
        return {
          ok: false,
          code: 'destination_class',
          reason: `${canon} is ${CLASS_LABEL[cls]} (refused unless destinations.allow covers it)`,
          address: canon,
          class: cls,
        };
    }
  };

  const check = (address: string, port: number): Verdict => decide(address, port);

  const lookupImpl = opts.lookupImpl ?? defaultLookup;
  const dnsTimeoutMs = opts.dnsTimeoutMs ?? 5000;

  /** Every address of `host`, all checked; or the refusal. */
  const resolveAll = async (host: string, port: number | null): Promise<{ ok: true; addresses: ResolvedAddress[] } | Refusal> => {
    if (typeof host !== 'string' || host === '') return { ok: false, code: 'invalid_host', reason: 'empty host' };
    const name = stripBrackets(host);
    if (name.includes('%')) return { ok: false, code: 'not_ip', reason: `${JSON.stringify(host)}: IPv6 zone ids are not allowed` };
    if (isIP(name) !== 0) {
      // An IP literal is its own answer: no lookup at all.
      const v = decide(name, port);
      return v.ok ? { ok: true, addresses: [{ address: v.address, family: v.family }] } : v;
    }
    let answers: readonly ResolvedAddress[];
    try {
      answers = await withTimeout(lookupImpl(name), dnsTimeoutMs);
    } catch (err) {
      const dnsCode = String((err as { code?: unknown }).code ?? 'EDNS');
      return { ok: false, code: 'dns_error', reason: `could not resolve ${name}: ${dnsCode}`, dnsCode };
    }
    if (!Array.isArray(answers) || answers.length === 0) {
      return { ok: false, code: 'dns_error', reason: `${name} has no addresses`, dnsCode: 'ENODATA' };
    }
    const out: ResolvedAddress[] = [];
    const seen = new Set<string>();
    for (const a of answers) {
      const v = decide(String(a?.address), port);
      if (!v.ok) return { ...v, reason: `${name} resolves to ${v.address ?? JSON.stringify(a?.address)}: ${v.reason}` };
      if (seen.has(v.address)) continue;
      seen.add(v.address);
      out.push({ address: v.address, family: v.family });
    }
    return { ok: true, addresses: out };
  };

  const resolve = async (host: string, port: number): Promise<Verdict> => {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return { ok: false, code: 'invalid_port', reason: `port ${port} out of range (1-65535)` };
    }
    const r = await resolveAll(host, port);
    if (!r.ok) return r;
    const first = r.addresses[0];
    if (first === undefined) return { ok: false, code: 'dns_error', reason: `${host} has no addresses`, dnsCode: 'ENODATA' };
    return { ok: true, address: first.address, family: first.family === 6 ? 6 : 4 };
  };

  type Callback = Parameters<LookupFunction>[2];
  const lookup = (hostname: string, options: unknown, callback?: Callback): void => {
    let cb = callback;
    let o: { family?: unknown; all?: unknown } = {};
    if (typeof options === 'function') cb = options as Callback;
    else if (typeof options === 'number') o = { family: options };
    else if (options !== null && typeof options === 'object') o = options;
    if (cb === undefined) throw new TypeError('lookup needs a callback');
    const done = cb;
    const fail = (err: Error): void => (done as (e: Error) => void)(err);
    const family = o.family === 4 || o.family === 'IPv4' ? 4 : o.family === 6 || o.family === 'IPv6' ? 6 : 0;
    // lookup is never told the port, so it cannot match own listeners (they are host AND port):
    // dial through `guardConnector` / `resolve`, which can.
    resolveAll(hostname, null).then(
      (r) => {
        if (!r.ok) {
          if (r.code === 'dns_error') {
            fail(Object.assign(new Error(r.reason), { code: r.dnsCode ?? 'ENOTFOUND', hostname }));
          } else fail(new DestinationRefusedError(hostname, r));
          return;
        }
        const usable = family === 0 ? r.addresses : r.addresses.filter((a) => a.family === family);
        const first = usable[0];
        if (first === undefined) {
          fail(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND', hostname }));
          return;
        }
        if (o.all === true) done(null, usable.map((a) => ({ address: a.address, family: a.family })));
        else done(null, first.address, first.family);
      },
      (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
    );
  };

  return { check, resolve, lookup: lookup as LookupFunction };
}

/** Decide one resolved address for a destination port (compiles `opts` each call: prefer `compileGuard`). */
export function checkAddress(ip: string, port: number, opts: GuardOptions): Verdict {
  return compileGuard(opts).check(ip, port);
}

/** What undici hands a connector (`buildConnector.Options`), structurally: no undici import here. */
export interface ConnectorOptions {
  hostname: string;
  protocol: string;
  /** '' when the URL has the scheme's default port. */
  port: string;
}

/**
 * Wrap an undici connector (`buildConnector({...})`) so every new upstream connection is decided
 * first: `guard.resolve(hostname, port)` (literals included, own listeners included), then the base
 * connector dials the checked IP literal — `host` (hence TLS SNI and certificate checks) is untouched.
 * A refusal fails the connection with a `DestinationRefusedError` (code EAIRLOCK_DESTINATION).
 *
 *   new Agent({ connect: guardConnector(guard, buildConnector({ timeout })) })
 */
export function guardConnector<O extends ConnectorOptions, S>(
  guard: Pick<Guard, 'resolve'> | (() => Pick<Guard, 'resolve'>),
  base: (options: O, callback: (...args: [null, S] | [Error, null]) => void) => void,
): (options: O, callback: (...args: [null, S] | [Error, null]) => void) => void {
  return (options, callback) => {
    const g = typeof guard === 'function' ? guard() : guard;
    const port = options.port === '' ? (options.protocol === 'https:' ? 443 : 80) : Number(options.port);
    g.resolve(options.hostname, port).then(
      (v) => {
        if (v.ok) {
          base({ ...options, hostname: v.address }, callback);
          return;
        }
        const err =
          v.code === 'dns_error'
            ? Object.assign(new Error(v.reason), { code: v.dnsCode ?? 'ENOTFOUND', hostname: options.hostname })
            : new DestinationRefusedError(options.hostname, v);
        callback(err, null);
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
    );
  };
}
