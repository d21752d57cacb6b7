import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { postSlackInteraction, startFakeSlack, type FakeSlack } from '../helpers/fake-slack.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const SECRET = 'slack-signing-secret';
const BOB = 'bob-api-token';

const policy = (up: Upstream): string => `
version: 1
approvers:
  owners: { slack: [U0CARL], api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(BOB)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m, channel: "#ai-approvals" }
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${up.port}] }
    action: allow
`;

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const readyz = async (al: TestAirlock): Promise<{ status: number; body: { status: string; channels: Record<string, string> } }> => {
  const res = await fetch(`${al.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; channels: Record<string, string> } };
};

describe('Slack down: the proxy goes on', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    const port = await closedPort();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { slack: { botToken: 'xoxb-test', signingSecret: SECRET, apiUrl: `http://127.0.0.1:${port}/api/` } });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('is ready, says the channel is down, forwards allowed traffic, and decides through the API', async () => {
    const r = await readyz(al);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready', channels: { slack: 'down' } });
    const metrics = await (await fetch(`${al.adminUrl}/metrics`)).text();
    assert.match(metrics, /airlock_channel_up\{channel="slack"\} 0/);
    const read = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', al.proxyUrl, `${up.origin}/x`]);
    assert.equal(read.stdout, '200');
    const held = await run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'Prefer: respond-async', '-d', 'x', `${up.origin}/exports/a`]);
    const id = (JSON.parse(held.stdout) as { approval_id: string }).approval_id;
    const approved = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB}` } });
    assert.equal(approved.status, 200);
  });
});

describe('Slack answering 500 at start, and signed bodies that are not payloads', () => {
  let slack: FakeSlack;
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    slack = await startFakeSlack();
    slack.failNext('auth.test', 2, 'http500');
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { slack: { botToken: 'xoxb-test', signingSecret: SECRET, apiUrl: slack.apiUrl } });
  });
  after(async () => {
    await al.close();
    await up.close();
    await slack.close();
  });

  it('retries until Slack answers, then reports the channel up', async () => {
    let call = await slack.waitFor('auth.test');
    while (call.failedWith) call = await slack.waitFor('auth.test', call.index + 1);
    let r = await readyz(al);
    for (let i = 0; i < 100 && r.body.channels.slack !== 'up'; i++) r = await readyz(al);
    assert.deepEqual(r.body.channels, { slack: 'up' });
  });

  for (const [what, body] of [
    ['payload=null', 'payload=null'],
    ['a payload that is a string', `payload=${encodeURIComponent('"x"')}`],
    ['no payload at all', 'token=x'],
  ] as const) {
    it(`a correctly signed ${what} is refused, and the process goes on`, async () => {
      const r = await postSlackInteraction(`${al.adminUrl}/slack/events`, SECRET, {}, { rawBody: body });
      assert.ok(r.status === 400 || r.status === 404, `status ${r.status}`);
      assert.equal((await readyz(al)).status, 200);
    });
  }

  it('a forged signature is a 401', async () => {
    const r = await postSlackInteraction(`${al.adminUrl}/slack/events`, SECRET, { type: 'block_actions' }, { signature: 'v0=deadbeef' });
    assert.equal(r.status, 401);
  });
});
