import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { eventsFor, proxyEnv, run, startTestAirlock, startUpstream, withEnvProxyAgent, type TestAirlock, type Upstream } from '../helpers/harness.js';

const POLICY = `
version: 1
defaults: { action: deny }
classification: { header: X-Data-Classification, levels: [public, internal, confidential, restricted], missing: public }
approvers:
  data-owners: { api: [bob@example.com] }
rules:
  - id: reads
    match: { methods: [GET, HEAD], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
  - id: uploads
    match: { methods: [POST, PUT], hosts: [127.0.0.1], paths: ["/upload/**"] }
    action: allow
  - id: admin-never
    match: { hosts: [127.0.0.1], paths: ["/v1/admin/**"] }
    action: deny
    reason: Agents may not touch admin endpoints
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**"], classification: { atLeast: confidential } }
    action: approve
    approval: { approvers: [data-owners], required: 1, wait: 1m, expires: 10m }
  - id: beta-would-deny
    match: { hosts: [127.0.0.1], paths: ["/v1/beta/**"] }
    action: deny
    mode: report
`;

interface ErrorBody {
  error: string;
  message: string;
  request_id: string;
  rule: string | null;
}

describe('plain HTTP through HTTP_PROXY', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': POLICY });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('curl: an allowed GET reaches the upstream with the canonical target and no proxy headers', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, '-H', 'Proxy-Connection: keep-alive', `${up.origin}/v1//users/./list?q=1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    assert.match(r.stdout, /airlock-request-id: [0-9a-f-]{36}/i);
    assert.equal(up.requests.length, before + 1);
    const got = up.requests.at(-1)!;
    assert.equal(got.url, '/v1/users/list?q=1');
    assert.equal(got.headers.host, `127.0.0.1:${up.port}`);
    assert.equal(got.headers['proxy-connection'], undefined);
    assert.equal(got.headers['proxy-authorization'], undefined);
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [decision, ...more] = eventsFor(await al.audit(), id);
    assert.equal(more.length, 0, 'one audit event per request');
    assert.equal(decision!.event, 'request');
    assert.equal(decision!.decision, 'allow');
    assert.equal(decision!.rule, 'reads');
    assert.equal(decision!.path, '/v1/users/list');
    assert.equal(decision!.host, '127.0.0.1');
  });

  it('curl: a denied request gets 403 JSON naming the rule and the upstream receives nothing', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', `${up.origin}/v1/admin/users`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '403');
    const e = JSON.parse(body!) as ErrorBody;
    assert.equal(e.error, 'denied');
    assert.equal(e.rule, 'admin-never');
    assert.equal(e.message, 'Agents may not touch admin endpoints');
    assert.equal(up.requests.length, before);
    const [ev] = eventsFor(await al.audit(), e.request_id);
    assert.equal(ev!.decision, 'deny');
    assert.deepEqual(ev!.rules, ['admin-never', 'reads']);
  });

  it('encoded dot segments cannot climb out of an allowed prefix into a denied one', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '--path-as-is', '-x', al.proxyUrl, '-w', '\n%{http_code}', `${up.origin}/v1/x/%2e%2e/admin/users`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '403', body);
    assert.equal((JSON.parse(body!) as ErrorBody).rule, 'admin-never');
    assert.equal(up.requests.length, before);
  });

  it('an encoded slash is refused as ambiguous with 400 JSON', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', `${up.origin}/v1/admin%2Fusers`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '400');
    const e = JSON.parse(body!) as ErrorBody;
    assert.equal(e.error, 'bad_request');
    assert.match(e.message, /slash/i);
    assert.equal(up.requests.length, before);
    const [ev] = eventsFor(await al.audit(), e.request_id);
    assert.equal(ev!.decision, 'refused');
  });

  it('nothing matched → the default deny', async () => {
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, `${up.origin}/other`]);
    const e = JSON.parse(r.stdout) as ErrorBody;
    assert.equal(e.error, 'denied');
    assert.equal(e.rule, null);
  });

  it('a rule in report mode lets the request through and the audit says what it would have done', async () => {
    const r = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, `${up.origin}/v1/beta/feature`]);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.decision, 'allow');
    assert.deepEqual(ev!.report, [{ rule: 'beta-would-deny', action: 'deny' }]);
  });

  it('a request that needs approval is not forwarded: with Prefer: respond-async it gets 202 and an approval id', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', '-H', 'Prefer: respond-async', '-H', 'X-Data-Classification: confidential', '-d', '{"rows":10}', `${up.origin}/exports/customers`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '202');
    const e = JSON.parse(body!) as ErrorBody & { approval_id: string };
    assert.equal(e.error, 'approval_pending');
    assert.equal(e.rule, 'exports');
    assert.match(e.approval_id, /^[0-9a-f-]{36}$/);
    assert.equal(up.requests.length, before);
  });

  it('Python urllib: a POST body streams to the upstream intact', async () => {
    const script = [
      'import json, sys, urllib.request',
      `req = urllib.request.Request("${up.origin}/upload/file", data=b"x" * 300000, method="POST")`,
      'res = urllib.request.urlopen(req)',
      'print(res.status, res.headers["Airlock-Request-Id"], res.read().decode())',
    ].join('\n');
    const r = await run('python3', ['-c', script], proxyEnv(al.proxyUrl));
    assert.equal(r.code, 0, r.stderr);
    const [status, id, body] = r.stdout.trim().split(' ');
    assert.equal(status, '200');
    assert.equal((JSON.parse(body!) as { bytes: number }).bytes, 300000);
    assert.equal(up.requests.at(-1)!.body.length, 300000);
    const [ev] = eventsFor(await al.audit(), id!);
    assert.equal(ev!.rule, 'uploads');
  });

  it('Python urllib: a denied request raises HTTPError 403 with the JSON body', async () => {
    const script = [
      'import urllib.request, urllib.error',
      'try:',
      `    urllib.request.urlopen("${up.origin}/v1/admin/x")`,
      'except urllib.error.HTTPError as e:',
      '    print(e.code, e.read().decode())',
    ].join('\n');
    const r = await run('python3', ['-c', script], proxyEnv(al.proxyUrl));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^403 \{"error":"denied"/);
  });

  // undici sends plain http:// in absolute form by default; with proxyTunnel it opens CONNECT to the port first.
  for (const [how, options, via] of [
    ['absolute form, its default for http', {}, 'proxy'],
    ['proxyTunnel: CONNECT to the port, then plain HTTP', { proxyTunnel: true }, 'tunnel'],
  ] as const) {
    it(`Node fetch with EnvHttpProxyAgent (${how}): decided request by request`, async () => {
      await withEnvProxyAgent(
        al.proxyUrl,
        async (dispatcher) => {
          const before = up.requests.length;
          const ok = await undiciFetch(`${up.origin}/v1/items`, { dispatcher });
          assert.equal(ok.status, 200);
          assert.equal(((await ok.json()) as { url: string }).url, '/v1/items');
          const denied = await undiciFetch(`${up.origin}/v1/admin/x`, { dispatcher });
          assert.equal(denied.status, 403);
          const body = (await denied.json()) as ErrorBody;
          assert.equal(body.rule, 'admin-never');
          assert.equal(up.requests.length, before + 1);
          const [ev] = eventsFor(await al.audit(), ok.headers.get('airlock-request-id')!);
          assert.equal(ev!.via, via);
          assert.equal(ev!.decision, 'allow');
        },
        options,
      );
    });
  }

  it('redirects are passed to the client, never followed by the proxy', async () => {
    const redirecting = await startUpstream((_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.1:1/v1/admin/elsewhere' });
      res.end();
    });
    try {
      const res = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, `${redirecting.origin}/v1/go`]);
      assert.match(res.stdout, /^HTTP\/1\.1 302/);
      assert.match(res.stdout, /location: http:\/\/127\.0\.0\.1:1\/v1\/admin\/elsewhere/i);
      assert.equal(redirecting.requests.length, 1);
    } finally {
      await redirecting.close();
    }
  });

  it('an unreachable upstream is a 502 upstream_error', async () => {
    const closed = await startUpstream();
    await closed.close();
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', `http://127.0.0.1:${closed.port}/v1/x`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '502');
    assert.equal((JSON.parse(body!) as ErrorBody).error, 'upstream_error');
  });

  it('the proxy refuses to forward to its own listeners', async () => {
    const admin = new URL(al.adminUrl);
    const policy = POLICY + `  - id: everything-local\n    match: { hosts: [127.0.0.1, localhost] }\n    action: allow\n`;
    await al.writePolicy('policy.yaml', policy);
    await al.airlock.policies.reload();
    try {
      // Every spelling of this machine, even with loopback allowed for the tests' upstreams.
      const spellings = ['localhost', '127.1', '0x7f000001', '[::1]', '[::ffff:127.0.0.1]', '0.0.0.0'];
      for (const target of [`${al.adminUrl}/metrics`, ...spellings.map((h) => `http://${h}:${admin.port}/healthz`), `${al.proxyUrl}/v1/x`]) {
        const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', target]);
        const [body, code] = r.stdout.split('\n');
        assert.equal(code, '403', target);
        assert.match((JSON.parse(body!) as ErrorBody).message, /own listeners/);
      }
    } finally {
      await al.writePolicy('policy.yaml', POLICY);
      await al.airlock.policies.reload();
    }
  });

  describe('tricks an agent might try are refused or caught by the rule they aim around', () => {
    const cases: { name: string; args: (origin: string, port: number) => string[]; status: string; error: string; rule?: string }[] = [
      { name: 'numeric IPv4 spelling of a denied host', args: (_o, p) => [`http://2130706433:${p}/v1/admin/x`], status: '403', error: 'denied', rule: 'admin-never' },
      { name: 'hex IPv4 spelling', args: (_o, p) => [`http://0x7f.0.0.1:${p}/v1/admin/x`], status: '403', error: 'denied', rule: 'admin-never' },
      { name: 'trailing dot on the host', args: (_o, p) => [`http://127.0.0.1.:${p}/v1/admin/x`], status: '403', error: 'denied', rule: 'admin-never' },
      { name: 'upper-case path segment is a different path (no rule matches)', args: (o) => [`${o}/V1/ADMIN/x`], status: '403', error: 'denied' },
      { name: 'Host header naming another host', args: (o) => ['-H', 'Host: api.internal', `${o}/v1/x`], status: '400', error: 'bad_request' },
      { name: 'duplicate classification headers', args: (o) => ['-H', 'X-Data-Classification: public', '-H', 'X-Data-Classification: restricted', '-d', 'x', `${o}/exports/all`], status: '400', error: 'bad_request' },
      { name: 'unknown classification level', args: (o) => ['-H', 'X-Data-Classification: top-secret', '-d', 'x', `${o}/exports/all`], status: '400', error: 'bad_request' },
      { name: 'underscore alias of the classification header', args: (o) => ['-H', 'X_Data_Classification: public', '-H', 'X-Data-Classification: confidential', '-d', 'x', `${o}/exports/all`], status: '400', error: 'bad_request' },
      { name: 'path parameter hiding a denied prefix', args: (o) => ['--path-as-is', `${o}/v1/admin;x/users`], status: '400', error: 'bad_request' },
      { name: 'encoded backslash', args: (o) => ['--path-as-is', `${o}/v1/x%5C..%5Cadmin`], status: '400', error: 'bad_request' },
      { name: 'double-encoded slash', args: (o) => ['--path-as-is', `${o}/v1/x%252F..%252Fadmin`], status: '400', error: 'bad_request' },
      { name: 'userinfo in the request target', args: (o, p) => ['--request-target', `http://user:pass@127.0.0.1:${p}/v1/x`, `${o}/`], status: '400', error: 'bad_request' },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const before = up.requests.length;
        const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', ...c.args(up.origin, up.port)]);
        const [body, code] = r.stdout.split('\n');
        assert.equal(code, c.status, body);
        const e = JSON.parse(body!) as ErrorBody;
        assert.equal(e.error, c.error);
        if (c.rule) assert.equal(e.rule, c.rule);
        assert.equal(up.requests.length, before, 'the upstream received nothing');
      });
    }
  });

  it('a malformed request line gets a 400 JSON body', async () => {
    const { connect } = await import('node:net');
    const port = Number(new URL(al.proxyUrl).port);
    const reply = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('GET http://127.0.0.1/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'));
      let data = '';
      s.on('data', (c) => (data += c));
      s.on('close', () => resolve(data));
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.match(reply, /"error":"bad_request"/);
  });
});

describe('upstream timeouts and large bodies', () => {
  const policy = `
version: 1
rules:
  - id: all-local
    match: { hosts: [127.0.0.1] }
    action: allow
`;

  it('an upstream that never answers is a 504 upstream_error after the upstream timeout', async () => {
    const silent = await startUpstream(() => {
      // Never answers: the proxy's headers timeout must fire.
    });
    const al = await startTestAirlock({ 'policy.yaml': policy }, { upstreamTimeoutMs: 300 });
    try {
      const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', `${silent.origin}/slow`]);
      const [body, code] = r.stdout.split('\n');
      assert.equal(code, '504');
      const e = JSON.parse(body!) as ErrorBody;
      assert.equal(e.error, 'upstream_error');
      assert.match(e.message, /timed out/);
    } finally {
      await al.close();
      await silent.close();
    }
  });

  it('a large response streams back intact, and a large chunked upload reaches the upstream intact', async () => {
    const { createHash, randomBytes } = await import('node:crypto');
    const blob = randomBytes(8 * 1024 * 1024);
    const big = await startUpstream((req, res, body) => {
      if (req.method === 'PUT') {
        res.end(createHash('sha256').update(body).digest('hex'));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < blob.length; i += 64 * 1024) res.write(blob.subarray(i, i + 64 * 1024));
      res.end();
    });
    const al = await startTestAirlock({ 'policy.yaml': policy });
    try {
      const down = await run('sh', ['-c', `curl -sS -x ${al.proxyUrl} ${big.origin}/blob | sha256sum`]);
      assert.equal(down.stdout.split(' ')[0], createHash('sha256').update(blob).digest('hex'));
      const file = join(al.dir, '..', 'upload.bin');
      await writeFile(file, blob);
      const upload = await run('curl', ['-sS', '-x', al.proxyUrl, '-T', file, '-H', 'Transfer-Encoding: chunked', `${big.origin}/upload`]);
      assert.equal(upload.stdout, createHash('sha256').update(blob).digest('hex'));
      assert.equal(big.requests.at(-1)!.headers['transfer-encoding'], 'chunked');
    } finally {
      await al.close();
      await big.close();
    }
  });
});
