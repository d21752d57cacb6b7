import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { blockActionPayload, postSlackInteraction, startFakeSlack, viewSubmissionPayload, type FakeSlack } from '../helpers/fake-slack.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const SECRET = 'slack-signing-secret';
const BOB_TOKEN = 'bob-api-token';
const USERS = {
  carl: { id: 'U0CARL', email: 'carl@example.com', name: 'carl' }, // listed by Slack id
  dana: { id: 'U0DANA', email: 'dana@example.com', name: 'dana' }, // listed by email
  gina: { id: 'U0GINA', email: 'gina@example.com', name: 'gina' }, // member of a listed user group
  bob: { id: 'U0BOB', email: 'bob@example.com', name: 'bob' }, // API approver, also in Slack
  alice: { id: 'U0ALICE', email: 'alice@example.com', name: 'alice' }, // owns the agent
  eve: { id: 'U0EVE', email: 'eve@example.com', name: 'eve' }, // nobody
};

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com }
approvers:
  data-owners: { slack: [${USERS.carl.id}, dana@example.com, S0OPS, alice@example.com], api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(BOB_TOKEN)}"]
rules:
  - id: exports
    description: Exports need a data owner
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m, channel: "#ai-approvals" }
  - id: transfers
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/transfers/**"] }
    action: approve
    approval: { approvers: [data-owners], required: 2, wait: 30s, expires: 10m, channel: "#ai-approvals" }
  - id: queries
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/queries/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m, channel: "#ai-approvals", grants: { maxDuration: 1h, maxUses: 5 } }
  - id: fleeting
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/fleeting/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 1s, expires: 1s, channel: "#ai-approvals" }
`;
}

type Block = { type: string; elements?: { action_id?: string; value?: string }[] };

function buttons(blocks: unknown): { action_id?: string; value?: string }[] {
  const list = (typeof blocks === 'string' ? JSON.parse(blocks) : blocks) as Block[];
  return list.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []);
}

describe('Slack approvals (HTTP delivery)', () => {
  let slack: FakeSlack;
  let up: Upstream;
  let al: TestAirlock;
  let events: string;
  before(async () => {
    slack = await startFakeSlack();
    for (const u of Object.values(USERS)) slack.users.set(u.id, { email: u.email, name: u.name });
    slack.groups.set('S0OPS', [USERS.gina.id]);
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot', slack: { botToken: 'xoxb-test', signingSecret: SECRET, apiUrl: slack.apiUrl } });
    events = `${al.adminUrl}/slack/events`;
  });
  after(async () => {
    await al.close();
    await up.close();
    await slack.close();
  });

  /** Send a held request and wait until its Slack message is posted (failed attempts skipped); returns it and the pending client. */
  async function hold(path: string, body = 'x', extra: string[] = []) {
    let from = slack.calls.length;
    const client = run('curl', ['-sS', '-x', al.proxyUrl, '-d', body, ...extra, '-w', '\n%{http_code}', `${up.origin}${path}`]);
    let posted = await slack.waitFor('chat.postMessage', from);
    while (posted.failedWith) {
      from = posted.index + 1;
      posted = await slack.waitFor('chat.postMessage', from);
    }
    const approve = buttons(posted.args.blocks).find((b) => b.action_id === 'airlock_approve');
    assert.ok(approve?.value, 'the message has an Approve button carrying the approval id');
    return { client, id: approve.value, posted };
  }

  function click(user: { id: string; name: string }, actionId: string, id: string) {
    return postSlackInteraction(
      events,
      SECRET,
      blockActionPayload({ userId: user.id, userName: user.name, actionId, value: id, channelId: 'C0APPROVALS', messageTs: '1700000000.000100', responseUrl: slack.responseUrl(), triggerId: 'trigger-1' }),
    );
  }

  it('posts the request to the rule\'s channel; an approver\'s click forwards it once and updates the message without buttons', async () => {
    const before = up.requests.length;
    const { client, id, posted } = await hold('/exports/customers', '{"rows":5}', ['-H', 'X-Airlock-Reason: quarterly numbers']);
    assert.equal(posted.args.channel, '#ai-approvals');
    assert.match(JSON.stringify(posted.args.blocks), /quarterly numbers/);
    const from = slack.calls.length;
    assert.equal((await click(USERS.carl, 'airlock_approve', id)).status, 200);
    const [, code] = (await client).stdout.split('\n');
    assert.equal(code, '200');
    assert.equal(up.requests.length, before + 1);
    const update = await slack.waitFor('chat.update', from);
    assert.equal(buttons(update.args.blocks).length, 0, 'no stale buttons');
    const shown = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.deepEqual(((await shown.json()) as { approval: { approvals: { approver: string }[] } }).approval.approvals.map((a) => a.approver), ['carl@example.com']);
  });

  it('Deny with reason opens a modal; its submission denies, and the held client gets the reason', async () => {
    const { client, id } = await hold('/exports/all');
    const from = slack.calls.length;
    assert.equal((await click(USERS.dana, 'airlock_deny_reason', id)).status, 200);
    const opened = await slack.waitFor('views.open', from);
    const view = (typeof opened.args.view === 'string' ? JSON.parse(opened.args.view) : opened.args.view) as { private_metadata: string; callback_id: string };
    const submit = await postSlackInteraction(
      events,
      SECRET,
      viewSubmissionPayload({ userId: USERS.dana.id, callbackId: view.callback_id, privateMetadata: view.private_metadata, values: { reason: { text: { type: 'plain_text_input', value: 'export one month only' } } } }),
    );
    assert.equal(submit.status, 200);
    const [body, code] = (await client).stdout.split('\n');
    assert.equal(code, '403');
    assert.equal((JSON.parse(body!) as { error: string }).error, 'approval_denied');
    assert.match(body!, /export one month only/);
    // A click after the decision is harmless: an ephemeral note, nothing changes.
    const late = slack.calls.length;
    await click(USERS.carl, 'airlock_approve', id);
    assert.match(String((await slack.waitFor('chat.postEphemeral', late)).args.text), /already denied/);
  });

  it('Edit & approve opens a modal with the editable fields; its submission forwards the edited request, and a bad patch is shown in the modal', async () => {
    const { client, id } = await hold('/exports/edited?limit=all&keep=1', '{"rows":5000000}', ['-H', 'content-type: application/json']);
    const from = slack.calls.length;
    assert.equal((await click(USERS.dana, 'airlock_edit', id)).status, 200);
    const opened = await slack.waitFor('views.open', from);
    const view = (typeof opened.args.view === 'string' ? JSON.parse(opened.args.view) : opened.args.view) as { private_metadata: string; callback_id: string; blocks: { block_id?: string; element?: { initial_value?: string } }[] };
    assert.equal(view.blocks.find((b) => b.block_id === 'edit_query')?.element?.initial_value, 'limit=all&keep=1', 'the query is prefilled');
    const submit = (patch: string, query: string) =>
      postSlackInteraction(
        events,
        SECRET,
        viewSubmissionPayload({
          userId: USERS.dana.id,
          callbackId: view.callback_id,
          privateMetadata: view.private_metadata,
          values: { edit_body: { value: { type: 'plain_text_input', value: patch } }, edit_query: { value: { type: 'plain_text_input', value: query } } },
        }),
      );
    const bad = await submit('[{"op":"replace","path":"/nope","value":1}]', 'limit=all&keep=1');
    assert.equal(bad.status, 200);
    assert.match(bad.body, /"response_action":"errors".*does not apply/);
    const ok = await submit('[{"op":"replace","path":"/rows","value":10000}]', 'limit=10000&keep=1');
    assert.equal(ok.status, 200);
    const [body, code] = (await client).stdout.split('\n');
    assert.equal(code, '200', body);
    const seen = up.requests.at(-1)!;
    assert.equal(seen.url, '/exports/edited?limit=10000&keep=1');
    assert.deepEqual(JSON.parse(seen.body.toString()), { rows: 10000 });
    const shown = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    const v = ((await shown.json()) as { approval: { edit: { by: string } | null } }).approval;
    assert.equal(v.edit?.by, 'dana@example.com');
  });

  it('Approve & grant…: a modal within the rule\'s caps; the grant is announced with Revoke, updated on use, and revoked by another approver', async () => {
    const json = ['-H', 'content-type: application/json'];
    const { client, id } = await hold('/queries/orders', '{"table":"orders"}', json);
    let from = slack.calls.length;
    assert.equal((await click(USERS.dana, 'airlock_grant', id)).status, 200);
    const opened = await slack.waitFor('views.open', from);
    const view = (typeof opened.args.view === 'string' ? JSON.parse(opened.args.view) : opened.args.view) as { private_metadata: string; callback_id: string };
    const submit = (uses: string) =>
      postSlackInteraction(
        events,
        SECRET,
        viewSubmissionPayload({
          userId: USERS.dana.id,
          callbackId: view.callback_id,
          privateMetadata: view.private_metadata,
          values: {
            grant_for: { value: { type: 'static_select', selected_option: { text: { type: 'plain_text', text: '30m' }, value: '30m' } } },
            grant_uses: { value: { type: 'plain_text_input', value: uses } },
            grant_pin: { value: { type: 'plain_text_input', value: '/table' } },
          },
        }),
      );
    const tooMany = await submit('9');
    assert.match(tooMany.body, /"response_action":"errors".*more than this rule allows \(5\)/);
    from = slack.calls.length;
    assert.equal((await submit('2')).status, 200);
    assert.equal((await client).stdout.split('\n').at(-1), '200', 'the approved request goes');
    const announced = await slack.waitFor('chat.postMessage', from);
    assert.match(JSON.stringify(announced.args.blocks), /Grant\*.*billing-bot may .*where `\/table` = `\\"orders\\"`.*2 of 2 uses left/);
    const revoke = buttons(announced.args.blocks).find((b) => b.action_id === 'airlock_revoke_grant');
    assert.ok(revoke?.value);

    from = slack.calls.length;
    const used = await run('curl', ['-sS', '-x', al.proxyUrl, ...json, '-d', '{"table":"orders"}', '-D', '-', '-o', '/dev/null', `${up.origin}/queries/orders`]);
    assert.match(used.stdout, new RegExp(`airlock-grant-id: ${revoke.value}`, 'i'));
    assert.match(JSON.stringify((await slack.waitFor('chat.update', from)).args.blocks), /1 of 2 uses left/);

    from = slack.calls.length;
    assert.equal((await click(USERS.eve, 'airlock_revoke_grant', revoke.value)).status, 200);
    assert.match(String((await slack.waitFor('chat.postEphemeral', from)).args.text), /not an approver of rule queries/);
    from = slack.calls.length;
    assert.equal((await click(USERS.carl, 'airlock_revoke_grant', revoke.value)).status, 200);
    const revoked = await slack.waitFor('chat.update', from);
    assert.match(JSON.stringify(revoked.args.blocks), /Revoked\* by carl@example\.com/);
    assert.equal(buttons(revoked.args.blocks).length, 0);
    const after = await run('curl', ['-sS', '-x', al.proxyUrl, ...json, '-H', 'prefer: respond-async', '-d', '{"table":"orders"}', '-w', '\n%{http_code}', `${up.origin}/queries/orders`]);
    assert.equal(after.stdout.split('\n').at(-1), '202', 'revoked: it asks again');
  });

  it('two approvers: a user-group member then an approver listed by email; the message shows 1 of 2 in between', async () => {
    const before = up.requests.length;
    const { client, id } = await hold('/transfers/9');
    let from = slack.calls.length;
    await click(USERS.gina, 'airlock_approve', id);
    const progress = await slack.waitFor('chat.update', from);
    assert.match(JSON.stringify(progress.args.blocks), /1 of 2/);
    assert.equal(buttons(progress.args.blocks).length > 0, true, 'still decidable');
    from = slack.calls.length;
    await click(USERS.gina, 'airlock_approve', id);
    const again = await slack.waitFor('chat.postEphemeral', from);
    assert.match(String(again.args.text), /already/);
    await click(USERS.dana, 'airlock_approve', id);
    assert.equal((await client).stdout.split('\n').at(-1), '200');
    assert.equal(up.requests.length, before + 1);
  });

  it('someone who is not an approver, and the agent\'s owner, get an ephemeral explanation; nothing changes', async () => {
    const { client, id } = await hold('/exports/guarded');
    for (const [user, why] of [[USERS.eve, /not an approver/], [USERS.alice, /owns the requesting agent/]] as const) {
      const from = slack.calls.length;
      assert.equal((await click(user, 'airlock_approve', id)).status, 200);
      const ephemeral = await slack.waitFor('chat.postEphemeral', from);
      assert.equal(ephemeral.args.user, user.id);
      assert.match(String(ephemeral.args.text), why);
    }
    const still = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal(((await still.json()) as { approval: { state: string } }).approval.state, 'pending');
    // The API approver settles it; the Slack message follows.
    const from = slack.calls.length;
    await fetch(`${al.adminUrl}/v1/approvals/${id}/deny`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` }, body: JSON.stringify({ reason: 'not now' }) });
    const update = await slack.waitFor('chat.update', from);
    assert.equal(buttons(update.args.blocks).length, 0);
    assert.match(JSON.stringify(update.args.blocks), /not now/);
    assert.equal((await client).stdout.split('\n').at(-1), '403');
  });

  it('forged, stale and future signatures change nothing; a replayed payload is acted on once', async () => {
    const { client, id } = await hold('/transfers/replay');
    const payload = blockActionPayload({ userId: USERS.carl.id, actionId: 'airlock_approve', value: id, channelId: 'C0APPROVALS', messageTs: '1700000000.000100', responseUrl: slack.responseUrl() });
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await postSlackInteraction(events, SECRET, payload, { signature: 'v0=' + '0'.repeat(64) })).status, 401);
    assert.equal((await postSlackInteraction(events, 'wrong-secret', payload)).status, 401);
    assert.equal((await postSlackInteraction(events, SECRET, payload, { timestamp: now - 600 })).status, 401);
    assert.equal((await postSlackInteraction(events, SECRET, payload, { timestamp: now + 600 })).status, 401);
    const signedAt = now;
    const first = await postSlackInteraction(events, SECRET, payload, { timestamp: signedAt });
    assert.equal(first.status, 200);
    const from = slack.calls.length;
    const replay = await postSlackInteraction(events, SECRET, payload, { timestamp: signedAt });
    assert.equal(replay.status, 200);
    const view = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    const approval = ((await view.json()) as { approval: { state: string; approvals: unknown[] } }).approval;
    assert.equal(approval.state, 'pending');
    assert.equal(approval.approvals.length, 1);
    assert.equal(slack.calls.slice(from).filter((c) => c.method === 'chat.postEphemeral').length, 0, 'the replay was not even looked at');
    await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal((await client).stdout.split('\n').at(-1), '200');
  });

  it('Slack down: posting is retried; when Slack refuses outright the request is still decided through the API, never passed', async () => {
    slack.failNext('chat.postMessage', 2, 'http500');
    const retried = await hold('/exports/retried');
    assert.ok(retried.id, 'posted after two failed attempts');
    await fetch(`${al.adminUrl}/v1/approvals/${retried.id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal((await retried.client).stdout.split('\n').at(-1), '200');

    const before = up.requests.length;
    slack.failNext('chat.postMessage', 1, 'error');
    const client = run('curl', ['-sS', '-x', al.proxyUrl, '-d', 'no slack', '-w', '\n%{http_code}', `${up.origin}/exports/no-slack`]);
    let pending: { id: string } | undefined;
    const deadline = Date.now() + 10_000;
    while (!pending && Date.now() < deadline) {
      const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
      pending = ((await res.json()) as { approvals: { id: string; request: { url: string } }[] }).approvals.find((a) => a.request.url.endsWith('/exports/no-slack'));
      if (!pending) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.ok(pending);
    assert.equal(up.requests.length, before, 'a Slack failure lets nothing through');
    await fetch(`${al.adminUrl}/v1/approvals/${pending.id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal((await client).stdout.split('\n').at(-1), '200');
    assert.equal(up.requests.length, before + 1);
  });

  it('expiry updates the message too', async () => {
    const { client, id } = await hold('/fleeting/1');
    const from = slack.calls.length;
    assert.equal((await client).stdout.split('\n').at(-1), '403');
    const update = await slack.waitFor('chat.update', from);
    assert.equal(buttons(update.args.blocks).length, 0);
    assert.match(JSON.stringify(update.args.blocks), /expired/i);
    assert.match(JSON.stringify(update.args.blocks), new RegExp(id.slice(0, 8)));
  });
});

describe('Slack approvals (Socket Mode)', () => {
  it('a click delivered over the Socket Mode connection approves the held request', async () => {
    const slack = await startFakeSlack();
    slack.users.set(USERS.carl.id, { email: USERS.carl.email, name: USERS.carl.name });
    const up = await startUpstream();
    const al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot', slack: { botToken: 'xoxb-test', appToken: slack.appToken, apiUrl: slack.apiUrl } });
    try {
      const client = run('curl', ['-sS', '-x', al.proxyUrl, '-d', 'socket', '-w', '\n%{http_code}', `${up.origin}/exports/socket`]);
      const posted = await slack.waitFor('chat.postMessage');
      const id = buttons(posted.args.blocks).find((b) => b.action_id === 'airlock_approve')!.value!;
      const ack = await slack.sendSocketPayload(
        blockActionPayload({ userId: USERS.carl.id, actionId: 'airlock_approve', value: id, channelId: 'C0APPROVALS', messageTs: '1700000000.000100', responseUrl: slack.responseUrl() }),
      );
      assert.ok(ack.envelope_id);
      assert.equal((await client).stdout.split('\n').at(-1), '200');
      assert.equal(up.requests.length, 1);
    } finally {
      await al.close();
      await up.close();
      await slack.close();
    }
  });
});
