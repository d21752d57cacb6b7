import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventsFor, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

/** Send raw bytes to the proxy and collect everything it answers until it closes. */
function raw(port: number, bytes: string | Buffer, then?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    let data = '';
    s.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (then && data.includes('\r\n\r\n') && data.startsWith('HTTP/1.1 200')) {
        s.write(then);
        then = undefined;
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(data));
  });
}

const TLS_CLIENT_HELLO_START = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);

describe('CONNECT', () => {
  let up: Upstream;
  let al: TestAirlock;
  let port: number;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({
      'policy.yaml': `
version: 1
rules:
  - id: inspected-reads
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
  - id: localhost-any
    match: { hosts: [localhost] }
    action: allow
  - id: no-metadata
    match: { hosts: [metadata.internal] }
    action: deny
    reason: No metadata service
`,
    });
    port = Number(new URL(al.proxyUrl).port);
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('a host-level allow opens a raw tunnel (curl --proxytunnel) and the audit records it', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-p', '-x', al.proxyUrl, `http://localhost:${up.port}/anything/at/all`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).url, '/anything/at/all');
    assert.equal(up.requests.length, before + 1);
    const events = await al.audit();
    const tunnel = events.filter((e) => e.event === 'tunnel' && e.host === 'localhost').at(-1)!;
    assert.equal(tunnel.decision, 'allow');
    assert.equal(tunnel.rule, 'localhost-any');
    assert.equal(tunnel.port, up.port);
  });

  it('a denied host is refused with 403 before any tunnel opens', async () => {
    const reply = await raw(port, 'CONNECT metadata.internal:443 HTTP/1.1\r\nHost: metadata.internal:443\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 403/);
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { error: string; rule: string; request_id: string };
    assert.equal(body.error, 'denied');
    assert.equal(body.rule, 'no-metadata');
    const [ev] = eventsFor(await al.audit(), body.request_id);
    assert.equal(ev!.event, 'tunnel');
    assert.equal(ev!.decision, 'deny');
  });

  it('HTTPS to a host whose rules inspect requests is refused: it cannot be inspected without interception', async () => {
    const reply = await raw(port, 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 403/);
    assert.match(reply, /inspected-reads/);
  });

  it('TLS inside a tunnel to an inspected host is cut off; the upstream receives nothing', async () => {
    const before = up.requests.length;
    const reply = await raw(port, `CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`, TLS_CLIENT_HELLO_START);
    assert.equal(reply, 'HTTP/1.1 200 Connection Established\r\n\r\n');
    assert.equal(up.requests.length, before);
    const closed = (await al.audit()).filter((e) => e.event === 'tunnel_closed' && e.decision === 'deny').at(-1)!;
    assert.match(String(closed.reason), /TLS/);
  });

  it('plain HTTP inside a tunnel is decided request by request on one connection', async () => {
    const before = up.requests.length;
    const hostHeader = `127.0.0.1:${up.port}`;
    const reply = await raw(
      port,
      `CONNECT ${hostHeader} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`,
      Buffer.from(
        `GET /v1/ok HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n` +
          `GET /v2/no HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n` +
          `GET /v1/ok HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n`,
      ),
    );
    const statuses = [...reply.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '200', '403', '400']);
    assert.equal(up.requests.length, before + 1);
    assert.match(reply, /Host header/i);
  });

  it('a malformed CONNECT target is a 400', async () => {
    const reply = await raw(port, 'CONNECT user@127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.match(reply, /"error":"bad_request"/);
  });
});
