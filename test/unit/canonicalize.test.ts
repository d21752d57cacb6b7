import { loadPolicySources } from '../../src/policy/load.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CanonicalRequest, ClassificationConfig, CompiledPolicy, Identity } from '../../src/policy/types.js';
import {
  canonicalize,
  canonicalizeAuthority,
  upstreamHeaders,
  type CanonicalizeResult,
  type RawRequest,
} from '../../src/request/canonicalize.js';

function makePolicy(opts: { inspected?: string[]; classification?: ClassificationConfig } = {}): CompiledPolicy {
  return {
    version: 'test',
    files: [],
    defaultAction: 'deny',
    rules: [],
    classification: opts.classification ?? null,
    inspectedHeaders: new Set(opts.inspected ?? []),
    inspectedQuery: new Set(),
    identities: new Map(),
    approverGroups: new Map(),
    routes: [],
    exceptions: [],
    tests: [],
  } as unknown as CompiledPolicy; // only the fields canonicalize/identify read; the rule index is not needed
}

const plain = makePolicy();

function run(target: string, rawHeaders: string[] = [], extra: Partial<RawRequest> = {}, policy = plain): CanonicalizeResult {
  return canonicalize({ method: 'GET', target, rawHeaders, ...extra }, null, policy);
}

function ok(r: CanonicalizeResult): CanonicalRequest {
  if (!r.ok) assert.fail(`expected success, got: ${r.message}`);
  return r.request;
}

function refused(r: CanonicalizeResult, includes: string): void {
  if (r.ok) assert.fail(`expected refusal containing "${includes}", got ${JSON.stringify(r.request)}`);
  assert.ok(r.message.includes(includes), `message "${r.message}" should contain "${includes}"`);
}

type Where = Pick<CanonicalRequest, 'scheme' | 'host' | 'port' | 'path' | 'encodedPath' | 'query'>;

function where(r: CanonicalRequest): Where {
  const { scheme, host, port, path, encodedPath, query } = r;
  return { scheme, host, port, path, encodedPath, query };
}

/** Fully percent-decode an encoded path (the invariant: encodedPath decodes to path). */
function decodes(encodedPath: string): string {
  return decodeURIComponent(encodedPath);
}

describe('canonicalize: request target', () => {
  const accepted: [string, Where][] = [
    ['http://api.internal/v1/users', { scheme: 'http', host: 'api.internal', port: 80, path: '/v1/users', encodedPath: '/v1/users', query: '' }],
    ['HTTPS://API.Internal:8443/x?a=1&b=%2F', { scheme: 'https', host: 'api.internal', port: 8443, path: '/x', encodedPath: '/x', query: 'a=1&b=%2F' }],
    ['http://h', { scheme: 'http', host: 'h', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://h?q=1', { scheme: 'http', host: 'h', port: 80, path: '/', encodedPath: '/', query: 'q=1' }],
    ['http://h:80/', { scheme: 'http', host: 'h', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['https://h:443/', { scheme: 'https', host: 'h', port: 443, path: '/', encodedPath: '/', query: '' }],
    // encoded dots are dots
    ['http://h/v1/%2e%2e/admin', { scheme: 'http', host: 'h', port: 80, path: '/admin', encodedPath: '/admin', query: '' }],
    ['http://h/v1/%2E./x', { scheme: 'http', host: 'h', port: 80, path: '/x', encodedPath: '/x', query: '' }],
    ['http://h/v1/.%2E/x', { scheme: 'http', host: 'h', port: 80, path: '/x', encodedPath: '/x', query: '' }],
    ['http://h/v1/%2e/x', { scheme: 'http', host: 'h', port: 80, path: '/v1/x', encodedPath: '/v1/x', query: '' }],
    // dot segments and slashes
    ['http://h/a/../b', { scheme: 'http', host: 'h', port: 80, path: '/b', encodedPath: '/b', query: '' }],
    ['http://h/a/./b', { scheme: 'http', host: 'h', port: 80, path: '/a/b', encodedPath: '/a/b', query: '' }],
    ['http://h//a///b', { scheme: 'http', host: 'h', port: 80, path: '/a/b', encodedPath: '/a/b', query: '' }],
    ['http://h//admin', { scheme: 'http', host: 'h', port: 80, path: '/admin', encodedPath: '/admin', query: '' }],
    ['http://h/a/b/', { scheme: 'http', host: 'h', port: 80, path: '/a/b/', encodedPath: '/a/b/', query: '' }],
    ['http://h/a//', { scheme: 'http', host: 'h', port: 80, path: '/a/', encodedPath: '/a/', query: '' }],
    ['http://h/a/b/..', { scheme: 'http', host: 'h', port: 80, path: '/a/', encodedPath: '/a/', query: '' }],
    ['http://h/a/.', { scheme: 'http', host: 'h', port: 80, path: '/a/', encodedPath: '/a/', query: '' }],
    ['http://h/a/..', { scheme: 'http', host: 'h', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://h/.well-known/x', { scheme: 'http', host: 'h', port: 80, path: '/.well-known/x', encodedPath: '/.well-known/x', query: '' }],
    ['http://h/a/..b/...', { scheme: 'http', host: 'h', port: 80, path: '/a/..b/...', encodedPath: '/a/..b/...', query: '' }],
    // unreserved decoded, other escapes kept (upper-case), raw specials encoded
    ['http://h/%41%7e%5f', { scheme: 'http', host: 'h', port: 80, path: '/A~_', encodedPath: '/A~_', query: '' }],
    ['http://h/a%20b%22', { scheme: 'http', host: 'h', port: 80, path: '/a b"', encodedPath: '/a%20b%22', query: '' }],
    ['http://h/a|b{c}', { scheme: 'http', host: 'h', port: 80, path: '/a|b{c}', encodedPath: '/a%7Cb%7Bc%7D', query: '' }],
    ['http://h/100%25', { scheme: 'http', host: 'h', port: 80, path: '/100%', encodedPath: '/100%25', query: '' }],
    ["http://h/a:b@c=e,f!$&'()*+", { scheme: 'http', host: 'h', port: 80, path: "/a:b@c=e,f!$&'()*+", encodedPath: "/a:b@c=e,f!$&'()*+", query: '' }],
    // hosts
    ['http://example.com./', { scheme: 'http', host: 'example.com', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://EXAMPLE.COM/', { scheme: 'http', host: 'example.com', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://bücher.example/', { scheme: 'http', host: 'xn--bcher-kva.example', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://XN--BCHER-KVA.example/', { scheme: 'http', host: 'xn--bcher-kva.example', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://2130706433/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://0x7f.1/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://0177.0.0.1/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://127.0.0.1./', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[::1]:8080/', { scheme: 'http', host: '::1', port: 8080, path: '/', encodedPath: '/', query: '' }],
    // IPv6 spellings of an IPv4 address are that address (rules and the dialler see the same host).
    ['http://[::ffff:127.0.0.1]/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[::127.0.0.1]/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[64:ff9b::7f00:1]/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[0:0:0:0:0:FFFF:7F00:0001]/', { scheme: 'http', host: '127.0.0.1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[2001:DB8:0::1]/', { scheme: 'http', host: '2001:db8::1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://[0:0:0:0:0:0:0:1]/', { scheme: 'http', host: '::1', port: 80, path: '/', encodedPath: '/', query: '' }],
    ['http://my_host.internal/', { scheme: 'http', host: 'my_host.internal', port: 80, path: '/', encodedPath: '/', query: '' }],
  ];
  for (const [target, want] of accepted) {
    it(`accepts ${target}`, () => {
      const r = ok(run(target));
      assert.deepEqual(where(r), want);
      assert.equal(decodes(r.encodedPath), r.path);
    });
  }

  const refusedTargets: [string, string][] = [
    ['http://h/a%2Fb', 'encoded slash (%2F)'],
    ['http://h/a%2fb', 'encoded slash (%2F)'],
    ['http://h/a%5Cb', 'encoded backslash (%5C)'],
    ['http://h/a%5cb', 'encoded backslash (%5C)'],
    ['http://h/a\\b', 'backslash'],
    ['http://h\\@evil/', 'backslash'],
    ['http://h\\/a', 'backslash'],
    ['http://h/a%00b', 'encoded control character (%00)'],
    ['http://h/a%0d%0a', 'encoded control character (%0D)'],
    ['http://h/a%7f', 'encoded control character (%7F)'],
    ['http://h/a%zz', 'invalid percent escape'],
    ['http://h/a%4', 'invalid percent escape'],
    ['http://h/a%', 'invalid percent escape'],
    ['http://h/%c0%af', 'encoded non-ASCII character (%C0…)'],
    ['http://h/%ff', 'encoded non-ASCII character (%FF…)'],
    // What some servers decode before routing: refused unless an exception allows it for the host.
    ['http://h/admin%3Bx/secret', 'an encoded ";" (%3B)'],
    ['http://h/admin%3f/x', 'an encoded "?" (%3F)'],
    ['http://h/admin%23/x', 'an encoded "#" (%23)'],
    ['http://h/%EF%BD%81dmin', 'encoded non-ASCII character (%EF…)'],
    ['http://h/caf\u00e9', 'raw non-ASCII character'],
    ['http://h/%252F', 'double-encoded'],
    ['http://h/..%252f..%252fadmin', 'double-encoded'],
    ['http://h/admin;x/secret', 'path parameters'],
    ['http://h/files/a.txt;jsessionid=1', 'path parameters'],
    ['http://h/../admin', 'above the root'],
    ['http://h/a/../../admin', 'above the root'],
    ['http://h/%2e%2e/admin', 'above the root'],
    ['http://user:pass@h/', 'userinfo'],
    ['http://@h/', 'userinfo'],
    ['http://h/#frag', 'fragment'],
    ['http://h/a?b#c', 'fragment'],
    ['http:///path', 'empty host'],
    ['http://:80/', 'empty host'],
    ['http://h:0/', 'out of range'],
    ['http://h:65536/', 'out of range'],
    ['http://h:abc/', 'port must be a number'],
    ['http://h:/', 'port must be a number'],
    ['http://h:-1/', 'port must be a number'],
    ['ftp://h/', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['http:/h/x', 'not an http(s) URL'],
    ['*', 'asterisk-form'],
    ['/origin/form', 'absolute URL'],
    ['http://h/a b', 'whitespace'],
    ['http://h/a\tb', 'whitespace'],
    ['http://h/caf\u00e9', 'non-ASCII'],
    ['http://h/?q=\u00e9', 'non-ASCII'],
    ['http://h/?q=\u0001', 'control'],
    ['http://h/?q= x', 'whitespace'],
    ['http://example.com../', 'empty label'],
    ['http://a..b/', 'empty label'],
    ['http://.a/', 'empty label'],
    ['http://b%C3%BCcher.example/', 'percent sign'],
    ['http://[fe80::1%25eth0]/', 'percent sign'],
    ['http://[::1/', 'IPv6'],
    ['http://[::1]x/', 'IPv6'],
    ['http://[zz::1]/', 'IPv6'],
    ['http://1.2.3.4.5/', 'invalid host'],
    ['http://xn--zz.example/', 'invalid host'],
    ['http://a*b.example/', 'not allowed in a domain name'],
    ['http://h\u0000/', 'control character'],
  ];
  for (const [target, message] of refusedTargets) {
    it(`refuses ${JSON.stringify(target)}`, () => refused(run(target), message));
  }

  it('refuses invalid methods and CONNECT', () => {
    refused(canonicalize({ method: 'GE T', target: 'http://h/', rawHeaders: [] }, null, plain), 'invalid method');
    refused(canonicalize({ method: '', target: 'http://h/', rawHeaders: [] }, null, plain), 'invalid method');
    refused(canonicalize({ method: 'CONNECT', target: 'http://h/', rawHeaders: [] }, null, plain), 'CONNECT');
  });

  it('keeps the method as sent and the identity as passed in', () => {
    const identity: Identity = { id: 'bot', groups: ['g'] };
    const r = canonicalize({ method: 'PROPFIND', target: 'http://h/', rawHeaders: [] }, identity, plain);
    assert.equal(ok(r).method, 'PROPFIND');
    assert.equal(ok(r).identity, identity);
  });

  it('keeps the query verbatim', () => {
    assert.equal(ok(run('http://h/p?a=%2F..%2f&b=c?d&e=\\')).query, 'a=%2F..%2f&b=c?d&e=\\');
  });
});

describe('canonicalize: origin-form with a destination', () => {
  const tunnel = { scheme: 'https', host: 'api.example.com', port: 443 } as const;

  it('takes scheme, host and port from the destination', () => {
    const r = ok(run('/v1/%2e%2e/x?y=1', ['Host', 'api.example.com'], { destination: tunnel }));
    assert.deepEqual(where(r), { scheme: 'https', host: 'api.example.com', port: 443, path: '/x', encodedPath: '/x', query: 'y=1' });
  });

  it('canonicalizes the destination host (IPv6 given without brackets)', () => {
    const r = ok(run('/', [], { destination: { scheme: 'http', host: '0:0::1', port: 8080 } }));
    assert.equal(r.host, '::1');
    assert.equal(ok(run('/', [], { destination: { scheme: 'http', host: 'API.Example.com.', port: 80 } })).host, 'api.example.com');
  });

  it('refuses absolute-form inside a tunnel', () => {
    refused(run('http://other/', [], { destination: tunnel }), 'origin-form');
  });

  it('checks the Host header against the destination', () => {
    ok(run('/', ['Host', 'api.example.com:443'], { destination: tunnel }));
    ok(run('/', ['Host', 'API.EXAMPLE.COM.'], { destination: tunnel }));
    refused(run('/', ['Host', 'evil.example.com'], { destination: tunnel }), 'does not match');
    refused(run('/', ['Host', 'api.example.com:8443'], { destination: tunnel }), 'does not match');
  });

  it("skips the Host check with hostHeader: 'ignore' (reverse routes)", () => {
    const r = ok(run('/openai/v1', ['Host', 'localhost:8080'], { destination: tunnel, hostHeader: 'ignore' }));
    assert.equal(r.host, 'api.example.com');
    assert.equal(r.headers.get('host'), 'localhost:8080');
  });

  it('still refuses duplicate Host headers when ignoring Host', () => {
    refused(run('/', ['Host', 'a', 'Host', 'a'], { destination: tunnel, hostHeader: 'ignore' }), 'more than one Host');
  });
});

describe('canonicalize: Host header', () => {
  it('accepts a Host equal to the target', () => {
    ok(run('http://h/', ['Host', 'h']));
    ok(run('http://h/', ['Host', 'h:80']));
    ok(run('http://h:80/', ['Host', 'h']));
    ok(run('https://h/', ['Host', 'h:443']));
    ok(run('http://h:8080/', ['Host', 'H:8080']));
    ok(run('http://[::1]:8080/', ['Host', '[0::1]:8080']));
    ok(run('http://127.0.0.1/', ['Host', '2130706433']));
  });

  it('refuses a Host that disagrees with the target', () => {
    refused(run('http://h/', ['Host', 'evil']), 'does not match');
    refused(run('http://h:8080/', ['Host', 'h']), 'does not match');
    refused(run('https://h/', ['Host', 'h:80']), 'does not match');
  });

  it('refuses duplicate Host headers, equal or not', () => {
    refused(run('http://h/', ['Host', 'h', 'Host', 'evil']), 'more than one Host');
    refused(run('http://h/', ['Host', 'h', 'host', 'h']), 'more than one host');
  });

  it('refuses malformed Host values', () => {
    refused(run('http://h/', ['Host', 'u@h']), 'invalid Host header');
    refused(run('http://h/', ['Host', 'h/x']), 'invalid Host header');
    refused(run('http://h/', ['Host', 'h:x']), 'invalid Host header');
    refused(run('http://h/', ['Host', '']), 'invalid Host header');
    // Node hands header bytes over as latin1: a non-ASCII Host cannot be interpreted safely.
    refused(run('http://example.com/', ['Host', 'ex\u00aample.com']), 'non-ASCII');
  });
});

describe('canonicalize: headers', () => {
  it('lower-cases names and collects repeated ones in order', () => {
    const r = ok(run('http://h/', ['Accept', 'a', 'X-Multi', '1', 'x-multi', '2', 'X-MULTI', '3']));
    assert.equal(r.headers.get('accept'), 'a');
    assert.deepEqual(r.headers.get('x-multi'), ['1', '2', '3']);
  });

  it('keeps prototype-ish names as plain headers', () => {
    const r = ok(run('http://h/', ['__proto__', 'x', 'constructor', 'y']));
    assert.equal(r.headers.get('__proto__'), 'x');
    assert.equal(r.headers.get('constructor'), 'y');
  });

  const dupes = ['Content-Length', 'Transfer-Encoding', 'Proxy-Authorization', 'Authorization'];
  for (const name of dupes) {
    it(`refuses duplicate ${name}`, () => {
      const v = name === 'Transfer-Encoding' ? 'chunked' : name === 'Content-Length' ? '5' : 'Basic eDp5';
      refused(run('http://h/', [name, v, name.toLowerCase(), v]), `more than one ${name.toLowerCase()}`);
    });
  }

  it('accepts a single Content-Length or chunked Transfer-Encoding', () => {
    assert.equal(ok(run('http://h/', ['Content-Length', '12'])).headers.get('content-length'), '12');
    ok(run('http://h/', ['Transfer-Encoding', 'Chunked']));
  });

  it('refuses Transfer-Encoding other than exactly chunked', () => {
    refused(run('http://h/', ['Transfer-Encoding', 'chunked, identity']), 'exactly "chunked"');
    refused(run('http://h/', ['Transfer-Encoding', 'gzip, chunked']), 'exactly "chunked"');
    refused(run('http://h/', ['Transfer-Encoding', 'identity']), 'exactly "chunked"');
  });

  it('refuses Transfer-Encoding together with Content-Length', () => {
    refused(run('http://h/', ['Content-Length', '3', 'Transfer-Encoding', 'chunked']), 'both Transfer-Encoding and Content-Length');
  });

  it('refuses a non-numeric Content-Length', () => {
    refused(run('http://h/', ['Content-Length', '5, 5']), 'invalid Content-Length');
    refused(run('http://h/', ['Content-Length', '-1']), 'invalid Content-Length');
  });

  it('refuses invalid header names and control characters in values', () => {
    refused(run('http://h/', ['Bad Name', 'x']), 'invalid header name');
    refused(run('http://h/', ['X', 'a\r\nInjected: 1']), 'control character');
    refused(run('http://h/', ['X']), 'malformed header list');
  });

  it('allows HTAB and obs-text in values', () => {
    assert.equal(ok(run('http://h/', ['X', 'a\tb\u00e9'])).headers.get('x'), 'a\tb\u00e9');
  });

  const inspected = makePolicy({ inspected: ['x-env'] });

  it('refuses duplicates of an inspected header', () => {
    refused(run('http://h/', ['X-Env', 'prod', 'X-Env', 'dev'], {}, inspected), 'more than one X-Env');
    refused(run('http://h/', ['X-Env', 'prod', 'x-env', 'prod'], {}, inspected), 'more than one x-env');
    assert.equal(ok(run('http://h/', ['X-Env', 'prod'], {}, inspected)).headers.get('x-env'), 'prod');
  });

  it('refuses an underscore alias of an inspected header', () => {
    refused(run('http://h/', ['X_Env', 'prod'], {}, inspected), 'X_Env');
    refused(run('http://h/', ['X-Env', 'prod', 'x_env', 'dev'], {}, inspected), 'x_env');
    // headers with underscores that alias nothing inspected are fine
    ok(run('http://h/', ['X_Other', '1'], {}, inspected));
  });

  it('refuses a dash alias when the rule itself names an underscore header', () => {
    const p = makePolicy({ inspected: ['x_tenant'] });
    refused(run('http://h/', ['X-Tenant', 'a'], {}, p), 'X-Tenant');
    ok(run('http://h/', ['X_Tenant', 'a'], {}, p));
  });

  it('refuses Connection naming a header the policy or framing relies on', () => {
    refused(run('http://h/', ['X-Env', 'prod', 'Connection', 'close, X-Env'], {}, inspected), 'Connection header may not name x-env');
    refused(run('http://h/', ['Connection', 'host']), 'may not name host');
    refused(run('http://h/', ['Content-Length', '0', 'Connection', 'Content-Length']), 'may not name content-length');
    ok(run('http://h/', ['Connection', 'keep-alive, X-Foo', 'Connection', 'Upgrade']));
    // Still checked when a rule inspects Connection itself.
    const onConnection = makePolicy({ inspected: ['connection', 'x-env'] });
    refused(run('http://h/', ['X-Env', 'prod', 'Connection', 'X-Env'], {}, onConnection), 'Connection header may not name x-env');
  });
});

describe('canonicalize: classification', () => {
  const cls = makePolicy({
    classification: { header: 'x-data-classification', levels: ['public', 'Internal', 'confidential'], missing: 'confidential', detect: new Map(), detectCeiling: -1 },
  });
  const classify = (headers: string[]): CanonicalizeResult => run('http://h/', headers, {}, cls);

  it('is null without a classification config', () => {
    assert.equal(ok(run('http://h/', ['X-Data-Classification', 'public'])).classification, null);
  });

  it('uses the missing level when absent', () => {
    assert.equal(ok(classify([])).classification, 'confidential');
  });

  it('matches case-insensitively and returns the configured spelling', () => {
    assert.equal(ok(classify(['X-Data-Classification', 'PUBLIC'])).classification, 'public');
    assert.equal(ok(classify(['x-data-classification', 'internal'])).classification, 'Internal');
  });

  it('refuses unknown levels, naming the expected ones', () => {
    const r = classify(['X-Data-Classification', 'secret']);
    refused(r, 'unknown data classification "secret"; expected one of public, Internal, confidential');
    refused(classify(['X-Data-Classification', '']), 'unknown data classification ""');
  });

  it('refuses duplicates and underscore aliases', () => {
    refused(classify(['X-Data-Classification', 'public', 'X-Data-Classification', 'public']), 'more than one');
    refused(classify(['X-Data-Classification', 'public', 'X-Data-Classification', 'confidential']), 'more than one');
    refused(classify(['x_data_classification', 'public']), 'x_data_classification');
  });
});

describe('canonicalizeAuthority', () => {
  const good: [string, string, number][] = [
    ['api.example.com:443', 'api.example.com', 443],
    ['API.Example.COM.:8443', 'api.example.com', 8443],
    ['[::1]:443', '::1', 443],
    ['[::ffff:127.0.0.1]:443', '127.0.0.1', 443],
    ['[64:ff9b::a00:1]:443', '10.0.0.1', 443],
    ['2130706433:80', '127.0.0.1', 80],
    ['bücher.example:443', 'xn--bcher-kva.example', 443],
  ];
  for (const [authority, host, port] of good) {
    it(`accepts ${authority}`, () => assert.deepEqual(canonicalizeAuthority(authority), { ok: true, host, port }));
  }
  const bad: [string, string][] = [
    ['api.example.com', 'port is required'],
    ['[::1]', 'port is required'],
    ['u@h:443', 'userinfo'],
    ['h:0', 'out of range'],
    ['h:99999', 'out of range'],
    ['h:', 'port must be a number'],
    [':443', 'empty host'],
    ['h/x:443', 'invalid character'],
    ['h..:443', 'empty label'],
    ['[fe80::1%25eth0]:443', 'percent sign'],
  ];
  for (const [authority, message] of bad) {
    it(`refuses ${authority}`, () => {
      const r = canonicalizeAuthority(authority);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(r.message.includes(message), r.message);
    });
  }
});

describe('upstreamHeaders', () => {
  it('strips hop-by-hop, Connection-nominated, proxy credentials and x-airlock-* headers; sets host', () => {
    const r = ok(
      run('http://API.example.com:80/x', [
        'Host', 'api.example.com',
        'Connection', 'keep-alive, X-Hop',
        'Keep-Alive', 'timeout=5',
        'Proxy-Connection', 'keep-alive',
        'TE', 'trailers',
        'Trailer', 'X-T',
        'Upgrade', 'h2c',
        'Transfer-Encoding', 'chunked',
        'X-Hop', 'gone',
        'Expect', '100-continue',
        'Proxy-Authorization', 'Basic eDp5',
        'X-Airlock-Approval', 'abc',
        'Authorization', 'Bearer upstream-token',
        'Accept', 'application/json',
        'X-Multi', '1',
        'X-Multi', '2',
      ]),
    );
    assert.deepEqual(upstreamHeaders(r), [
      'authorization', 'Bearer upstream-token',
      'accept', 'application/json',
      'x-multi', '1',
      'x-multi', '2',
      'host', 'api.example.com',
    ]);
  });

  it('writes the port only when it is not the default, and brackets IPv6', () => {
    assert.equal(hostOf(ok(run('https://h:443/'))), 'h');
    assert.equal(hostOf(ok(run('https://h:8443/'))), 'h:8443');
    assert.equal(hostOf(ok(run('http://[::1]:8080/'))), '[::1]:8080');
    assert.equal(hostOf(ok(run('http://[::1]/'))), '[::1]');
  });

  it('names the destination, not the Host the client sent, for reverse routes', () => {
    const r = ok(run('/', ['Host', 'proxy.local:8080'], { destination: { scheme: 'https', host: 'api.openai.com', port: 443 }, hostHeader: 'ignore' }));
    assert.equal(hostOf(r), 'api.openai.com');
  });
});

/** The host header upstreamHeaders sends (always last in the flat list). */
function hostOf(r: Parameters<typeof upstreamHeaders>[0]): string | undefined {
  const h = upstreamHeaders(r);
  return h[h.lastIndexOf('host') + 1];
}

describe('host fast path', () => {
  // Plain LDH names skip WHATWG URL; they must come out exactly as URL would make them.
  const hosts = ['a', 'A-B.example', '_srv.x', 'foo.1a', 'x.y0', 'abc-', '-abc.d', 'MiXeD.CaSe.Io', 'a.b.c.d.e.f', 'x.0y', '127.0.0.1', '0.0.0.0', '255.255.255.255', '10.20.30.40', '192.168.1.100'];
  for (const h of hosts) {
    it(`agrees with WHATWG URL for ${h}`, () => {
      const r = canonicalizeAuthority(`${h}:1`);
      assert.deepEqual(r, { ok: true, host: new URL(`http://${h}/`).hostname, port: 1 });
    });
  }
});

describe('canonicalize: what upstreams read differently, and the policy exceptions', () => {
  const loaded = loadPolicySources([
    {
      file: 'e.yaml',
      text: `version: 1
exceptions:
  - hosts: [legacy.internal]
    pathCharacters: [";", "non-ascii"]
    methodOverride: true
    forwardHeaders: [X-Forwarded-For]
`,
    },
  ]);
  if (!loaded.ok) assert.fail(loaded.errors.map((e) => e.message).join('\n'));
  const policy = loaded.policy;
  const at = (target: string, headers: string[] = [], method = 'GET') => canonicalize({ method, target, rawHeaders: headers }, null, policy);
  const refusal = (r: CanonicalizeResult): string => (r.ok ? 'accepted' : `${r.status ?? 400} ${r.message}`);

  it('encoded ; and non-ASCII pass to a host whose exception allows them, and only them', () => {
    assert.equal(ok(at('http://legacy.internal/a%3Bb/caf%C3%A9')).path, '/a;b/café');
    assert.match(refusal(at('http://legacy.internal/a%3Fb')), /^400 .*encoded "\?"/);
    assert.match(refusal(at('http://other.internal/a%3Bb')), /^400 .*encoded ";"/);
  });

  it('method overrides: headers and _method in the query are refused, unless the host allows them', () => {
    for (const h of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
      assert.match(refusal(at('http://api.internal/x', [h, 'DELETE'], 'POST')), new RegExp(`^400 the ${h.toLowerCase()} header asks the upstream to act on another method`));
    }
    for (const q of ['_method=DELETE', 'a=1&_METHOD=delete', '%5Fmethod=DELETE', '_method']) {
      assert.match(refusal(at(`http://api.internal/x?${q}`, [], 'POST')), /^400 a _method query parameter/, q);
    }
    assert.equal(refusal(at('http://api.internal/x?method=x&my_method=y')), 'accepted');
    assert.equal(refusal(at('http://legacy.internal/x?_method=DELETE', ['X-HTTP-Method-Override', 'DELETE'], 'POST')), 'accepted');
  });

  it('TRACE and TRACK are never forwarded (405)', () => {
    assert.match(refusal(at('http://api.internal/', [], 'TRACE')), /^405 TRACE is never forwarded/);
    assert.match(refusal(at('http://api.internal/', [], 'TRACK')), /^405 /);
  });

  it('paths too long or of too many segments are 414', () => {
    assert.match(refusal(at(`http://api.internal/${'a'.repeat(9000)}`)), /^414 path is longer than 8192/);
    assert.match(refusal(at(`http://api.internal${'/a'.repeat(300)}`)), /^414 path has more than 256 segments/);
    assert.match(refusal(at(`http://api.internal${'/%41'.repeat(300)}`)), /^414 /);
    assert.equal(refusal(at(`http://api.internal${'/a'.repeat(256)}`)), 'accepted');
  });

  it('headers that re-route or vouch for the sender are not forwarded, unless the host keeps them', () => {
    const sent = ['X-Forwarded-For', '10.0.0.1', 'X-Original-URL', '/admin', 'Forwarded', 'for=1.2.3.4', 'X-Real-IP', '1.2.3.4', 'X-Remote-User', 'admin', 'X-Forwarded-User', 'root', 'X-Auth-Request-Email', 'a@b.c', 'Accept', '*/*'];
    const names = (r: CanonicalizeResult): string[] => upstreamHeaders(ok(r)).filter((_, i) => i % 2 === 0);
    assert.deepEqual(names(at('http://api.internal/', sent)), ['accept', 'host']);
    assert.deepEqual(names(at('http://legacy.internal/', sent)), ['x-forwarded-for', 'accept', 'host']);
  });
});
