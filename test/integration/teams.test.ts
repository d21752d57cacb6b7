import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { APP_ID, APP_SECRET, startFakeTeams, TENANT, type ConnectorCall, type FakeTeams, type TeamsUser } from '../helpers/fake-teams.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const BOB_TOKEN = 'bob-api-token';
const CONVERSATION = '19:approvals@thread.tacv2';
const ONCALL = '19:oncall@thread.tacv2';

function user(name: string, n: number): TeamsUser {
  const oid = `0000000${n}-1111-4222-8333-44445555666${n}`;
  return { id: `29:1${name}-teams-id`, aadObjectId: oid, userPrincipalName: `${name}@example.com`, name: `${name[0]!.toUpperCase()}${name.slice(1)} Example` };
}

const USERS = {
  carl: user('carl', 1), // listed by Entra object id
  dana: user('dana', 2), // listed by user principal name
  bob: user('bob', 3), // an API approver, in Teams by the same name
  alice: user('alice', 4), // owns the agent (and is listed)
  eve: user('eve', 5), // nobody
};

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com }
approvers:
  data-owners: { teams: ["${USERS.carl.aadObjectId.toUpperCase()}", Dana@Example.com, alice@example.com], api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(BOB_TOKEN)}"]
rules:
  - id: exports
    description: Exports need a data owner
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m, teams: "${CONVERSATION}", editableHeaders: [x-export-format] }
  - id: transfers
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/transfers/**"] }
    action: approve
    approval: { approvers: [data-owners], required: 2, wait: 30s, expires: 10m, teams: "${CONVERSATION}" }
  - id: queries
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/queries/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m, grants: { maxDuration: 1h, maxUses: 3 } }
`;
}

type Card = { body: { type: string; inlines?: { text: string }[] }[]; actions?: { type: string; title: string; verb?: string; data?: { approvalId?: string } }[] };

function cardOf(call: ConnectorCall): Card {
  const attachments = call.body.attachments as { contentType: string; content: Card }[];
  assert.equal(attachments[0]?.contentType, 'application/vnd.microsoft.card.adaptive');
  return attachments[0]!.content;
}

function textOf(card: Card): string {
  return card.body.map((b) => (b.inlines ?? []).map((i) => i.text).join('')).join('\n');
}

describe('Teams approvals', () => {
  let teams: FakeTeams;
  let up: Upstream;
  let al: TestAirlock;
  let bot: string;
  before(async () => {
    teams = await startFakeTeams();
    for (const u of Object.values(USERS)) teams.users.set(u.id, u);
    up = await startUpstream();
    al = await startTestAirlock(
      { 'policy.yaml': policy(up) },
      {
        identity: 'billing-bot',
        teams: { appId: APP_ID, appSecret: APP_SECRET, tenantId: TENANT, defaultConversation: ONCALL, serviceUrl: teams.serviceUrl, openIdMetadataUrl: teams.openIdMetadataUrl, tokenUrl: teams.tokenUrl },
      },
    );
    bot = `${al.adminUrl}/teams/messages`;
  });
  after(async () => {
    await al.close();
    await up.close();
    await teams.close();
  });

  /** Send a held request and wait until its card is posted; returns it and the pending client. */
  async function hold(path: string, body = 'x', extra: string[] = []) {
    const from = teams.calls.length;
    const client = run('curl', ['-sS', '-x', al.proxyUrl, '-d', body, ...extra, '-w', '\n%{http_code}', `${up.origin}${path}`]);
    const posted = await teams.waitFor('POST', from);
    const approve = cardOf(posted).actions?.find((a) => a.verb === 'airlock.approve');
    assert.ok(approve?.data?.approvalId, 'the card has an Approve action carrying the approval id');
    return { client, id: approve.data.approvalId, posted };
  }

  async function approval(id: string): Promise<{ state: string; approvals: { approver: string }[]; decided_by?: string }> {
    const res = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    return ((await res.json()) as { approval: { state: string; approvals: { approver: string }[] } }).approval;
  }

  it('posts the request as a card to the rule\'s conversation; an approver\'s click forwards it once and updates the card for everyone', async () => {
    const before = up.requests.length;
    const { client, id, posted } = await hold('/exports/customers', '{"rows":5}', ['-H', 'X-Airlock-Reason: quarterly numbers [click](https://evil.example)']);
    assert.equal(posted.conversationId, CONVERSATION);
    const card = cardOf(posted);
    const text = textOf(card);
    assert.match(text, /POST http:\/\/127\.0\.0\.1:\d+\/exports\/customers/);
    assert.match(text, /billing-bot/);
    assert.match(text, /quarterly numbers \[click\]\(https:\/\/evil\.example\)/, 'the agent\'s reason is shown as it was written');
    assert.ok(!JSON.stringify(card.body).includes('"type":"TextBlock"'), 'agent text is never put where Markdown is rendered');
    assert.deepEqual(card.actions?.map((a) => a.title), ['Approve', 'Deny', 'Deny with reason…', 'Edit & approve…']);
    assert.equal(typeof posted.body.summary, 'string');

    const from = teams.calls.length;
    const res = await teams.click(bot, USERS.carl, 'airlock.approve', id);
    assert.equal(res.status, 200);
    assert.equal(res.body.statusCode, 200);
    assert.equal(res.body.type, 'application/vnd.microsoft.card.adaptive');
    assert.equal((res.body.value as Card).actions, undefined, 'the clicker\'s card has no buttons left');
    const [, code] = (await client).stdout.split('\n');
    assert.equal(code, '200');
    assert.equal(up.requests.length, before + 1);
    const update = await teams.waitFor('PUT', from);
    assert.equal(update.conversationId, CONVERSATION);
    assert.equal(update.activityId, posted.activityId, 'the posted card is updated in place');
    assert.equal(cardOf(update).actions, undefined);
    assert.match(textOf(cardOf(update)), /Approved by carl@example\.com/);
    assert.deepEqual((await approval(id)).approvals.map((a) => a.approver), ['carl@example.com']);

    // A second click changes nothing: the request went once.
    const again = await teams.click(bot, USERS.dana, 'airlock.approve', id);
    assert.equal(again.status, 409);
    assert.equal(up.requests.length, before + 1);
  });

  it('refuses, and changes nothing for, a click by someone who is no approver, by the agent\'s owner, or with a token that does not hold', async () => {
    const { client, id } = await hold('/exports/forbidden');
    const refused: [string, Promise<{ status: number; body: Record<string, unknown> }>, number][] = [
      ['not an approver', teams.click(bot, USERS.eve, 'airlock.approve', id), 403],
      ['the agent\'s owner', teams.click(bot, USERS.alice, 'airlock.approve', id), 403],
      ['no token', teams.click(bot, USERS.carl, 'airlock.approve', id, { unsigned: true }), 401],
      ['expired token', teams.click(bot, USERS.carl, 'airlock.approve', id, { expiresIn: -600 }), 401],
      ['wrong audience', teams.click(bot, USERS.carl, 'airlock.approve', id, { audience: '00000000-0000-0000-0000-000000000bad' }), 401],
      ['another issuer', teams.click(bot, USERS.carl, 'airlock.approve', id, { issuer: `https://login.microsoftonline.com/${TENANT}/v2.0` }), 401],
      ['signed by another key', teams.click(bot, USERS.carl, 'airlock.approve', id, { key: teams.otherKey }), 401],
      ['serviceUrl not the one in its token', teams.click(bot, USERS.carl, 'airlock.approve', id, { serviceUrlClaim: 'https://smba.trafficmanager.net/emea/' }), 401],
      ['another tenant', teams.click(bot, USERS.carl, 'airlock.approve', id, { tenantId: '11111111-2222-3333-4444-555555555555' }), 403],
      ['our tenant in the conversation, another in channelData', teams.click(bot, USERS.carl, 'airlock.approve', id, { channelDataTenantId: '11111111-2222-3333-4444-555555555555' }), 403],
    ];
    for (const [what, answer, status] of refused) {
      const res = await answer;
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal((await approval(id)).state, 'pending', `${what}: nothing changed`);
    }
    const owner = await teams.click(bot, USERS.alice, 'airlock.approve', id);
    assert.match(JSON.stringify(owner.body), /owns the requesting agent/);
    assert.equal((owner.body as { statusCode: number }).statusCode, 400, 'a Universal Actions error');
    // Still decidable by an approver listed by principal name (written in another case).
    assert.equal((await teams.click(bot, USERS.dana, 'airlock.approve', id)).status, 200);
    assert.equal((await client).stdout.split('\n')[1], '200');
  });

  it('Deny with reason: the held client gets the reason; the card says who denied and why', async () => {
    const { client, id, posted } = await hold('/exports/all');
    const from = teams.calls.length;
    const res = await teams.click(bot, USERS.carl, 'airlock.deny', id, { data: { reason: 'not this month' } });
    assert.equal(res.status, 200);
    const [body, code] = (await client).stdout.split('\n');
    assert.equal(code, '403');
    assert.match(body!, /not this month/);
    const update = await teams.waitFor('PUT', from);
    assert.equal(update.activityId, posted.activityId);
    assert.match(textOf(cardOf(update)), /Denied by carl@example\.com[\s\S]*not this month/);
  });

  it('a decision made elsewhere (the approvals API) updates the card; the API and Teams name one approver once', async () => {
    const { client, id, posted } = await hold('/transfers/1');
    let from = teams.calls.length;
    assert.equal((await teams.click(bot, USERS.bob, 'airlock.approve', id)).status, 200);
    let update = await teams.waitFor('PUT', from);
    assert.match(textOf(cardOf(update)), /1 of 2 approvals: bob@example\.com/);
    assert.ok(cardOf(update).actions?.length, 'still asking');
    // Bob again, through the API: the same approver, not a second approval.
    const dup = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } });
    assert.equal(dup.status, 409);
    from = teams.calls.length;
    const deny = await fetch(`${al.adminUrl}/v1/approvals/${id}/deny`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BOB_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'changed my mind' }),
    });
    assert.equal(deny.status, 200);
    assert.equal((await client).stdout.split('\n')[1], '403');
    update = await teams.waitFor('PUT', from);
    assert.equal(update.activityId, posted.activityId);
    assert.equal(cardOf(update).actions, undefined);
    assert.match(textOf(cardOf(update)), /Denied by bob@example\.com/);
  });

  it('Edit & approve: the edited request is forwarded; Approve & grant: later identical requests go without asking until revoked', async () => {
    const before = up.requests.length;
    const { client, id } = await hold('/exports/big', '{"rows":5000000}', ['-H', 'content-type: application/json', '-H', 'x-export-format: csv']);
    const edited = await teams.click(bot, USERS.carl, 'airlock.edit', id, { data: { patch: '[{"op":"replace","path":"/rows","value":100}]', query: '', 'header.0': 'parquet' } });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    assert.equal((await client).stdout.split('\n')[1], '200');
    const sent = up.requests[before]!;
    assert.equal(sent.body.toString(), '{"rows":100}');
    assert.equal(sent.headers['x-export-format'], 'parquet');
    assert.equal(((await approval(id)) as { edit?: { by: string } }).edit?.by, 'carl@example.com');

    // A rule without a conversation of its own goes to the default one.
    const q = await hold('/queries/q1', '{"table":"orders"}', ['-H', 'content-type: application/json']);
    assert.equal(q.posted.conversationId, ONCALL);
    assert.ok(cardOf(q.posted).actions?.some((a) => a.title === 'Approve & grant…'));
    const from = teams.calls.length;
    const granted = await teams.click(bot, USERS.dana, 'airlock.grant', q.id, { data: { grantFor: '30m', grantUses: '2', grantPin: '/table' } });
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    assert.equal((await q.client).stdout.split('\n')[1], '200');
    let announced = await teams.waitFor('POST', from);
    while (!textOf(cardOf(announced)).startsWith('Grant:')) announced = await teams.waitFor('POST', announced.index + 1);
    assert.match(textOf(cardOf(announced)), /2 of 2 uses left/);
    const revoke = cardOf(announced).actions?.find((a) => a.verb === 'airlock.revokeGrant') as { data: { grantId: string } } | undefined;
    assert.ok(revoke);
    const direct = await run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'content-type: application/json', '-d', '{"table":"orders"}', '-w', '\n%{http_code}', `${up.origin}/queries/q2`]);
    assert.equal(direct.stdout.split('\n')[1], '200', 'covered by the grant');
    assert.equal((await teams.click(bot, USERS.eve, 'airlock.revokeGrant', '', { data: { grantId: revoke.data.grantId } })).status, 403);
    const revoked = await teams.click(bot, USERS.carl, 'airlock.revokeGrant', '', { data: { grantId: revoke.data.grantId } });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    const asks = teams.calls.length;
    const third = run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'content-type: application/json', '-d', '{"table":"orders"}', '-w', '\n%{http_code}', `${up.origin}/queries/q3`]);
    const card = await teams.waitFor('POST', asks);
    const thirdId = cardOf(card).actions?.find((a) => a.verb === 'airlock.approve')?.data?.approvalId;
    assert.ok(thirdId, 'asked again once revoked');
    await teams.click(bot, USERS.carl, 'airlock.deny', thirdId);
    assert.equal((await third).stdout.split('\n')[1], '403');
  });

  it('answers a message to the bot with the conversation id a rule names to post there', async () => {
    const from = teams.calls.length;
    const activity = {
      type: 'message',
      id: '1700000009999',
      channelId: 'msteams',
      serviceUrl: teams.serviceUrl,
      text: '<at>Airlock</at> hello',
      from: { id: USERS.eve.id, name: USERS.eve.name, aadObjectId: USERS.eve.aadObjectId },
      conversation: { id: '19:finance@thread.tacv2;messageid=1700000009999', conversationType: 'channel', isGroup: true, tenantId: TENANT },
      recipient: { id: `28:${APP_ID}`, name: 'Airlock' },
      channelData: { tenant: { id: TENANT }, channel: { id: '19:finance@thread.tacv2' } },
    };
    const res = await fetch(bot, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await teams.sign()}` }, body: JSON.stringify(activity) });
    assert.equal(res.status, 200);
    const reply = await teams.waitFor('POST', from);
    assert.match(String(reply.body.text), /approval\.teams: "19:finance@thread\.tacv2"/);
    const forged = await fetch(bot, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await teams.sign({ key: teams.otherKey })}` }, body: JSON.stringify(activity) });
    assert.equal(forged.status, 401);
    const notJson = await fetch(bot, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await teams.sign()}` }, body: 'null' });
    assert.equal(notJson.status, 400);
    assert.equal((await fetch(bot)).status, 405);
  });

  it('reports the Teams channel up on /readyz, and its failures counted (none here) from the start', async () => {
    const res = await fetch(`${al.adminUrl}/readyz`);
    assert.deepEqual(((await res.json()) as { channels: unknown }).channels, { teams: 'up' });
    assert.match(await (await fetch(`${al.adminUrl}/metrics`)).text(), /^airlock_channel_errors_total\{channel="teams"\} 0$/m);
  });
});

describe('Teams misconfigured or down', () => {
  it('never stops the proxy or API approvals: /readyz stays 200 and names Teams down', async () => {
    const teams = await startFakeTeams();
    const up = await startUpstream();
    const al = await startTestAirlock(
      { 'policy.yaml': policy(up) },
      { identity: 'billing-bot', teams: { appId: APP_ID, appSecret: 'wrong-secret', tenantId: TENANT, serviceUrl: teams.serviceUrl, openIdMetadataUrl: teams.openIdMetadataUrl, tokenUrl: teams.tokenUrl } },
    );
    try {
      const ready = await fetch(`${al.adminUrl}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(((await ready.json()) as { channels: unknown }).channels, { teams: 'down' });
      const asked = await run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'prefer: respond-async', '-d', 'x', `${up.origin}/exports/while-down`]);
      const id = (JSON.parse(asked.stdout) as { approval_id: string }).approval_id;
      assert.equal((await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${BOB_TOKEN}` } })).status, 200);
      const retried = await run('curl', ['-sS', '-x', al.proxyUrl, '-d', 'x', '-w', '\n%{http_code}', `${up.origin}/exports/while-down`]);
      assert.equal(retried.stdout.split('\n')[1], '200');
      // The card that could not be posted is counted (the post fails asynchronously: read until it shows, within a bound).
      let metrics = '';
      for (let i = 0; i < 100 && !/airlock_channel_errors_total\{channel="teams"\} [1-9]/.test(metrics); i++) metrics = await (await fetch(`${al.adminUrl}/metrics`)).text();
      assert.match(metrics, /^airlock_channel_errors_total\{channel="teams"\} [1-9]\d*$/m);
      assert.equal(teams.calls.length, 0, 'nothing reached the connector without a token');
    } finally {
      await al.close();
      await up.close();
      await teams.close();
    }
  });
});
