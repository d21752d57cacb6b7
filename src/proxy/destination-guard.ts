/**
 * Destination guard: which IP addresses Airlock may open a connection to (SSRF defence).
 *
 * A host name is resolved ONCE, every address in the answer is classified, and the dial goes to a
 * checked IP literal, so a second lookup (DNS rebinding, TOCTOU) can never swap the destination.
 * Addresses are in their canonical form (src/net/address.ts) before any check: IPv6 spellings of an
 * IPv4 address are checked, and dialled, as that IPv4 address.
 *
 * `checkAddress`, plus a compiled `Guard` with a checked `resolve` and a `lookup` for `net.connect` /
 * undici's `connect.lookup`. See docs/destinations.md for what is refused and why.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { canonicalIp, familyOf, formatIp, inRange, parseIp, parseRange, type Ip, type IpRange } from '../net/address.js';
import { CLASS_LABEL, classify, classifyAddress, type AddressClass } from '../net/address-class.js';

export type { AddressClass };

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
  const allowRanges: IpRange[] = [];
  const exact = new Set<string>();
  for (const entry of opts.allow) {
    const e = parseRange(entry);
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

  const allowed = (ip: Ip): boolean => allowRanges.some((r) => inRange(ip, r));

  /** `port` null: the caller cannot know the port (a bare `lookup`), so own listeners are not matched. */
  const decide = (address: string, port: number | null): Verdict => {
    const ip = parseIp(address);
    if (ip === null) {
      const reason = typeof address === 'string' && address.includes('%') ? 'IPv6 zone ids are not allowed' : 'not an IP address';
      return { ok: false, code: 'not_ip', reason: `${JSON.stringify(address)}: ${reason}` };
    }
    const canon = formatIp(ip);
    const cls = classify(ip);
    if (port !== null && (!Number.isInteger(port) || port < 1 || port > 65535)) {
      return { ok: false, code: 'invalid_port', reason: `port ${port} out of range (1-65535)`, address: canon, class: cls };
    }
    const ok: Verdict = { ok: true, address: canon, family: familyOf(ip) };
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
