import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { EnvHttpProxyAgent, ProxyAgent, fetch as undiciFetch } from 'undici';
import { WebSocketServer } from 'ws';
import { hashToken } from '../../src/request/identify.js';
import { generateCa, loadCa } from '../../src/tls/ca.js';
import { proxyEnv, run, startTestAirlock, webSocketRoundTrip, type TestAirlock } from '../helpers/harness.js';

interface HttpsUpstream {
  port: number;
  origin: string;
  requests: { method: string; url: string; host: string }[];
  server: Server;
}

describe('HTTPS through TLS interception', () => {
  let dir: string;
  let upstream: HttpsUpstream;
  let al: TestAirlock;
  let interceptCaFile: string;
  let interceptCaPem: string;
  let upstreamCaPem: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-https-'));
    // The upstream's own CA (as an internal PKI would be), trusted by Airlock through --upstream-ca.
    const upstreamCa = await generateCa({ commonName: 'test upstream CA' });
    const upstreamLeaf = await (await loadCa(upstreamCa.certPem, upstreamCa.keyPem)).issueLeaf('127.0.0.1');
    const upstreamCaFile = join(dir, 'upstream-ca.crt');
    await writeFile(upstreamCaFile, upstreamCa.certPem);
    upstreamCaPem = upstreamCa.certPem;
    const requests: HttpsUpstream['requests'] = [];
    const server = createServer({ cert: upstreamLeaf.certPem, key: upstreamLeaf.keyPem }, (req, res) => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '' });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ tls: true, url: req.url }));
    });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`tls echo: ${String(data)}`)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    upstream = { port, origin: `https://127.0.0.1:${port}`, requests, server };

    // Airlock's interception CA (airlock ca init), which agents trust.
    const interceptCa = await generateCa();
    interceptCaPem = interceptCa.certPem;
    interceptCaFile = join(dir, 'ca.crt');
    await writeFile(interceptCaFile, interceptCa.certPem);
    await writeFile(join(dir, 'ca.key'), interceptCa.keyPem, { mode: 0o600 });
    al = await startTestAirlock(
      {
        'policy.yaml': `
version: 1
rules:
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${port}], paths: ["/v1/**"] }
    action: allow
  - id: no-admin
    match: { hosts: [127.0.0.1], ports: [${port}], paths: ["/admin/**"] }
    action: deny
    reason: no admin over HTTPS either
  - id: sockets
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${port}], paths: ["/ws/**"] }
    action: allow
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m }
approvers:
  owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken('bob-https-token')}"]
`,
      },
      { caCertFile: interceptCaFile, caKeyFile: join(dir, 'ca.key'), upstreamCaFile },
    );
  });
  after(async () => {
    await al.close();
    upstream.server.closeAllConnections();
    await new Promise<void>((resolve) => upstream.server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('curl --proxy --cacert: an allowed HTTPS request is decided on method and path, and forwarded over verified TLS', async () => {
    const before = upstream.requests.length;
    const r = await run('curl', ['-sS', '--proxy', al.proxyUrl, '--cacert', interceptCaFile, `${upstream.origin}/v1/users?page=2`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { tls: true, url: '/v1/users?page=2' });
    assert.equal(upstream.requests.length, before + 1);
    const ev = (await al.audit()).filter((e) => e.event === 'request' && e.path === '/v1/users').at(-1)!;
    assert.equal(ev.scheme, 'https');
    assert.equal(ev.decision, 'allow');
    assert.equal(ev.via, 'tunnel');
  });

  it('curl: a path rule denies over HTTPS as over HTTP; the upstream receives nothing', async () => {
    const before = upstream.requests.length;
    const r = await run('curl', ['-sS', '--proxy', al.proxyUrl, '--cacert', interceptCaFile, '-w', '\n%{http_code}', `${upstream.origin}/admin/keys`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '403');
    assert.equal((JSON.parse(body!) as { rule: string }).rule, 'no-admin');
    assert.equal(upstream.requests.length, before);
  });

  it('a request that needs approval over HTTPS: 202 at once, then after approval the identical retry is forwarded once', async () => {
    const before = upstream.requests.length;
    const send = (extra: string[]) =>
      run('curl', ['-sS', '--proxy', al.proxyUrl, '--cacert', interceptCaFile, '-d', '{"month":11}', ...extra, '-w', '\n%{http_code}', `${upstream.origin}/exports/ledger`]);
    const first = await send(['-H', 'Prefer: respond-async']);
    const [body, code] = first.stdout.split('\n');
    assert.equal(code, '202', body);
    const id = (JSON.parse(body!) as { approval_id: string }).approval_id;
    assert.equal(upstream.requests.length, before);
    const approved = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: 'Bearer bob-https-token' } });
    assert.equal(approved.status, 200);
    const retry = await send([]);
    assert.equal(retry.stdout.split('\n').at(-1), '200');
    assert.equal(upstream.requests.length, before + 1);
    assert.equal(upstream.requests.at(-1)!.method, 'POST');
  });

  it('a client that does not trust Airlock\'s CA refuses the connection (nothing is sent)', async () => {
    const before = upstream.requests.length;
    const r = await run('curl', ['-sS', '--proxy', al.proxyUrl, `${upstream.origin}/v1/x`]);
    assert.notEqual(r.code, 0);
    assert.equal(upstream.requests.length, before);
  });

  it('Python urllib through HTTPS_PROXY with an SSL context trusting the CA', async () => {
    const script = [
      'import ssl, urllib.request',
      `ctx = ssl.create_default_context(cafile=${JSON.stringify(interceptCaFile)})`,
      `print(urllib.request.urlopen("${upstream.origin}/v1/py", context=ctx).read().decode())`,
    ].join('\n');
    const r = await run('python3', ['-c', script], proxyEnv(al.proxyUrl));
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { url: string }).url, '/v1/py');
  });

  it('Node fetch through EnvHttpProxyAgent trusting the CA', async () => {
    const saved = process.env;
    process.env = proxyEnv(al.proxyUrl);
    const dispatcher = new EnvHttpProxyAgent({ requestTls: { ca: interceptCaPem } });
    try {
      const res = await undiciFetch(`${upstream.origin}/v1/node`, { dispatcher });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { url: string }).url, '/v1/node');
    } finally {
      await dispatcher.close();
      process.env = saved;
    }
  });

  it('a WebSocket over intercepted TLS (wss://) is decided and spliced', async () => {
    const dispatcher = new ProxyAgent({ uri: al.proxyUrl, requestTls: { ca: interceptCaPem } });
    try {
      assert.equal(await webSocketRoundTrip(`wss://127.0.0.1:${upstream.port}/ws/secure`, dispatcher, 'hi'), 'tls echo: hi');
      const ev = (await al.audit()).filter((e) => e.event === 'request' && e.path === '/ws/secure').at(-1)!;
      assert.equal(ev.scheme, 'https');
      assert.equal(ev.rule, 'sockets');
    } finally {
      await dispatcher.close();
    }
  });

  it('a TLS server name (SNI) other than the CONNECT host is refused', async () => {
    const proxy = new URL(al.proxyUrl);
    const socket = netConnect(Number(proxy.port), proxy.hostname);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`CONNECT 127.0.0.1:${upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:${upstream.port}\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    const outcome = await new Promise<string>((resolve) => {
      const tls = tlsConnect({ socket, servername: 'bank.example.com', ca: interceptCaPem });
      tls.once('secureConnect', () => resolve('connected'));
      tls.once('error', (err) => resolve(`refused: ${err.message}`));
    });
    assert.match(outcome, /^refused/);
    const closed = (await al.audit()).filter((e) => e.event === 'tunnel_closed').at(-1)!;
    assert.match(String(closed.reason), /bank\.example\.com does not match/);
  });

  it('a Host header naming another host inside the intercepted tunnel is a 400', async () => {
    const r = await run('curl', ['-sS', '--proxy', al.proxyUrl, '--cacert', interceptCaFile, '-H', 'Host: bank.example.com', '-w', '\n%{http_code}', `${upstream.origin}/v1/x`]);
    assert.equal(r.stdout.split('\n').at(-1), '400');
  });

  it('a passthrough host is tunnelled without interception: the client sees the upstream\'s own certificate', async () => {
    const pinned = await startTestAirlock(
      {
        'policy.yaml': `
version: 1
tls: { passthrough: ["127.0.0.1"] }
rules:
  - id: host-ok
    match: { hosts: [127.0.0.1], ports: [${upstream.port}] }
    action: allow
`,
      },
      { caCertFile: interceptCaFile, caKeyFile: join(dir, 'ca.key') },
    );
    try {
      // Trusting only the upstream's CA: works only if nothing in between re-signs the connection.
      const r = await run('curl', ['-sS', '--proxy', pinned.proxyUrl, '--cacert', join(dir, 'upstream-ca.crt'), `${upstream.origin}/anything`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { url: string }).url, '/anything');
      const tunnel = (await pinned.audit()).filter((e) => e.event === 'tunnel').at(-1)!;
      assert.equal(tunnel.passthrough, true);
      assert.equal(tunnel.decision, 'allow');
    } finally {
      await pinned.close();
    }
  });

  it('a raw tunnel refuses a TLS server name other than the CONNECT host (domain fronting)', async () => {
    const hostLevel = await startTestAirlock({
      'policy.yaml': `version: 1\nrules:\n  - id: host-ok\n    match: { hosts: [127.0.0.1], ports: [${upstream.port}] }\n    action: allow\n`,
    });
    try {
      const tunnelWith = async (servername: string): Promise<string> => {
        const proxy = new URL(hostLevel.proxyUrl);
        const socket = netConnect(Number(proxy.port), proxy.hostname);
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write(`CONNECT 127.0.0.1:${upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:${upstream.port}\r\n\r\n`);
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        return new Promise<string>((resolve) => {
          // Trusting the upstream's own CA: this is the upstream's certificate, end to end.
          const tls = tlsConnect({ socket, servername, ca: upstreamCaPem, checkServerIdentity: () => undefined });
          tls.once('secureConnect', () => {
            tls.destroy();
            resolve('connected');
          });
          tls.once('error', () => resolve('refused'));
          tls.once('close', () => resolve('refused'));
        });
      };
      assert.equal(await tunnelWith('127.0.0.1.nip.example'), 'refused');
      const closed = (await hostLevel.audit()).filter((e) => e.event === 'tunnel_closed' && e.decision === 'deny').at(-1)!;
      assert.match(String(closed.reason), /127\.0\.0\.1\.nip\.example does not match the CONNECT host 127\.0\.0\.1/);
      // Without SNI (as clients connecting to an address send it) the tunnel works.
      const r = await run('curl', ['-sS', '--proxy', hostLevel.proxyUrl, '--cacert', join(dir, 'upstream-ca.crt'), `${upstream.origin}/anything`]);
      assert.equal((JSON.parse(r.stdout) as { url: string }).url, '/anything');
    } finally {
      await hostLevel.close();
    }
  });

  it('an upstream certificate Airlock cannot verify is a 502 with a clear body, never a silent downgrade', async () => {
    const strict = await startTestAirlock(
      {
        'policy.yaml': `version: 1\nrules:\n  - id: reads\n    match: { methods: [GET], hosts: [127.0.0.1], ports: [${upstream.port}], paths: ["/v1/**"] }\n    action: allow\n`,
      },
      { caCertFile: interceptCaFile, caKeyFile: join(dir, 'ca.key') },
    );
    try {
      const before = upstream.requests.length;
      const r = await run('curl', ['-sS', '--proxy', strict.proxyUrl, '--cacert', interceptCaFile, '-w', '\n%{http_code}', `${upstream.origin}/v1/x`]);
      const [body, code] = r.stdout.split('\n');
      assert.equal(code, '502');
      const e = JSON.parse(body!) as { error: string; message: string };
      assert.equal(e.error, 'upstream_error');
      assert.match(e.message, /CERT|certificate|SELF_SIGNED|UNABLE_TO_VERIFY/i);
      assert.equal(upstream.requests.length, before);
    } finally {
      await strict.close();
    }
  });
});
