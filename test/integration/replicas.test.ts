import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { hashToken } from '../../src/request/identify.js';
import { run, startTestAirlock, startUpstream, withEnvProxyAgent, type TestAirlock, type Upstream } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const TOKENS = { bob: 'bob-token', dana: 'dana-token', erin: 'erin-token' };

function policy(up: Upstream): string {
  return `
version: 1
approvers:
  owners: { api: [bob@example.com, dana@example.com, erin@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
  erin@example.com: ["${hashToken(TOKENS.erin)}"]
rules:
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${up.port}] }
    action: allow
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m }
  - id: race
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/race/**"] }
    action: approve
    approval: { approvers: [owners], required: 2, wait: 30s, expires: 10m }
`;
}

interface View {
  id: string;
  state: string;
  request: { url: string };
}

function approve(al: TestAirlock, id: string, token: string): Promise<Response> {
  return fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
}

/** The pending approval for a request to `path`, seen through replica `al`'s API (bounded poll). */
async function pendingFor(al: TestAirlock, path: string): Promise<View> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${TOKENS.bob}` } });
    // 503 while this replica is still reconnecting to Redis: ask again.
    const list = res.ok ? ((await res.json()) as { approvals: View[] }).approvals : [];
    const found = list.find((v) => new URL(v.request.url).pathname === path);
    if (found) return found;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`no pending approval for ${path}`);
}

function arrivals(up: Upstream, path: string): number {
  return up.requests.filter((r) => r.url === path).length;
}

describe('two replicas sharing Redis', () => {
  let redis: RedisServer;
  let up: Upstream;
  let a: TestAirlock;
  let b: TestAirlock;
  before(async () => {
    redis = await startRedisServer();
    up = await startUpstream();
    a = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-a' });
    b = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-b' });
  });
  after(async () => {
    await a.close();
    await b.close();
    await up.close();
    await redis.stop();
  });

  it('curl held by replica A, approved through replica B: A forwards it once and curl gets the answer', async () => {
    const held = run('curl', ['-sS', '-x', a.proxyUrl, '-d', '{"n":1}', '-w', '\n%{http_code}', `${up.origin}/exports/a-held`]);
    const view = await pendingFor(b, '/exports/a-held');
    assert.equal(arrivals(up, '/exports/a-held'), 0);
    assert.equal((await approve(b, view.id, TOKENS.dana)).status, 200);
    const [body, code] = (await held).stdout.split('\n');
    assert.equal(code, '200', body);
    assert.equal(arrivals(up, '/exports/a-held'), 1);
    const executed = (await a.audit()).find((e) => e.event === 'approval_executed' && e.approval_id === view.id);
    assert.equal(executed?.replica, 'replica-a');
  });

  it('Node fetch held by replica B, approved through replica A', async () => {
    await withEnvProxyAgent(b.proxyUrl, async (dispatcher) => {
      const held = undiciFetch(`${up.origin}/exports/b-held`, { method: 'POST', body: 'x', dispatcher });
      const view = await pendingFor(a, '/exports/b-held');
      assert.equal((await approve(a, view.id, TOKENS.erin)).status, 200);
      const res = await held;
      assert.equal(res.status, 200);
      assert.equal(arrivals(up, '/exports/b-held'), 1);
    });
  });

  it('race: 50 concurrent approvals from three approvers on both replicas, the request held on both → one upstream request', async () => {
    const path = '/race/1';
    // The same request held on A and, joining the same approval, on B.
    const onA = run('curl', ['-sS', '-x', a.proxyUrl, '-d', 'race', '-w', '\n%{http_code}', `${up.origin}${path}`]);
    const view = await pendingFor(a, path);
    const onB = run('curl', ['-sS', '-x', b.proxyUrl, '-d', 'race', '-w', '\n%{http_code}', `${up.origin}${path}`]);
    const deadline = Date.now() + 10_000;
    while (!(await b.audit()).some((e) => e.event === 'approval_joined' && e.approval_id === view.id)) {
      assert.ok(Date.now() < deadline, 'the copy on B joined the approval');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const tokens = [TOKENS.bob, TOKENS.dana, TOKENS.erin];
    const votes = await Promise.all(Array.from({ length: 50 }, (_, i) => approve(i % 2 ? a : b, view.id, tokens[i % 3]!)));
    const statuses = votes.map((v) => v.status);
    assert.equal(statuses.filter((s) => s === 200).length, 2, `exactly two votes count: ${statuses.join(',')}`);
    assert.ok(statuses.every((s) => s === 200 || s === 409));
    const codes = [(await onA).stdout.split('\n').at(-1), (await onB).stdout.split('\n').at(-1)].sort();
    assert.deepEqual(codes, ['200', '403'], 'one held copy is forwarded, the other is told the approval was used');
    assert.equal(arrivals(up, path), 1);
  });

  it('replica A dies while holding; after approval the identical retry through B goes through once', async () => {
    const path = '/exports/orphan';
    const dying = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-dying' });
    const held = run('curl', ['-sS', '-x', dying.proxyUrl, '-d', 'orphan', '-w', '\n%{http_code}', `${up.origin}${path}`]);
    const view = await pendingFor(b, path);
    await dying.close();
    await held;
    assert.equal((await approve(b, view.id, TOKENS.bob)).status, 200);
    assert.equal(arrivals(up, path), 0, 'nobody forwards a request whose client is gone');
    const retry = await run('curl', ['-sS', '-x', b.proxyUrl, '-d', 'orphan', '-w', '\n%{http_code}', `${up.origin}${path}`]);
    assert.equal(retry.stdout.split('\n').at(-1), '200');
    const again = await run('curl', ['-sS', '-x', b.proxyUrl, '-d', 'orphan', '-H', 'Prefer: respond-async', '-w', '\n%{http_code}', `${up.origin}${path}`]);
    assert.equal(again.stdout.split('\n').at(-1), '202', 'spent: the next identical request asks again');
    assert.equal(arrivals(up, path), 1);
  });

  it('Redis down: requests needing approval fail closed with 503, allowed traffic flows; holding resumes when it is back', async () => {
    const readsBefore = up.requests.length;
    await redis.stop();
    try {
      for (let i = 0; i < 5; i++) {
        const allowed = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', a.proxyUrl, `${up.origin}/status/${i}`]);
        assert.equal(allowed.stdout, '200');
        const held = await run('curl', ['-sS', '-x', b.proxyUrl, '-d', `outage ${i}`, '-w', '\n%{http_code}', `${up.origin}/exports/outage-${i}`]);
        const [body, code] = held.stdout.split('\n');
        assert.equal(code, '503', body);
        assert.equal((JSON.parse(body!) as { error: string }).error, 'approval_unavailable');
      }
      const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
      assert.match(metrics, /^airlock_approval_store_up 0$/m);
      assert.equal((await fetch(`${a.adminUrl}/readyz`)).status, 200, 'still ready: allowed traffic must keep flowing');
    } finally {
      await redis.start();
    }
    assert.equal(up.requests.filter((r) => r.url.startsWith('/exports/outage')).length, 0);
    assert.equal(up.requests.length, readsBefore + 5);

    // Back: both replicas reconnect by themselves (bounded wait), then holding works end to end again.
    const deadline = Date.now() + 15_000;
    let code = '';
    while (Date.now() < deadline && code !== '202') {
      code = (await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', b.proxyUrl, '-H', 'Prefer: respond-async', '-d', 'back', `${up.origin}/exports/after-outage`])).stdout;
    }
    assert.equal(code, '202');
    const view = await pendingFor(a, '/exports/after-outage');
    assert.equal((await approve(a, view.id, TOKENS.bob)).status, 200);
    const retry = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', b.proxyUrl, '-d', 'back', `${up.origin}/exports/after-outage`]);
    assert.equal(retry.stdout, '200');
    assert.equal(arrivals(up, '/exports/after-outage'), 1);
  });
});

describe('a replica shutting down while it holds a request', () => {
  let redis: RedisServer;
  let up: Upstream;
  let a: TestAirlock;
  let b: TestAirlock;
  before(async () => {
    redis = await startRedisServer();
    up = await startUpstream();
    a = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-a' });
    b = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-b' });
  });
  after(async () => {
    await b.close();
    await up.close();
    await redis.stop();
  });

  it('answers the held agent with a retryable 503; its retry on another replica joins the same approval', async () => {
    const held = run('curl', ['-sS', '-i', '-x', a.proxyUrl, '-d', 'x', `${up.origin}/exports/shutdown`]);
    const view = await pendingFor(b, '/exports/shutdown');
    // A holds the connection once it waits for the decision.
    for (let i = 0; i < 1000 && !/airlock_approvals_held 1/.test(await (await fetch(`${a.adminUrl}/metrics`)).text()); i++) await new Promise((r) => setImmediate(r));
    await a.close();
    const done = await held;
    const answer = done.stdout + done.stderr;
    assert.match(answer, /^HTTP\/1\.1 503/);
    assert.match(answer, /retry-after: 1/i);
    assert.match(answer, /"error":"approval_unavailable".*shutting down/);
    const retry = await run('curl', ['-sS', '-x', b.proxyUrl, '-H', 'Prefer: respond-async', '-d', 'x', `${up.origin}/exports/shutdown`]);
    assert.equal((JSON.parse(retry.stdout) as { approval_id: string }).approval_id, view.id);
  });
});
