import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const BOT_TOKEN = 'bot-token-1';
const TOKENS = { bob: 'bob-approver-token', dana: 'dana-approver-token', alice: 'alice-owner-token', eve: 'eve-not-an-approver' };

function policy(up: Upstream): string {
  return `
version: 1
classification: { header: X-Data-Classification, levels: [public, confidential], missing: public }
identities:
  billing-bot: { owner: alice@example.com, groups: [finance], tokens: ["${hashToken(BOT_TOKEN)}"] }
approvers:
  data-owners: { api: [bob@example.com, dana@example.com, alice@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
  alice@example.com: ["${hashToken(TOKENS.alice)}"]
  eve@example.com: ["${hashToken(TOKENS.eve)}"]
rules:
  - id: exports
    description: Exports need a data owner
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m }
  - id: transfers
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/transfers/**"] }
    action: approve
    approval: { approvers: [data-owners], required: 2, wait: 30s, expires: 10m }
  - id: quick
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/quick/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 1s, expires: 10m }
  - id: short-lived
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/short/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 1s, expires: 1s }
`;
}

interface View {
  id: string;
  state: string;
  reason: string | null;
  approvals: { approver: string }[];
  request: { method: string; url: string; body_preview: string; body_bytes: number };
}

describe('approvals: hold, return, retry', () => {
  let up: Upstream;
  let al: TestAirlock;
  let proxy: string;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { maxHeldBodyBytes: 64 * 1024 });
    proxy = `http://billing-bot:${BOT_TOKEN}@${new URL(al.proxyUrl).host}`;
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  async function api(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${al.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('a held request is forwarded exactly once when an approver approves it, and the client gets the upstream answer', async () => {
    const before = up.requests.length;
    const client = run('curl', ['-sS', '-i', '-x', proxy, '-H', 'X-Airlock-Reason: monthly report for finance', '-d', '{"rows":100}', `${up.origin}/exports/customers?month=11&token=s3cr3t`]);
    const view = await waitForPending(al, TOKENS.bob, '/exports/customers');
    assert.equal(view.reason, 'monthly report for finance');
    assert.equal(view.request.method, 'POST');
    assert.match(view.request.url, /month=11&token=REDACTED/);
    assert.equal(view.request.body_preview, '{"rows":100}');
    assert.equal(up.requests.length, before, 'nothing forwarded before approval');

    const approved = await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.bob);
    assert.equal(approved.status, 200);
    const r = await client;
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    assert.equal(up.requests.length, before + 1);
    const got = up.requests.at(-1)!;
    assert.equal(got.body.toString(), '{"rows":100}');
    assert.equal(got.url, '/exports/customers?month=11&token=s3cr3t');
    assert.equal(got.headers['x-airlock-reason'], undefined, 'the stated reason is not forwarded');
    const events = await al.audit();
    const kinds = events.filter((e) => e.approval_id === view.id).map((e) => e.event);
    assert.deepEqual(kinds, ['approval_requested', 'approval_vote', 'approval_decided', 'approval_executed']);
    const shown = await api('GET', `/v1/approvals/${view.id}`, TOKENS.dana);
    assert.equal((shown.json.approval as View).state, 'executed');
  });

  it('Prefer: respond-async answers 202 with a status URL; the identical retry after approval passes once', async () => {
    const before = up.requests.length;
    const send = () =>
      run('curl', ['-sS', '-x', proxy, '-H', 'Prefer: respond-async', '-H', 'Content-Type: application/json', '-d', '{"id":7}', '-w', '\n%{http_code}', `${up.origin}/exports/invoices`]);
    const first = await send();
    const [body, code] = first.stdout.split('\n');
    assert.equal(code, '202');
    const accepted = JSON.parse(body!) as { error: string; approval_id: string; status_url: string; status_path: string };
    assert.equal(accepted.error, 'approval_pending');
    assert.equal(accepted.status_url, `http://airlock.invalid/.airlock/approvals/${accepted.approval_id}`);

    // Through the proxy, as the agent sends everything else; and on the proxy listener directly.
    const polled = await run('curl', ['-sS', '-x', proxy, accepted.status_url]);
    assert.equal((JSON.parse(polled.stdout) as { state: string }).state, 'pending');
    const direct = await run('curl', ['-sS', '-H', `Proxy-Authorization: Basic ${Buffer.from(`billing-bot:${BOT_TOKEN}`).toString('base64')}`, `${al.proxyUrl}${accepted.status_path}`]);
    assert.equal((JSON.parse(direct.stdout) as { state: string }).state, 'pending');
    // Python requests with HTTP_PROXY, following the 202's Location as a client resolves it.
    const py = await run(
      'python3',
      ['-c', 'import requests,sys; r=requests.post(sys.argv[1], data=b\'{"id":7}\', headers={"Prefer":"respond-async","Content-Type":"application/json"}); s=requests.get(requests.compat.urljoin(sys.argv[1], r.headers["Location"])); print(r.status_code, s.status_code, s.json()["state"])', `${up.origin}/exports/invoices`],
      { ...process.env, HTTP_PROXY: proxy, http_proxy: proxy, NO_PROXY: '', no_proxy: '' },
    );
    assert.equal(py.stdout.trim(), '202 200 pending', py.stderr);

    const again = await send();
    assert.equal(again.stdout.split('\n')[1], '202');
    assert.equal((JSON.parse(again.stdout.split('\n')[0]!) as { approval_id: string }).approval_id, accepted.approval_id, 'an identical request joins the pending approval');

    assert.equal((await api('POST', `/v1/approvals/${accepted.approval_id}/approve`, TOKENS.dana)).status, 200);
    const retry = await run('curl', ['-sS', '-x', proxy, '-H', 'Content-Type: application/json', '-d', '{"id":7}', '-w', '\n%{http_code}', `${up.origin}/exports/invoices`]);
    assert.equal(retry.stdout.split('\n')[1], '200');
    assert.equal(up.requests.length, before + 1);
    const different = await send();
    assert.equal(different.stdout.split('\n')[1], '202', 'a spent approval is not reused: the next one asks again');
    assert.notEqual((JSON.parse(different.stdout.split('\n')[0]!) as { approval_id: string }).approval_id, accepted.approval_id);
    assert.equal(up.requests.length, before + 1);
  });

  it('a denial with a reason reaches the held client as 403 approval_denied; nothing is forwarded', async () => {
    const before = up.requests.length;
    const client = run('curl', ['-sS', '-x', proxy, '-H', 'Content-Type: application/json', '-d', '{"password":"hunter2","rows":1}', '-w', '\n%{http_code}', `${up.origin}/exports/everything`]);
    const view = await waitForPending(al, TOKENS.bob, '/exports/everything');
    assert.doesNotMatch(view.request.body_preview, /hunter2/, 'approvers never see secrets from the body');
    assert.match(view.request.body_preview, /REDACTED/);
    const noReason = await api('POST', `/v1/approvals/${view.id}/deny`, TOKENS.bob, {});
    assert.equal(noReason.status, 400);
    const denied = await api('POST', `/v1/approvals/${view.id}/deny`, TOKENS.bob, { reason: 'too broad: export one month' });
    assert.equal(denied.status, 200);
    const [body, code] = (await client).stdout.split('\n');
    assert.equal(code, '403');
    const e = JSON.parse(body!) as { error: string; message: string; approval_id: string };
    assert.equal(e.error, 'approval_denied');
    assert.match(e.message, /too broad: export one month/);
    assert.equal(e.approval_id, view.id);
    assert.equal(up.requests.length, before);
    const late = await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.dana);
    assert.equal(late.status, 409, 'any deny is final');
  });

  it('who may decide: not the agent owner, not a non-approver, not without a token', async () => {
    const client = run('curl', ['-sS', '-x', proxy, '-d', 'x', '-H', 'Prefer: respond-async', `${up.origin}/exports/owner-check`]);
    const id = (JSON.parse((await client).stdout) as { approval_id: string }).approval_id;
    const owner = await api('POST', `/v1/approvals/${id}/approve`, TOKENS.alice);
    assert.equal(owner.status, 403);
    assert.match(String(owner.json.message), /owns the requesting agent/);
    const outsider = await api('POST', `/v1/approvals/${id}/approve`, TOKENS.eve);
    assert.equal(outsider.status, 403);
    const anonymous = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST' });
    assert.equal(anonymous.status, 401);
    assert.match(((await anonymous.json()) as { message: string }).message, /^no approver token was sent/);
    const wrong = await api('GET', '/v1/approvals', 'not-a-token');
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.json.message), /^this token is no approver's: its SHA-256 is in no approverTokens entry/, 'a token that was sent is not called missing');
    const refused = (await al.audit()).filter((e) => e.event === 'approval_vote_refused' && e.approval_id === id);
    assert.equal(refused.length, 2);
  });

  it('required: 2 needs two distinct approvers; the same approver twice does not count', async () => {
    const before = up.requests.length;
    const client = run('curl', ['-sS', '-x', proxy, '-d', 'pay', '-w', '\n%{http_code}', `${up.origin}/transfers/42`]);
    const view = await waitForPending(al, TOKENS.bob, '/transfers/42');
    assert.equal((await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.bob)).status, 200);
    const twice = await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.bob);
    assert.equal(twice.status, 409);
    assert.equal(up.requests.length, before);
    const second = await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.dana);
    assert.equal((second.json.approval as View).state, 'approved');
    assert.equal((await client).stdout.split('\n')[1], '200');
    assert.equal(up.requests.length, before + 1);
  });

  it('when the rule\'s wait runs out the client gets 403 approval_pending with Retry-After', async () => {
    const r = await run('curl', ['-sS', '-i', '-x', proxy, '-d', 'q', `${up.origin}/quick/1`]);
    assert.match(r.stdout, /^HTTP\/1\.1 403/);
    assert.match(r.stdout, /retry-after: \d+/i);
    assert.match(r.stdout, /"error":"approval_pending"/);
  });

  it('nobody decides before the approval expires: 403 approval_expired, and the expiry is in the audit trail', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-x', proxy, '-d', 'late', '-w', '\n%{http_code}', `${up.origin}/short/1`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '403');
    const e = JSON.parse(body!) as { error: string; approval_id: string };
    assert.equal(e.error, 'approval_expired');
    assert.equal(up.requests.length, before);
    const deadline = Date.now() + 5000;
    let expired: Record<string, unknown> | undefined;
    while (!expired && Date.now() < deadline) {
      expired = (await al.audit()).find((ev) => ev.event === 'approval_decided' && ev.approval_id === e.approval_id);
      if (!expired) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal(expired?.state, 'expired');
  });

  it('a held body over the limit is refused with 413 body_too_large', async () => {
    const r = await run('curl', ['-sS', '-x', proxy, '--data-binary', 'x'.repeat(70 * 1024), '-w', '\n%{http_code}', `${up.origin}/exports/big`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '413');
    assert.equal((JSON.parse(body!) as { error: string }).error, 'body_too_large');
  });

  it('the agent can withdraw its pending request (cancelled); asking again makes a new approval', async () => {
    const ask = () => run('curl', ['-sS', '-x', proxy, '-d', 'withdraw me', '-H', 'Prefer: respond-async', `${up.origin}/exports/withdrawn`]);
    const first = JSON.parse((await ask()).stdout) as { approval_id: string; status_url: string };
    // Through the proxy, at the absolute status URL.
    const del = await run('curl', ['-sS', '-x', proxy, '-X', 'DELETE', first.status_url]);
    assert.equal((JSON.parse(del.stdout) as { state: string }).state, 'cancelled');
    const again = await run('curl', ['-sS', '-x', proxy, '-X', 'DELETE', '-w', '\n%{http_code}', first.status_url]);
    assert.equal(again.stdout.split('\n').at(-1), '409');
    const shown = await api('GET', `/v1/approvals/${first.approval_id}`, TOKENS.bob);
    assert.equal((shown.json.approval as View).state, 'cancelled');
    const second = JSON.parse((await ask()).stdout) as { approval_id: string };
    assert.notEqual(second.approval_id, first.approval_id);
  });

  it('removing an approver from the group takes effect for requests already pending', async () => {
    const r = await run('curl', ['-sS', '-x', proxy, '-d', 'revoked', '-H', 'Prefer: respond-async', `${up.origin}/exports/revocation`]);
    const id = (JSON.parse(r.stdout) as { approval_id: string }).approval_id;
    const revoked = policy(up).replace('data-owners: { api: [bob@example.com, dana@example.com, alice@example.com] }', 'data-owners: { api: [bob@example.com, alice@example.com] }');
    assert.notEqual(revoked, policy(up));
    await al.writePolicy('policy.yaml', revoked);
    await al.airlock.policies.reload();
    try {
      const dana = await api('POST', `/v1/approvals/${id}/approve`, TOKENS.dana);
      assert.equal(dana.status, 403);
      assert.match(String(dana.json.message), /not an approver/);
      assert.equal((await api('POST', `/v1/approvals/${id}/approve`, TOKENS.bob)).status, 200);
    } finally {
      await al.writePolicy('policy.yaml', policy(up));
      await al.airlock.policies.reload();
    }
  });

  it('a held request that the policy in force now denies is never forwarded, whoever approves it', async () => {
    const before = up.requests.length;
    const client = run('curl', ['-sS', '-x', proxy, '-w', '\n%{http_code}', '-d', '{"rows":1}', `${up.origin}/exports/emergency`]);
    const view = await waitForPending(al, TOKENS.bob, '/exports/emergency');
    const emergency = `${policy(up)}  - id: freeze-exports\n    match: { hosts: [127.0.0.1], paths: ["/exports/emergency"] }\n    action: deny\n    reason: Exports are frozen during the incident\n`;
    await al.writePolicy('policy.yaml', emergency);
    await al.airlock.policies.reload();
    try {
      assert.equal((await api('POST', `/v1/approvals/${view.id}/approve`, TOKENS.bob)).status, 200);
      const [body, code] = (await client).stdout.split('\n');
      assert.equal(code, '403');
      const refusal = JSON.parse(body!) as { error: string; rule: string; message: string };
      assert.equal(refusal.error, 'denied');
      assert.equal(refusal.rule, 'freeze-exports');
      assert.match(refusal.message, /the policy in force denies this request \(rule freeze-exports\): Exports are frozen/);
      assert.equal(up.requests.length, before, 'nothing reached the upstream');
      const shown = await api('GET', `/v1/approvals/${view.id}`, TOKENS.dana);
      assert.equal((shown.json.approval as View).state, 'cancelled');
      const decided = (await al.audit()).filter((e) => e.approval_id === view.id && e.event === 'approval_decided');
      assert.deepEqual(decided.map((e) => [e.state, e.approver]), [['approved', 'bob@example.com'], ['cancelled', '(policy in force)']]);
    } finally {
      await al.writePolicy('policy.yaml', policy(up));
      await al.airlock.policies.reload();
    }
  });

  it('one identity has at most limits.pendingApprovals requests waiting; the next distinct one gets 429, an identical one still joins', async () => {
    await al.writePolicy('policy.yaml', `${policy(up).replace('version: 1\n', 'version: 1\nlimits: { pendingApprovals: 2 }\n')}`);
    await al.airlock.policies.reload();
    const ask = (path: string) => run('curl', ['-sS', '-i', '-x', proxy, '-H', 'Prefer: respond-async', '-d', 'x', `${up.origin}/exports/${path}`]);
    const status = (r: { stdout: string }): string => /^HTTP\/1\.1 (\d{3})/.exec(r.stdout)?.[1] ?? '';
    const pending = (await api('GET', '/v1/approvals?state=pending', TOKENS.bob)).json.approvals as View[];
    for (const v of pending) await api('POST', `/v1/approvals/${v.id}/deny`, TOKENS.bob, { reason: 'clearing the queue' });
    try {
      const first = await ask('limit-1');
      assert.equal(status(first), '202');
      assert.equal(status(await ask('limit-2')), '202');
      const third = await ask('limit-3');
      assert.equal(status(third), '429');
      assert.match(third.stdout, /retry-after: 60/i);
      assert.match(third.stdout, /billing-bot already has 2 requests waiting for approval/);
      assert.equal(status(await ask('limit-1')), '202', 'an identical request joins its approval');
      const id = /"approval_id":"([^"]+)"/.exec(first.stdout)![1]!;
      await api('POST', `/v1/approvals/${id}/deny`, TOKENS.bob, { reason: 'no' });
      assert.equal(status(await ask('limit-3')), '202', 'a decision makes room');
      assert.ok((await al.audit()).some((e) => e.event === 'approval_limited' && e.identity === 'billing-bot' && e.limit === 2));
    } finally {
      await al.writePolicy('policy.yaml', policy(up));
      await al.airlock.policies.reload();
    }
  });

  it('the status URL answers only the identity that asked', async () => {
    const r = await run('curl', ['-sS', '-x', proxy, '-d', 'x', '-H', 'Prefer: respond-async', `${up.origin}/exports/private`]);
    const id = (JSON.parse(r.stdout) as { approval_id: string }).approval_id;
    const anon = await run('curl', ['-sS', '-w', '\n%{http_code}', `${al.proxyUrl}/.airlock/approvals/${id}`]);
    assert.equal(anon.stdout.split('\n').at(-1), '404', 'another caller (here anonymous) does not learn it exists');
    const other = await run('curl', ['-sS', '-w', '\n%{http_code}', '-x', al.proxyUrl, `http://AIRLOCK.invalid./.airlock/approvals/${id}`]);
    assert.equal(other.stdout.split('\n').at(-1), '404', 'nor through the proxy, however the host is spelled');
    // Anything else on the reserved host is answered by Airlock, never forwarded.
    const elsewhere = await run('curl', ['-sS', '-w', '\n%{http_code}', '-x', proxy, 'http://airlock.invalid/v1/anything']);
    assert.equal(elsewhere.stdout.split('\n').at(-1), '404');
    assert.match(elsewhere.stdout, /"error":"not_found"/);
  });
});

/** The pending approval for a request to `path`, once the held request has created it (polls the API, bounded). */
async function waitForPending(al: TestAirlock, token: string, path: string): Promise<View> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${token}` } });
    const found = ((await res.json()) as { approvals: View[] }).approvals.find((v) => new URL(v.request.url).pathname === path);
    if (found) return found;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('no pending approval appeared within 10 s');
}
