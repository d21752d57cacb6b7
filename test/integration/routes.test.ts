import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { hashToken } from '../../src/request/identify.js';
import { eventsFor, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const APPROVER_TOKEN = 'route-approver-token';

/** The answers a route's upstream gives, by path under /api/. */
function upstreamAt(port: () => number): Parameters<typeof startUpstream>[0] {
  return (req, res, body) => {
    switch (req.url) {
      case '/api/redirect-absolute':
        res.writeHead(302, { location: `http://127.0.0.1:${port()}/api/next?step=2#top` });
        return res.end();
      case '/api/redirect-relative':
        res.writeHead(303, { location: '/api/other' });
        return res.end();
      case '/api/redirect-away':
        res.writeHead(302, { location: 'https://elsewhere.example/x' });
        return res.end();
      case '/api/redirect-outside':
        res.writeHead(302, { location: '/admin/' });
        return res.end();
      case '/api/cookies':
        res.writeHead(200, [
          'Set-Cookie', `sid=1; Domain=127.0.0.1; Path=/api/; HttpOnly`,
          'Set-Cookie', 't=2; Path=/',
          'Set-Cookie', 'u=3; Path=/api',
          'Connection', 'keep-alive, X-Upstream-Secret',
          'X-Upstream-Secret', 'hop',
          'Keep-Alive', 'timeout=5',
          'Content-Length', '2',
        ]);
        return res.end('ok');
      case '/api/slow':
        return; // never answers
      default:
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ url: req.url, method: req.method, bytes: body.length }));
    }
  };
}

describe('reverse routes: answers rewritten back onto the route (http-proxy-3)', () => {
  let up: Upstream;
  let wss: WebSocketServer;
  let wsPort: number;
  let al: TestAirlock;
  before(async () => {
    let upPort = 0;
    up = await startUpstream(upstreamAt(() => upPort));
    upPort = up.port;
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wsPort = (wss.address() as AddressInfo).port;
    wss.on('connection', (ws, req) => ws.on('message', (data) => ws.send(`echo ${req.url}: ${String(data)}`)));
    al = await startTestAirlock(
      {
        'policy.yaml': `
version: 1
approvers:
  owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(APPROVER_TOKEN)}"]
routes:
  - { prefix: /svc/, upstream: "http://127.0.0.1:${up.port}/api/" }
  - { prefix: /live/, upstream: "http://127.0.0.1:${wsPort}/ws/" }
  - { prefix: /meta/, upstream: "http://169.254.169.254/latest/" }
rules:
  - id: api
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/api/**", "/ws/**"] }
    action: allow
  - id: held
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/api/held"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 5m }
  - id: metadata
    match: { hosts: [169.254.169.254] }
    action: allow
`,
      },
      { upstreamTimeoutMs: 500 },
    );
  });
  after(async () => {
    await al.close();
    await up.close();
    wss.close();
    for (const c of wss.clients) c.terminate();
  });

  const get = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${al.proxyUrl}${path}`, { redirect: 'manual', ...init });

  it('a Location on the upstream under its path comes back under the route prefix, relative to Airlock', async () => {
    const abs = await get('/svc/redirect-absolute');
    assert.equal(abs.status, 302);
    assert.equal(abs.headers.get('location'), '/svc/next?step=2#top');
    assert.ok(abs.headers.get('airlock-request-id'));
    assert.equal((await get('/svc/redirect-relative')).headers.get('location'), '/svc/other');
    // Elsewhere, or outside the route's upstream path: passed on as it is, and decided when followed.
    assert.equal((await get('/svc/redirect-away')).headers.get('location'), 'https://elsewhere.example/x');
    assert.equal((await get('/svc/redirect-outside')).headers.get('location'), '/admin/');
  });

  it('cookies lose the upstream domain and are scoped to the route prefix; hop-by-hop headers stay upstream', async () => {
    const r = await get('/svc/cookies');
    assert.equal(r.status, 200);
    assert.deepEqual(r.headers.getSetCookie(), ['sid=1; Path=/svc/; HttpOnly', 't=2; Path=/svc/', 'u=3; Path=/svc']);
    assert.equal(r.headers.get('x-upstream-secret'), null);
    assert.equal(r.headers.get('keep-alive'), null);
    assert.equal(await r.text(), 'ok');
  });

  it('forwards the canonical request: path mapped, query kept, Host naming the upstream', async () => {
    const r = await get('/svc/items/./a//b?x=%41&y=1');
    assert.equal(r.status, 200);
    const got = up.requests.at(-1)!;
    assert.equal(got.url, '/api/items/a/b?x=%41&y=1');
    assert.equal(got.headers.host, `127.0.0.1:${up.port}`);
    const [ev] = eventsFor(await al.audit(), r.headers.get('airlock-request-id')!);
    assert.equal(ev!.via, 'route');
    assert.equal(ev!.path, '/api/items/a/b');
  });

  it('a request held for approval on a route is forwarded through it once approved', async () => {
    const held = fetch(`${al.proxyUrl}/svc/held`, { method: 'POST', body: 'twelve bytes' });
    let id: string | undefined;
    for (let i = 0; i < 200 && id === undefined; i++) {
      const list = (await (await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${APPROVER_TOKEN}` } })).json()) as { approvals: { id: string }[] };
      id = list.approvals[0]?.id;
      if (id === undefined) await new Promise((r) => setImmediate(r));
    }
    assert.ok(id, 'the request was held');
    const approved = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${APPROVER_TOKEN}` } });
    assert.equal(approved.status, 200);
    const res = await held;
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { url: '/api/held', method: 'POST', bytes: 12 });
  });

  it('the destination guard decides the address a route dials: cloud metadata is refused and recorded', async () => {
    const r = await get('/meta/meta-data/iam/');
    assert.equal(r.status, 403);
    const body = (await r.json()) as { error: string; message: string };
    assert.equal(body.error, 'denied');
    assert.match(body.message, /169\.254\.169\.254/);
    const events = eventsFor(await al.audit(), r.headers.get('airlock-request-id')!);
    assert.ok(events.some((e) => e.event === 'destination_refused'));
  });

  it('an upstream that does not answer in time is a 504', async () => {
    const r = await get('/svc/slow');
    assert.equal(r.status, 504);
    assert.equal(((await r.json()) as { error: string }).error, 'upstream_error');
  });

  it('a WebSocket through a route: decided on the upstream URL, spliced, and its close recorded', async () => {
    const ws = new WebSocket(`${al.proxyUrl.replace('http', 'ws')}/live/chat?room=1`);
    await once(ws, 'open');
    ws.send('hello');
    const [data] = (await once(ws, 'message')) as [Buffer];
    assert.equal(String(data), 'echo /ws/chat?room=1: hello');
    ws.close();
    await once(ws, 'close');
    const deadline = Date.now() + 5000;
    let closed: Record<string, unknown> | undefined;
    while (!closed && Date.now() < deadline) {
      closed = (await al.audit()).find((e) => e.event === 'websocket_closed');
      if (!closed) await new Promise((r) => setImmediate(r));
    }
    assert.ok(closed, 'websocket_closed is written when the splice ends');
    assert.ok(Number(closed.bytes_up) > 0 && Number(closed.bytes_down) > 0);
    const [ev] = eventsFor(await al.audit(), String(closed.request_id));
    assert.equal(ev!.via, 'route');
    assert.equal(ev!.path, '/ws/chat');
  });
});
