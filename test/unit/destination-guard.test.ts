import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, createServer, type AddressInfo, type LookupFunction, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Agent, buildConnector, request } from 'undici';
import { canonicalIp, parseRange as parseAllowEntry } from '../../src/net/address.js';
import { classifyAddress, type AddressClass } from '../../src/net/address-class.js';
import {
  checkAddress,
  compileGuard,
  DestinationRefusedError,
  guardConnector,
  type GuardOptions,
  type ResolvedAddress,
  type Verdict,
} from '../../src/proxy/destination-guard.js';

const NONE: GuardOptions = { allow: [], ownListeners: [], localAddresses: [] };

function opts(o: Partial<GuardOptions> = {}): GuardOptions {
  return { ...NONE, ...o };
}

function refused(v: Verdict, code?: string): Extract<Verdict, { ok: false }> {
  if (v.ok) assert.fail(`expected a refusal${code ? ` (${code})` : ''}, got ok ${v.address}`);
  if (code !== undefined) assert.equal(v.code, code, v.reason);
  return v;
}

function allowed(v: Verdict, address?: string): Extract<Verdict, { ok: true }> {
  if (!v.ok) assert.fail(`expected ok, got ${v.code}: ${v.reason}`);
  if (address !== undefined) assert.equal(v.address, address);
  return v;
}

/** A resolver that answers from a table and counts its calls. */
function fakeDns(table: Record<string, readonly ResolvedAddress[] | Error>) {
  const calls: string[] = [];
  const lookupImpl = async (host: string): Promise<readonly ResolvedAddress[]> => {
    calls.push(host);
    const a = table[host];
    if (a === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    if (a instanceof Error) throw a;
    return a;
  };
  return { calls, lookupImpl };
}

const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

describe('canonicalIp', () => {
  const table: [input: string, canonical: string | null][] = [
    // IPv4: only strict dotted quads
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['127.1', null], // shorthand: the request canonicaliser resolves URL spellings earlier
    ['0x7f.0.0.1', null],
    ['0177.0.0.1', null],
    ['01.2.3.4', null],
    ['2130706433', null],
    ['127.0.0.1.', null],
    [' 127.0.0.1', null],
    ['127.0.0.1 ', null],
    ['1.2.3.256', null],
    ['1.2.3', null],
    ['localhost', null],
    ['', null],
    // IPv6: lower case, RFC 5952 compression
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0::0:1', '::1'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['FE80::1', 'fe80::1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1::', '1::'],
    ['fd00:EC2:0:0:0:0:0:254', 'fd00:ec2::254'],
    // IPv4-mapped → the IPv4
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['::FFFF:7F00:1', '127.0.0.1'],
    ['0:0:0:0:0:ffff:7f00:1', '127.0.0.1'],
    ['0:0:0:0:0:ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:a9fe:a9fe', '169.254.169.254'],
    ['::ffff:8.8.8.8', '8.8.8.8'],
    // IPv4-compatible (deprecated) → the IPv4, but :: and ::1 stay themselves
    ['::127.0.0.1', '127.0.0.1'],
    ['::7f00:1', '127.0.0.1'],
    ['::2', '0.0.0.2'],
    // NAT64 well-known prefix → the IPv4
    ['64:ff9b::7f00:1', '127.0.0.1'],
    ['64:ff9b::127.0.0.1', '127.0.0.1'],
    ['64:FF9B::A9FE:A9FE', '169.254.169.254'],
    ['64:ff9b:0:0:0:0:808:808', '8.8.8.8'],
    // other embeddings are not unwrapped (they are classified ipv6_embedding)
    ['64:ff9b:1::a00:1', '64:ff9b:1::a00:1'],
    ['::ffff:0:7f00:1', '::ffff:0:7f00:1'],
    ['2002:7f00:1::', '2002:7f00:1::'],
    // not IP literals
    ['[::1]', null],
    ['fe80::1%eth0', null],
    ['::1%1', null],
    ['::ffff:127.0.0.01', null],
    ['1::2::3', null],
    [':::1', null],
    ['12345::1', null],
    ['1:2:3:4:5:6:7:8:9', null],
    ['1::2:3:4:5:6:7:8', null],
    ['g::1', null],
  ];
  for (const [input, expected] of table) {
    it(`${JSON.stringify(input)} → ${expected}`, () => assert.equal(canonicalIp(input), expected));
  }

  it('is idempotent on its own output', () => {
    for (const [input] of table) {
      const c = canonicalIp(input);
      if (c !== null) assert.equal(canonicalIp(c), c, input);
    }
  });
});

describe('classifyAddress', () => {
  const table: [ip: string, cls: AddressClass][] = [
    // unspecified / "this network"
    ['0.0.0.0', 'unspecified'],
    ['0.255.255.255', 'unspecified'],
    ['1.0.0.0', 'public'],
    ['::', 'unspecified'],
    ['::2', 'unspecified'], // IPv4-compatible 0.0.0.2
    // private, with boundaries
    ['9.255.255.255', 'public'],
    ['10.0.0.0', 'private'],
    ['10.255.255.255', 'private'],
    ['11.0.0.0', 'public'],
    ['172.15.255.255', 'public'],
    ['172.16.0.0', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.0', 'public'],
    ['192.167.255.255', 'public'],
    ['192.168.0.0', 'private'],
    ['192.168.255.255', 'private'],
    ['192.169.0.0', 'public'],
    ['::ffff:10.1.2.3', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
    ['fec0::1', 'private'], // deprecated site-local
    // CGNAT
    ['100.63.255.255', 'public'],
    ['100.64.0.0', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['100.128.0.0', 'public'],
    // loopback
    ['126.255.255.255', 'public'],
    ['127.0.0.0', 'loopback'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.255', 'loopback'],
    ['128.0.0.0', 'public'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    // link-local and metadata
    ['169.253.255.255', 'public'],
    ['169.254.0.0', 'link_local'],
    ['169.254.169.253', 'link_local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.169.255', 'link_local'],
    ['169.254.170.2', 'metadata'],
    ['169.254.170.23', 'metadata'],
    ['169.254.255.255', 'link_local'],
    ['169.255.0.0', 'public'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['100.100.100.201', 'cgnat'],
    ['168.63.129.16', 'metadata'],
    ['168.63.129.17', 'public'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2::23', 'metadata'],
    ['fd00:ec2::253', 'private'],
    ['fe80::1', 'link_local'],
    ['FE80::1', 'link_local'],
    ['febf:ffff::1', 'link_local'],
    // multicast / broadcast
    ['223.255.255.255', 'public'],
    ['224.0.0.0', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['ff02::2', 'multicast'],
    ['ff05::1:3', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    // reserved
    ['192.0.0.0', 'reserved'],
    ['192.0.0.255', 'reserved'],
    ['192.0.1.0', 'public'],
    ['192.0.2.1', 'reserved'],
    ['192.0.3.0', 'public'],
    ['192.88.99.1', 'reserved'],
    ['198.17.255.255', 'public'],
    ['198.18.0.0', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.20.0.0', 'public'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['240.0.0.0', 'reserved'],
    ['255.255.255.254', 'reserved'],
    ['100::1', 'reserved'],
    ['1fff:ffff::1', 'reserved'], // below 2000::/3
    ['4000::1', 'reserved'], // above 2000::/3
    ['fe7f::1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['2001:2::1', 'reserved'], // benchmarking
    ['2001:1ff:ffff::1', 'reserved'], // last of 2001::/23
    ['3fff::1', 'reserved'],
    ['3fff:fff::1', 'reserved'],
    ['5f00::1', 'reserved'],
    // IPv6 embeddings of IPv4
    ['2002:7f00:1::', 'ipv6_embedding'], // 6to4 of 127.0.0.1
    ['2002:c000:204::1', 'ipv6_embedding'],
    ['2001::1', 'ipv6_embedding'], // Teredo
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'ipv6_embedding'],
    ['64:ff9b:1::a00:1', 'ipv6_embedding'], // local-use NAT64
    ['::ffff:0:7f00:1', 'ipv6_embedding'], // SIIT
    // public
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::808:808', 'public'],
    ['2000::', 'public'],
    ['2001:200::1', 'public'], // first block after 2001::/23
    ['2606:4700:4700::1111', 'public'],
    ['2a00:1450:4001::1', 'public'],
    ['3fff:1000::1', 'public'],
  ];
  for (const [ip, cls] of table) {
    it(`${ip} is ${cls}`, () => assert.equal(classifyAddress(ip), cls));
  }

  it('throws on something that is not an IP', () => {
    assert.throws(() => classifyAddress('localhost'), TypeError);
    assert.throws(() => classifyAddress('127.1'), TypeError);
    assert.throws(() => classifyAddress('fe80::1%eth0'), TypeError);
  });
});

describe('checkAddress defaults', () => {
  const refusedByDefault: [ip: string, code: string][] = [
    ['127.0.0.1', 'destination_class'],
    ['::1', 'destination_class'],
    ['::ffff:127.0.0.1', 'destination_class'],
    ['64:ff9b::7f00:1', 'destination_class'],
    ['169.254.1.1', 'destination_class'],
    ['fe80::1', 'destination_class'],
    ['169.254.169.254', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['10.1.2.3', 'destination_class'],
    ['172.16.0.1', 'destination_class'],
    ['192.168.1.1', 'destination_class'],
    ['fd00::1', 'destination_class'],
    ['100.64.0.1', 'destination_class'],
    ['224.0.0.1', 'destination_class'],
    ['ff02::1', 'destination_class'],
    ['255.255.255.255', 'destination_class'],
    ['240.0.0.1', 'destination_class'],
    ['198.18.0.1', 'destination_class'],
    ['2002:7f00:1::', 'destination_class'],
    ['2001::1', 'destination_class'],
  ];
  for (const [ip, code] of refusedByDefault) {
    it(`refuses ${ip} (${code})`, () => {
      const v = refused(checkAddress(ip, 443, NONE), code);
      assert.equal(v.address, canonicalIp(ip));
      assert.equal(v.class, classifyAddress(ip));
      assert.ok(v.reason.includes(v.address ?? '?'), v.reason);
    });
  }

  it('allows public addresses, returning the canonical address and family', () => {
    assert.deepEqual(checkAddress('8.8.8.8', 443, NONE), { ok: true, address: '8.8.8.8', family: 4 });
    assert.deepEqual(checkAddress('::ffff:8.8.8.8', 443, NONE), { ok: true, address: '8.8.8.8', family: 4 });
    assert.deepEqual(checkAddress('64:ff9b::808:808', 443, NONE), { ok: true, address: '8.8.8.8', family: 4 });
    assert.deepEqual(checkAddress('2606:4700:4700:0:0:0:0:1111', 443, NONE), {
      ok: true,
      address: '2606:4700:4700::1111',
      family: 6,
    });
  });

  it('refuses what is not an IP literal, and zone ids', () => {
    refused(checkAddress('localhost', 80, NONE), 'not_ip');
    refused(checkAddress('127.1', 80, NONE), 'not_ip');
    const z = refused(checkAddress('fe80::1%eth0', 80, NONE), 'not_ip');
    assert.match(z.reason, /zone id/);
  });

  it('refuses ports out of range', () => {
    refused(checkAddress('8.8.8.8', 0, NONE), 'invalid_port');
    refused(checkAddress('8.8.8.8', 65536, NONE), 'invalid_port');
    refused(checkAddress('8.8.8.8', 1.5, NONE), 'invalid_port');
    allowed(checkAddress('8.8.8.8', 65535, NONE));
  });

  it('says how to allow a refused class in the reason', () => {
    assert.match(refused(checkAddress('10.0.0.1', 80, NONE)).reason, /destinations\.allow/);
    assert.match(refused(checkAddress('169.254.169.254', 80, NONE)).reason, /exact address/);
    assert.match(refused(checkAddress('0.0.0.0', 80, NONE)).reason, /always refused/);
  });
});

describe('allow list', () => {
  it('a CIDR opens its range only', () => {
    const g = compileGuard(opts({ allow: ['10.0.0.0/8'] }));
    allowed(g.check('10.0.0.0', 80));
    allowed(g.check('10.255.255.255', 80));
    allowed(g.check('::ffff:10.1.2.3', 80), '10.1.2.3');
    refused(g.check('172.16.0.1', 80), 'destination_class');
    refused(g.check('127.0.0.1', 80), 'destination_class');
  });

  it('loopback in tests: 127.0.0.0/8 and ::1, whatever the spelling', () => {
    const g = compileGuard(opts({ allow: ['127.0.0.0/8', '::1'] }));
    allowed(g.check('127.0.0.1', 80), '127.0.0.1');
    allowed(g.check('127.9.9.9', 80));
    allowed(g.check('::ffff:7f00:1', 80), '127.0.0.1');
    assert.deepEqual(g.check('0:0:0:0:0:0:0:1', 80), { ok: true, address: '::1', family: 6 });
    refused(g.check('169.254.169.254', 80), 'metadata');
  });

  it('a broad CIDR never opens a metadata address; an exact entry does', () => {
    const broad = compileGuard(opts({ allow: ['169.254.0.0/16', 'fd00::/8', '100.64.0.0/10', '168.63.0.0/16'] }));
    allowed(broad.check('169.254.1.1', 80));
    refused(broad.check('169.254.169.254', 80), 'metadata');
    refused(broad.check('169.254.170.2', 80), 'metadata');
    refused(broad.check('fd00:ec2::254', 80), 'metadata');
    refused(broad.check('100.100.100.200', 80), 'metadata');
    refused(broad.check('168.63.129.16', 80), 'metadata');
    allowed(broad.check('fd00:ec2::253', 80));

    for (const entry of ['169.254.169.254', '169.254.169.254/32', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe']) {
      const exact = compileGuard(opts({ allow: [entry] }));
      allowed(exact.check('169.254.169.254', 80), '169.254.169.254');
      allowed(exact.check('::ffff:169.254.169.254', 80), '169.254.169.254');
      refused(exact.check('169.254.170.2', 80), 'metadata');
      refused(exact.check('169.254.1.1', 80), 'destination_class');
    }
    allowed(compileGuard(opts({ allow: ['fd00:ec2:0::254/128'] })).check('fd00:ec2::254', 80));
  });

  it('everything (0.0.0.0/0, ::/0) still refuses metadata, unspecified and own listeners', () => {
    const g = compileGuard(opts({ allow: ['0.0.0.0/0', '::/0'], ownListeners: [{ host: '127.0.0.1', port: 8080 }] }));
    for (const ip of ['10.0.0.1', '127.0.0.1', '::1', 'fe80::1', '224.0.0.1', '255.255.255.255', '240.0.0.1', '2002::1']) {
      allowed(g.check(ip, 80));
    }
    refused(g.check('169.254.169.254', 80), 'metadata');
    refused(g.check('fd00:ec2::254', 80), 'metadata');
    refused(g.check('0.0.0.0', 80), 'unspecified');
    refused(g.check('0.1.2.3', 80), 'unspecified');
    refused(g.check('::', 80), 'unspecified');
    refused(g.check('127.0.0.1', 8080), 'own_listener');
  });

  it('unspecified addresses cannot be allowed even exactly', () => {
    const g = compileGuard(opts({ allow: ['0.0.0.0', '::', '0.0.0.0/8'] }));
    refused(g.check('0.0.0.0', 80), 'unspecified');
    refused(g.check('::', 80), 'unspecified');
    refused(g.check('::ffff:0.0.0.0', 80), 'unspecified');
  });

  it('IPv6 embeddings can be allowed explicitly', () => {
    const g = compileGuard(opts({ allow: ['2002::/16'] }));
    allowed(g.check('2002:c000:204::1', 80));
    refused(g.check('2001::1', 80), 'destination_class');
  });

  const bad: [entry: string, message: RegExp][] = [
    ['10.0.0.1/8', /host bits set; did you mean 10\.0\.0\.0\/8/],
    ['fd00::1/8', /did you mean fd00::\/8/],
    ['10.0.0.0/33', /prefix length must be 0-32/],
    ['fd00::/129', /prefix length must be 0-128/],
    ['10.0.0.0/', /prefix length/],
    ['10.0.0.0/08', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/8/8', /prefix length/],
    ['::ffff:10.0.0.0/104', /write the IPv4 range/],
    ['64:ff9b::/96', /write the IPv4 range/],
    ['10/8', /not an IP address/],
    ['example.com', /not an IP address/],
    ['fe80::%eth0/10', /not an IP address/],
    ['[::1]', /not an IP address/],
    ['', /empty/],
  ];
  for (const [entry, message] of bad) {
    it(`rejects allow entry ${JSON.stringify(entry)}`, () => {
      const e = parseAllowEntry(entry);
      if (e.ok) assert.fail('should be rejected');
      assert.match(e.message, message);
      assert.throws(() => compileGuard(opts({ allow: [entry] })), (err: Error) => err instanceof TypeError && message.test(err.message));
    });
  }

  it('parses exact entries to their canonical address', () => {
    const cases: [string, string | null][] = [
      ['10.0.0.0/8', null],
      ['10.0.0.1', '10.0.0.1'],
      ['10.0.0.1/32', '10.0.0.1'],
      ['::1', '::1'],
      ['::1/128', '::1'],
      ['::ffff:10.0.0.1', '10.0.0.1'],
      ['FD00:0::1', 'fd00::1'],
      ['0.0.0.0/0', null],
    ];
    for (const [entry, exact] of cases) {
      const e = parseAllowEntry(entry);
      if (!e.ok) assert.fail(`${entry}: ${e.message}`);
      assert.equal(e.exact, exact, entry);
    }
  });
});

describe('own listeners', () => {
  const loopback = ['127.0.0.0/8', '::1'];

  it('a listener on 127.0.0.1:8080 is refused even with loopback allowed; other ports are not', () => {
    const g = compileGuard(opts({ allow: loopback, ownListeners: [{ host: '127.0.0.1', port: 8080 }] }));
    const v = refused(g.check('127.0.0.1', 8080), 'own_listener');
    assert.match(v.reason, /127\.0\.0\.1:8080 is one of Airlock's own listeners/);
    refused(g.check('::ffff:127.0.0.1', 8080), 'own_listener');
    refused(g.check('64:ff9b::7f00:1', 8080), 'own_listener');
    refused(g.check('0.0.0.0', 8080), 'own_listener'); // 0.0.0.0 dials this machine
    allowed(g.check('127.0.0.1', 9999));
    allowed(g.check('127.0.0.2', 8080)); // bound to 127.0.0.1 only: another loopback address is another socket
  });

  it('an exact allow entry does not open an own listener', () => {
    const g = compileGuard(opts({ allow: ['127.0.0.1'], ownListeners: [{ host: '127.0.0.1', port: 8080 }] }));
    refused(g.check('127.0.0.1', 8080), 'own_listener');
    allowed(g.check('127.0.0.1', 8081));
  });

  it('a wildcard listener covers loopback and every local interface address on its port', () => {
    for (const host of ['::', '0.0.0.0', '[::]', 'localhost', '']) {
      const g = compileGuard({
        allow: ['0.0.0.0/0', '::/0'],
        ownListeners: [{ host, port: 8080 }],
        localAddresses: ['10.0.0.5', 'fe80::abcd', '203.0.113.50'],
      });
      for (const ip of ['127.0.0.1', '127.0.0.9', '::1', '10.0.0.5', '::ffff:10.0.0.5', 'fe80::abcd', '203.0.113.50']) {
        refused(g.check(ip, 8080), 'own_listener');
      }
      allowed(g.check('10.0.0.6', 8080));
      allowed(g.check('10.0.0.5', 8081));
      allowed(g.check('8.8.8.8', 8080));
    }
  });

  it('public addresses of this machine are own listeners too (wildcard bind)', () => {
    const g = compileGuard({ allow: [], ownListeners: [{ host: '::', port: 443 }], localAddresses: ['8.8.4.4'] });
    refused(g.check('8.8.4.4', 443), 'own_listener');
    allowed(g.check('8.8.4.4', 80));
  });

  it('defaults localAddresses to this machine\'s interfaces', () => {
    const g = compileGuard({ allow: loopback, ownListeners: [{ host: '0.0.0.0', port: 8080 }] });
    refused(g.check('127.0.0.1', 8080), 'own_listener');
  });

  it('rejects a listener port out of range', () => {
    assert.throws(() => compileGuard(opts({ ownListeners: [{ host: '127.0.0.1', port: 0 }] })), TypeError);
  });
});

describe('resolve', () => {
  it('refuses localhost by default (real dns.lookup)', async () => {
    const v = refused(await compileGuard(NONE).resolve('localhost', 80), 'destination_class');
    assert.equal(v.class, 'loopback');
    assert.match(v.reason, /^localhost resolves to /);
  });

  it('allows localhost with 127.0.0.0/8 and ::1 allowed (real dns.lookup)', async () => {
    const v = allowed(await compileGuard(opts({ allow: ['127.0.0.0/8', '::1'] })).resolve('localhost', 80));
    assert.ok(['127.0.0.1', '::1'].includes(v.address), v.address);
  });

  it('refuses shorthand spellings that the system resolver would accept', async () => {
    // getaddrinfo turns `127.1` into 127.0.0.1; whatever it does, it must not be allowed.
    refused(await compileGuard(NONE).resolve('127.1', 80));
  });

  it('reports resolver failures as dns_error with the resolver code', async () => {
    const v = refused(await compileGuard(NONE).resolve('no-such-host.invalid', 80), 'dns_error');
    assert.ok(v.dnsCode === 'ENOTFOUND' || v.dnsCode === 'EAI_AGAIN', v.dnsCode);
  });

  it('takes IP literals as they are, without a lookup', async () => {
    const dns = fakeDns({});
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    refused(await g.resolve('127.0.0.1', 80), 'destination_class');
    refused(await g.resolve('[::1]', 80), 'destination_class');
    refused(await g.resolve('::ffff:169.254.169.254', 80), 'metadata');
    assert.deepEqual(await g.resolve('8.8.8.8', 443), { ok: true, address: '8.8.8.8', family: 4 });
    assert.deepEqual(await g.resolve('[2606:4700:4700::1111]', 443), { ok: true, address: '2606:4700:4700::1111', family: 6 });
    refused(await g.resolve('fe80::1%eth0', 80), 'not_ip');
    refused(await g.resolve('', 80), 'invalid_host');
    refused(await g.resolve('example.com', 0), 'invalid_port');
    assert.deepEqual(dns.calls, []);
  });

  it('refuses a name whose answer mixes public and internal addresses, in either order', async () => {
    const dns = fakeDns({
      'mixed.test': [v4('8.8.8.8'), v4('10.0.0.1')],
      'mixed-rev.test': [v6('fd00::1'), v4('8.8.8.8')],
      'mixed-meta.test': [v4('1.1.1.1'), v6('::ffff:169.254.169.254')],
    });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    const a = refused(await g.resolve('mixed.test', 443), 'destination_class');
    assert.equal(a.address, '10.0.0.1');
    assert.match(a.reason, /^mixed\.test resolves to 10\.0\.0\.1: /);
    refused(await g.resolve('mixed-rev.test', 443), 'destination_class');
    const m = refused(await g.resolve('mixed-meta.test', 443), 'metadata');
    assert.equal(m.address, '169.254.169.254');
    assert.deepEqual(dns.calls, ['mixed.test', 'mixed-rev.test', 'mixed-meta.test']); // one lookup each
  });

  it('allows a mixed answer once the internal part is allowed, dialling the first address', async () => {
    const dns = fakeDns({ 'mixed.test': [v4('8.8.8.8'), v4('10.0.0.1')] });
    const g = compileGuard(opts({ allow: ['10.0.0.0/8'], lookupImpl: dns.lookupImpl }));
    assert.deepEqual(await g.resolve('mixed.test', 443), { ok: true, address: '8.8.8.8', family: 4 });
  });

  it('canonicalises answers (mapped, upper case) and dedupes them', async () => {
    const dns = fakeDns({ 'a.test': [v6('::FFFF:8.8.8.8'), v4('8.8.8.8')], 'b.test': [v6('2606:4700:4700:0::1111')] });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    assert.deepEqual(await g.resolve('a.test', 443), { ok: true, address: '8.8.8.8', family: 4 });
    assert.deepEqual(await g.resolve('b.test', 443), { ok: true, address: '2606:4700:4700::1111', family: 6 });
  });

  it('refuses junk and empty answers', async () => {
    const dns = fakeDns({ 'junk.test': [v4('8.8.8.8'), v4('127.1')], 'empty.test': [], 'zone.test': [v6('fe80::1%eth0')] });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    refused(await g.resolve('junk.test', 443), 'not_ip');
    assert.equal(refused(await g.resolve('empty.test', 443), 'dns_error').dnsCode, 'ENODATA');
    refused(await g.resolve('zone.test', 443), 'not_ip');
  });

  it('passes resolver error codes through', async () => {
    const dns = fakeDns({ 'again.test': Object.assign(new Error('getaddrinfo EAI_AGAIN again.test'), { code: 'EAI_AGAIN' }) });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    assert.equal(refused(await g.resolve('again.test', 443), 'dns_error').dnsCode, 'EAI_AGAIN');
    assert.equal(refused(await g.resolve('missing.test', 443), 'dns_error').dnsCode, 'ENOTFOUND');
  });

  it('gives up on a resolver that hangs', async () => {
    const g = compileGuard(opts({ lookupImpl: () => new Promise(() => {}), dnsTimeoutMs: 20 }));
    const v = refused(await g.resolve('slow.test', 443), 'dns_error');
    assert.equal(v.dnsCode, 'ETIMEOUT');
  });

  it('refuses a name that resolves to an own listener (host AND port)', async () => {
    const dns = fakeDns({ 'airlock.internal': [v4('127.0.0.1')] });
    const g = compileGuard(opts({ allow: ['127.0.0.0/8'], ownListeners: [{ host: '127.0.0.1', port: 8080 }], lookupImpl: dns.lookupImpl }));
    refused(await g.resolve('airlock.internal', 8080), 'own_listener');
    allowed(await g.resolve('airlock.internal', 9999), '127.0.0.1');
  });

  it('resolves once: a rebinding resolver cannot change a verdict already given', async () => {
    let n = 0;
    const g = compileGuard(
      opts({
        lookupImpl: async () => (n++ === 0 ? [v4('8.8.8.8')] : [v4('127.0.0.1')]),
      }),
    );
    assert.deepEqual(await g.resolve('rebind.test', 80), { ok: true, address: '8.8.8.8', family: 4 });
    assert.equal(n, 1);
    refused(await g.resolve('rebind.test', 80)); // the next decision sees the next answer, and checks it
    assert.equal(n, 2);
  });
});

describe('lookup', () => {
  let server: Server;
  let port: number;
  const accepted: string[] = [];

  before(async () => {
    server = createServer((s) => {
      accepted.push(String(s.remoteAddress));
      s.on('error', () => {}); // the client hangs up as soon as it is connected
      s.end('hi');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  function dial(host: string, lookup: LookupFunction): Promise<{ ok: true } | { ok: false; err: NodeJS.ErrnoException }> {
    return new Promise((resolve) => {
      const s = netConnect({ host, port, lookup });
      s.once('connect', () => {
        s.destroy();
        resolve({ ok: true });
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, err }));
    });
  }

  it('lets net.connect reach a local server when loopback is allowed (real dns.lookup)', async () => {
    const g = compileGuard(opts({ allow: ['127.0.0.0/8', '::1'] }));
    const r = await dial('localhost', g.lookup);
    assert.equal(r.ok, true, r.ok ? '' : r.err.message);
  });

  it('fails net.connect with EAIRLOCK_DESTINATION when loopback is not allowed', async () => {
    const before = accepted.length;
    const r = await dial('localhost', compileGuard(NONE).lookup);
    if (r.ok) assert.fail('should not connect');
    assert.equal(r.err.code, 'EAIRLOCK_DESTINATION');
    assert.ok(r.err instanceof DestinationRefusedError);
    assert.equal(r.err.verdict.class, 'loopback');
    assert.match(r.err.message, /^destination refused: localhost resolves to /);
    assert.equal(accepted.length, before, 'no connection reached the server');
  });

  it('dials the checked address: one lookup per connection', async () => {
    const dns = fakeDns({ 'upstream.test': [v4('127.0.0.1')] });
    const g = compileGuard(opts({ allow: ['127.0.0.0/8'], lookupImpl: dns.lookupImpl }));
    const r = await dial('upstream.test', g.lookup);
    assert.equal(r.ok, true);
    assert.deepEqual(dns.calls, ['upstream.test']);
  });

  it('passes resolver failures through with their own code', async () => {
    const r = await dial('missing.test', compileGuard(opts({ lookupImpl: fakeDns({}).lookupImpl })).lookup);
    if (r.ok) assert.fail('should not connect');
    assert.equal(r.err.code, 'ENOTFOUND');
  });

  it('supports the all / family / legacy call shapes', async () => {
    const dns = fakeDns({ 'dual.test': [v6('2606:4700:4700::1111'), v4('8.8.8.8'), v6('::ffff:8.8.8.8')] });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    const call = (options: unknown): Promise<unknown[]> =>
      new Promise((resolve) => {
        const cb = (...args: unknown[]): void => resolve(args);
        if (options === undefined) (g.lookup as unknown as (h: string, cb: unknown) => void)('dual.test', cb);
        else (g.lookup as unknown as (h: string, o: unknown, cb: unknown) => void)('dual.test', options, cb);
      });
    assert.deepEqual(await call({ all: true }), [
      null,
      [
        { address: '2606:4700:4700::1111', family: 6 },
        { address: '8.8.8.8', family: 4 },
      ],
    ]);
    assert.deepEqual(await call({}), [null, '2606:4700:4700::1111', 6]);
    assert.deepEqual(await call({ family: 4 }), [null, '8.8.8.8', 4]);
    assert.deepEqual(await call({ family: 4, all: true }), [null, [{ address: '8.8.8.8', family: 4 }]]);
    assert.deepEqual(await call(6), [null, '2606:4700:4700::1111', 6]);
    assert.deepEqual(await call(undefined), [null, '2606:4700:4700::1111', 6]);

    const v4only = compileGuard(opts({ lookupImpl: fakeDns({ 'dual.test': [v4('8.8.8.8')] }).lookupImpl }));
    const [err] = await new Promise<unknown[]>((resolve) => v4only.lookup('dual.test', { family: 6 }, (...a: unknown[]) => resolve(a)));
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOTFOUND');
  });

  it('is bypassed by net.connect for IP literals — why guardConnector / resolve exist', async () => {
    let calls = 0;
    const g = compileGuard(NONE);
    const spy: LookupFunction = (h, o, cb) => {
      calls++;
      g.lookup(h, o, cb);
    };
    const r = await dial('127.0.0.1', spy);
    assert.equal(r.ok, true, 'Node dials an IP literal without calling lookup');
    assert.equal(calls, 0);
  });
});

describe('guardConnector (undici)', () => {
  let server: HttpServer;
  let port: number;
  const seen: { host: string | undefined }[] = [];

  before(async () => {
    server = createHttpServer((req, res) => {
      seen.push({ host: req.headers.host });
      res.end('ok');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  async function get(agent: Agent, origin: string): Promise<{ ok: true; body: string } | { ok: false; code: string | undefined }> {
    try {
      const res = await request(`${origin}/`, { dispatcher: agent });
      return { ok: true, body: await res.body.text() };
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      return { ok: false, code: e.code ?? e.cause?.code };
    } finally {
      await agent.close();
    }
  }

  it('refuses an IP-literal origin that connect.lookup alone would let through', async () => {
    const g = compileGuard(NONE);
    const viaLookup = await get(new Agent({ connect: { lookup: g.lookup } }), `http://127.0.0.1:${port}`);
    assert.equal(viaLookup.ok, true, 'documented bypass: lookup is not consulted for literals');
    const guarded = await get(new Agent({ connect: guardConnector(g, buildConnector({})) }), `http://127.0.0.1:${port}`);
    assert.deepEqual(guarded, { ok: false, code: 'EAIRLOCK_DESTINATION' });
  });

  it('allows it with loopback allowed, and keeps refusing own listeners', async () => {
    const g = compileGuard(opts({ allow: ['127.0.0.0/8'] }));
    assert.deepEqual(await get(new Agent({ connect: guardConnector(g, buildConnector({})) }), `http://127.0.0.1:${port}`), {
      ok: true,
      body: 'ok',
    });
    const self = compileGuard(opts({ allow: ['127.0.0.0/8'], ownListeners: [{ host: '127.0.0.1', port }] }));
    assert.deepEqual(await get(new Agent({ connect: guardConnector(self, buildConnector({})) }), `http://127.0.0.1:${port}`), {
      ok: false,
      code: 'EAIRLOCK_DESTINATION',
    });
  });

  it('dials the checked literal for a name, keeping the Host header', async () => {
    const dns = fakeDns({ 'upstream.test': [v4('127.0.0.1')] });
    const g = compileGuard(opts({ allow: ['127.0.0.0/8'], lookupImpl: dns.lookupImpl }));
    const r = await get(new Agent({ connect: guardConnector(() => g, buildConnector({})) }), `http://upstream.test:${port}`);
    assert.deepEqual(r, { ok: true, body: 'ok' });
    assert.deepEqual(seen.at(-1), { host: `upstream.test:${port}` });
    assert.deepEqual(dns.calls, ['upstream.test']);
  });

  it('refuses a name resolving to a refused address, and passes DNS failures through', async () => {
    const dns = fakeDns({ 'internal.test': [v4('127.0.0.1')] });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    assert.deepEqual(await get(new Agent({ connect: guardConnector(g, buildConnector({})) }), `http://internal.test:${port}`), {
      ok: false,
      code: 'EAIRLOCK_DESTINATION',
    });
    assert.deepEqual(await get(new Agent({ connect: guardConnector(g, buildConnector({})) }), `http://missing.test:${port}`), {
      ok: false,
      code: 'ENOTFOUND',
    });
  });

  it('passes the base connector the checked address and default ports, leaving host/servername alone', async () => {
    const dns = fakeDns({ 'api.example': [v6('2606:4700:4700::1111')] });
    const g = compileGuard(opts({ lookupImpl: dns.lookupImpl }));
    const got: unknown[] = [];
    const base = (o: { hostname: string; protocol: string; port: string; host?: string; servername?: string }, cb: (...a: [null, string] | [Error, null]) => void): void => {
      got.push(o);
      cb(null, 'socket');
    };
    const connector = guardConnector(g, base);
    await new Promise<void>((resolve) =>
      connector({ hostname: 'api.example', host: 'api.example', protocol: 'https:', port: '', servername: 'api.example' }, () => resolve()),
    );
    assert.deepEqual(got, [{ hostname: '2606:4700:4700::1111', host: 'api.example', protocol: 'https:', port: '', servername: 'api.example' }]);

    const own = compileGuard(opts({ allow: ['0.0.0.0/0'], ownListeners: [{ host: '0.0.0.0', port: 443 }], localAddresses: ['8.8.8.8'] }));
    const refusedErr = await new Promise<unknown[]>((resolve) =>
      guardConnector(own, base)({ hostname: '8.8.8.8', protocol: 'https:', port: '' }, (...a) => resolve(a)),
    );
    assert.equal((refusedErr[0] as DestinationRefusedError).verdict.code, 'own_listener'); // '' → 443 for https
    assert.equal(refusedErr[1], null);
  });
});
