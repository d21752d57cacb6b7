/**
 * The cluster split: two proxy sidecars and two approvals replicas on one Redis, Slack (faked) talking
 * to the approvals replicas only. One Slack message per approval, the decision reaches the sidecar
 * that holds the agent, and an approvals replica going away changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { blockActionPayload, postSlackInteraction, startFakeSlack, type FakeSlack } from '../helpers/fake-slack.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const SECRET = 'slack-signing-secret';
const BOB_TOKEN = 'bob-api-token';
const DANA = { id: 'U0DANA', email: 'dana@example.com', name: 'dana' };

function policy(up: Upstream): string {
  return `
version: 1
approvers:
  owners: { slack: [${DANA.id}], api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(BOB_TOKEN)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m, channel: "#ai-approvals" }
`;
}

type Block = { type: string; elements?: { action_id?: string; value?: string }[] };
function approvalIdOf(blocks: unknown): string {
  const list = (typeof blocks === 'string' ? JSON.parse(blocks) : blocks) as Block[];
  const id = list.flatMap((b) => (b.type === 'actions' ? (b.elements ?? []) : [])).find((e) => e.action_id === 'airlock_approve')?.value;
  assert.ok(id, 'the message carries the approval id');
  return id;
}

describe('proxy sidecars and an approvals service sharing Redis', () => {
  let redis: RedisServer;
  let slack: FakeSlack;
  let up: Upstream;
  let sidecars: TestAirlock[];
  let service: TestAirlock[];
  before(async () => {
    redis = await startRedisServer();
    slack = await startFakeSlack();
    slack.users.set(DANA.id, { email: DANA.email, name: DANA.name });
    up = await startUpstream();
    const slackConfig = { botToken: 'xoxb-test', signingSecret: SECRET, apiUrl: slack.apiUrl };
    const files = { 'policy.yaml': policy(up) };
    sidecars = [
      await startTestAirlock(files, { role: 'proxy', redis: redis.url, replica: 'sidecar-1', identity: 'billing-bot', slack: slackConfig }),
      await startTestAirlock(files, { role: 'proxy', redis: redis.url, replica: 'sidecar-2', identity: 'billing-bot', slack: slackConfig }),
    ];
    service = [
      await startTestAirlock(files, { role: 'approvals', redis: redis.url, replica: 'approvals-1', slack: slackConfig }),
      await startTestAirlock(files, { role: 'approvals', redis: redis.url, replica: 'approvals-2', slack: slackConfig }),
    ];
  });
  after(async () => {
    for (const al of [...sidecars, ...service]) await al.close().catch(() => undefined);
    await up.close();
    await slack.close();
    await redis.stop();
  });

  const posts = (id: string) => slack.calls.filter((c) => c.method === 'chat.postMessage' && !c.failedWith && JSON.stringify(c.args.blocks).includes(id));

  it('a request held on a sidecar is posted once, decided in Slack through one approvals replica, and forwarded once by the sidecar', async () => {
    const from = slack.calls.length;
    const held = run('curl', ['-sS', '-x', sidecars[0]!.proxyUrl, '-d', '{"n":1}', '-w', '\n%{http_code}', `${up.origin}/exports/one`]);
    const posted = await slack.waitFor('chat.postMessage', from);
    const id = approvalIdOf(posted.args.blocks);
    const click = await postSlackInteraction(
      `${service[0]!.adminUrl}/slack/events`,
      SECRET,
      blockActionPayload({ userId: DANA.id, userName: DANA.name, actionId: 'airlock_approve', value: id, channelId: 'C0APPROVALS', messageTs: '1700000000.000100', responseUrl: slack.responseUrl(), triggerId: 'trigger-1' }),
    );
    assert.equal(click.status, 200);
    const [body, code] = (await held).stdout.split('\n');
    assert.equal(code, '200', body);
    assert.equal(up.requests.filter((r) => r.url === '/exports/one').length, 1);
    // The message is updated once it is sent: by then every replica heard of the request long ago.
    await slack.waitFor('chat.update', from);
    assert.equal(posts(id).length, 1, 'one message per approval, whatever the number of approvals replicas');
    assert.ok((await sidecars[0]!.audit()).some((e) => e.event === 'approval_executed' && e.approval_id === id && e.replica === 'sidecar-1'));
  });

  it('sidecars offer no approvals API; the approvals replicas have no proxy listener', async () => {
    const res = await fetch(`${sidecars[1]!.adminUrl}/v1/approvals`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { message: string }).message, /proxy role/);
    assert.equal(service[0]!.airlock.proxy, null);
    assert.equal((await fetch(`${service[0]!.adminUrl}/readyz`)).status, 200);
  });

  it('with one approvals replica gone, the other posts and decides', async () => {
    await service[0]!.close();
    const from = slack.calls.length;
    const held = run('curl', ['-sS', '-x', sidecars[1]!.proxyUrl, '-d', '{"n":2}', '-w', '\n%{http_code}', `${up.origin}/exports/two`]);
    const posted = await slack.waitFor('chat.postMessage', from);
    const id = approvalIdOf(posted.args.blocks);
    const res = await fetch(`${service[1]!.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal(res.status, 200);
    const [body, code] = (await held).stdout.split('\n');
    assert.equal(code, '200', body);
    assert.equal(up.requests.filter((r) => r.url === '/exports/two').length, 1);
    assert.equal(posts(id).length, 1);
  });

  it('the approvals role needs Redis', async () => {
    await assert.rejects(startTestAirlock({ 'policy.yaml': policy(up) }, { role: 'approvals' }), /approvals role shares approvals with the proxies through Redis/);
  });
});
