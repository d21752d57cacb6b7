/**
 * The approval store when Redis answers late, loses replies, or is written by someone else.
 * Replica A talks to Redis through a relay that holds back or drops chosen replies; replica B talks
 * to Redis directly. What users rely on: nothing is forwarded without a recorded approval, nothing
 * twice, and every forwarded approved request has its votes in the audit trail.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { hashToken } from '../../src/request/identify.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';
import { startRedisRelay, storeScript, type RedisCommand, type RedisRelay } from '../helpers/redis-relay.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const TOKENS = { bob: 'bob-token', dana: 'dana-token' };

function policy(up: Upstream): string {
  return `
version: 1
approvers:
  owners: { api: [bob@example.com, dana@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m }
`;
}

// Store scripts by shape (keys, arguments; decide's sixth argument is the verdict): see src/approvals/redis-store.ts.
const decideScript = (cmd: RedisCommand): boolean => storeScript(cmd, 2, 9) && (cmd[10] === 'approve' || cmd[10] === 'deny');
const claimScript = (cmd: RedisCommand): boolean => storeScript(cmd, 2, 5);

interface View {
  id: string;
  state: string;
  request: { url: string };
}

function approve(al: TestAirlock, id: string, token: string): Promise<Response> {
  return fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
}

async function pendingFor(al: TestAirlock, path: string): Promise<View> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${TOKENS.bob}` } });
    const list = res.ok ? ((await res.json()) as { approvals: View[] }).approvals : [];
    const found = list.find((v) => new URL(v.request.url).pathname === path);
    if (found) return found;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`no pending approval for ${path}`);
}

function held(al: TestAirlock, up: Upstream, path: string): Promise<{ code: string; body: string }> {
  return run('curl', ['-sS', '-x', al.proxyUrl, '-d', '{"rows":10}', '-w', '\n%{http_code}', `${up.origin}${path}`]).then((r) => {
    const lines = r.stdout.split('\n');
    return { code: lines.at(-1) ?? '', body: lines.slice(0, -1).join('\n') };
  });
}

const arrivals = (up: Upstream, path: string): number => up.requests.filter((r) => r.url === path).length;

describe('approval store faults', () => {
  let redis: RedisServer;
  let relay: RedisRelay;
  let up: Upstream;
  let a: TestAirlock;
  let b: TestAirlock;
  let attacker: Redis;
  before(async () => {
    redis = await startRedisServer();
    relay = await startRedisRelay(redis);
    up = await startUpstream();
    a = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: relay.url, replica: 'replica-a' });
    b = await startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-b' });
    attacker = new Redis(redis.url);
  });
  after(async () => {
    attacker.disconnect();
    await a.close();
    await b.close();
    await relay.close();
    await up.close();
    await redis.stop();
  });

  it('a vote whose reply comes after the command timeout: asked again, the approver is told it counted, and the request is forwarded once with the vote on record', async () => {
    const path = '/exports/late-vote';
    const agent = held(a, up, path);
    const view = await pendingFor(a, path);
    const late = relay.hold(decideScript);
    const voting = approve(a, view.id, TOKENS.bob);
    await late.seen;
    // The first reply is still held when the store asks again: release both once Redis answered the retry.
    await late.askedAgain;
    late.release();
    const res = await voting;
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { approval: View }).approval.state, 'approved');
    const answer = await agent;
    assert.equal(answer.code, '200', answer.body);
    assert.equal(arrivals(up, path), 1);
    const events = (await a.audit()).filter((e) => e.approval_id === view.id);
    assert.equal(events.filter((e) => e.event === 'approval_vote').length, 1, 'the vote is recorded once');
    const executed = events.find((e) => e.event === 'approval_executed');
    assert.deepEqual(executed?.approvers, ['bob@example.com']);
  });

  it('a claim whose reply is lost with its connection: the re-sent claim is recognised as the same one, and the request is forwarded once', async () => {
    const path = '/exports/lost-claim';
    const agent = held(a, up, path);
    const view = await pendingFor(b, path);
    const dropped = relay.drop(claimScript);
    assert.equal((await approve(b, view.id, TOKENS.dana)).status, 200);
    await dropped;
    const answer = await agent;
    assert.equal(answer.code, '200', `not "already used": ${answer.body}`);
    assert.equal(arrivals(up, path), 1);
    const executed = (await a.audit()).filter((e) => e.approval_id === view.id && e.event === 'approval_executed');
    assert.equal(executed.length, 1);
    assert.deepEqual(executed[0]?.approvers, ['dana@example.com'], 'the approver is on record with the execution, though the vote was cast on B');
  });

  async function recordKey(id: string): Promise<string> {
    const [key] = await attacker.keys(`airlock:approval:*:${id}`);
    assert.ok(key, `record of ${id} in Redis`);
    return key;
  }

  async function forgedCount(al: TestAirlock): Promise<number> {
    const text = await (await fetch(`${al.adminUrl}/metrics`)).text();
    return Number(/^airlock_approvals_forged_total (\d+)/m.exec(text)?.[1] ?? 'NaN');
  }

  it('someone with write access to Redis marks a pending request approved, with a made-up vote: it is not forwarded, and the attempt is counted and audited', async () => {
    const path = '/exports/forged';
    const agent = held(b, up, path);
    const view = await pendingFor(b, path);
    const before = await forgedCount(b);
    const key = await recordKey(view.id);
    const vote = JSON.stringify([{ approver: 'bob@example.com', at: Date.now(), seal: 'c2VhbGVkIGJ5IG5vYm9keQ' }]);
    await attacker.hset(key, 'state', 'approved', 'votes', vote, 'decidedAt', String(Date.now()), 'decidedBy', '"bob@example.com"');
    await attacker.publish('airlock:changes', JSON.stringify({ id: view.id, state: 'approved', holder: 'replica-b' }));
    const answer = await agent;
    assert.equal(answer.code, '403');
    assert.match(answer.body, /cannot be trusted/);
    assert.equal(arrivals(up, path), 0, 'nothing forwarded');
    assert.equal(await forgedCount(b), before + 1);
    const forged = (await b.audit()).find((e) => e.event === 'approval_forged' && e.approval_id === view.id);
    assert.match(String(forged?.reason), /only 0 of the 1 approvals/);
  });

  it('an approved record whose request was altered in Redis is not forwarded', async () => {
    const path = '/exports/altered';
    const agent = held(b, up, path);
    const view = await pendingFor(b, path);
    const key = await recordKey(view.id);
    const doc = JSON.parse((await attacker.hget(key, 'doc'))!) as { required: number };
    // Fewer approvals needed, and then a genuine approval to use it.
    doc.required = 0;
    await attacker.hset(key, 'doc', JSON.stringify(doc));
    assert.equal((await approve(b, view.id, TOKENS.dana)).status, 200);
    const answer = await agent;
    assert.equal(answer.code, '403');
    assert.match(answer.body, /altered/);
    assert.equal(arrivals(up, path), 0);
  });

  it('an executed approval rolled back to approved in Redis is not used again by the replica that used it', async () => {
    const path = '/exports/rolled-back';
    const first = held(b, up, path);
    const view = await pendingFor(b, path);
    assert.equal((await approve(b, view.id, TOKENS.dana)).status, 200);
    assert.equal((await first).code, '200');
    const key = await recordKey(view.id);
    const tag = /\{([0-9a-f]+)\}/.exec(key)![1];
    await attacker.hset(key, 'state', 'approved');
    await attacker.set(`airlock:active:{${tag}}`, key);
    const again = await held(b, up, path);
    assert.equal(again.code, '403', again.body);
    assert.match(again.body, /already used here/);
    assert.equal(arrivals(up, path), 1, 'forwarded once only');
  });

  it('Airlock sharing approvals through Redis does not start without a state key', async () => {
    await assert.rejects(
      startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-c', stateKey: '' }),
      /need a state key that every replica holds and Redis does not: set AIRLOCK_STATE_KEY/,
    );
    await assert.rejects(startTestAirlock({ 'policy.yaml': policy(up) }, { redis: redis.url, replica: 'replica-c', stateKey: 'short' }), /at least 32/);
  });
});
