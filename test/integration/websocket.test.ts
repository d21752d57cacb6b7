import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ProxyAgent } from 'undici';
import { WebSocketServer } from 'ws';
import { startTestAirlock, webSocketRoundTrip, type TestAirlock } from '../helpers/harness.js';

/** A masked client text frame (payload < 126 bytes), as RFC 6455 requires clients to send. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

describe('WebSockets through the proxy', () => {
  let wss: WebSocketServer;
  let port: number;
  let al: TestAirlock;
  const paths: string[] = [];
  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    port = (wss.address() as AddressInfo).port;
    wss.on('connection', (ws, req) => {
      paths.push(req.url ?? '');
      ws.on('message', (data) => ws.send(`echo: ${String(data)}`));
    });
    al = await startTestAirlock({
      'policy.yaml': `
version: 1
rules:
  - id: sockets
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${port}], paths: ["/ws/**"] }
    action: allow
`,
    });
  });
  after(async () => {
    await al.close();
    wss.close();
    for (const c of wss.clients) c.terminate();
  });

  function handshake(path: string, upgrade = 'websocket'): Promise<{ res: IncomingMessage; socket?: Socket; status: number; body?: string }> {
    const key = randomBytes(16).toString('base64');
    return new Promise((resolve, reject) => {
      const proxy = new URL(al.proxyUrl);
      const req = request({
        host: proxy.hostname,
        port: Number(proxy.port),
        path: `http://127.0.0.1:${port}${path}`,
        headers: { host: `127.0.0.1:${port}`, connection: 'Upgrade', upgrade, 'sec-websocket-key': key, 'sec-websocket-version': '13' },
      });
      req.on('upgrade', (res: IncomingMessage, socket: Socket) => {
        assert.equal(res.headers['sec-websocket-accept'], createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'));
        resolve({ res, socket, status: res.statusCode ?? 0 });
      });
      req.on('response', (res: IncomingMessage) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ res, status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('an allowed handshake (absolute-form through HTTP_PROXY) is decided, audited and spliced: frames echo both ways', async () => {
    const { socket, status } = await handshake('/ws/echo?room=1');
    assert.equal(status, 101);
    socket!.write(clientFrame('hello'));
    const [frame] = (await once(socket!, 'data')) as [Buffer];
    assert.equal(frame[0], 0x81);
    assert.equal(frame.subarray(2, 2 + frame[1]!).toString(), 'echo: hello');
    socket!.destroy();
    assert.equal(paths.at(-1), '/ws/echo?room=1');
    const ev = (await al.audit()).filter((e) => e.event === 'request' && e.path === '/ws/echo').at(-1)!;
    assert.equal(ev.decision, 'allow');
    assert.equal(ev.rule, 'sockets');
  });

  it('undici WebSocket through a ProxyAgent (CONNECT, then the upgrade inside the tunnel)', async () => {
    const dispatcher = new ProxyAgent({ uri: al.proxyUrl, proxyTunnel: true });
    try {
      assert.equal(await webSocketRoundTrip(`ws://127.0.0.1:${port}/ws/undici`, dispatcher, 'through the tunnel'), 'echo: through the tunnel');
      const ev = (await al.audit()).filter((e) => e.event === 'request' && e.path === '/ws/undici').at(-1)!;
      assert.equal(ev.via, 'tunnel');
    } finally {
      await dispatcher.close();
    }
  });

  it('a handshake the policy denies gets 403 and never reaches the upstream', async () => {
    const before = paths.length;
    const { status, body } = await handshake('/admin/ws');
    assert.equal(status, 403);
    assert.equal((JSON.parse(body!) as { error: string }).error, 'denied');
    assert.equal(paths.length, before);
  });

  it('other upgrades (h2c) are refused', async () => {
    const { status, body } = await handshake('/ws/h2', 'h2c');
    assert.equal(status, 400);
    assert.match(body!, /only WebSocket upgrades/);
  });
});
