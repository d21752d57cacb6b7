/**
 * Approving with edits, end to end: curl is held, an approver edits the request through the
 * approvals API (and the CLI), the upstream receives the edited request, and the agent the upstream's
 * answer marked as modified.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const TOKENS = { bob: 'bob-token', dana: 'dana-token', erin: 'erin-token' };

function policy(up: Upstream): string {
  const where = `hosts: [127.0.0.1], ports: [${up.port}]`;
  return `
version: 1
approvers:
  owners: { api: [bob@example.com, dana@example.com] }
  dba: { api: [erin@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
  erin@example.com: ["${hashToken(TOKENS.erin)}"]
rules:
  # Among approve rules that match, the first decides: the specific ones come first.
  - id: huge-exports
    description: More than a million rows needs both owners
    match: { methods: [POST], ${where}, paths: ["/exports/**"], body: { json: { /rows: { gt: 1000000 } } } }
    action: approve
    approval: { approvers: [owners], required: 2, wait: 30s, expires: 10m, editableHeaders: [x-export-format] }
  - id: no-secrets-table
    match: { methods: [POST], ${where}, paths: ["/exports/**"], body: { json: { /table: { equals: secrets } } } }
    action: deny
  - id: dba-exports
    match: { methods: [POST], ${where}, paths: ["/exports/**"], query: { db: { equals: prod } } }
    action: approve
    approval: { approvers: [dba], wait: 30s, expires: 10m }
  - id: exports
    match: { methods: [POST], ${where}, paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m, editableHeaders: [X-Export-Format] }
`;
}

interface View {
  id: string;
  state: string;
  rule: string;
  required: number;
  approvals: { approver: string }[];
  request: { url: string; digest: string; body_bytes: number };
  edit: { by: string; changes: unknown; original_digest: string; digest: string; rule: string } | null;
}

async function pendingFor(al: TestAirlock, path: string): Promise<View> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${TOKENS.bob}` } });
    const list = ((await res.json()) as { approvals: View[] }).approvals;
    const found = list.find((v) => new URL(v.request.url).pathname === path);
    if (found) return found;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`no pending approval for ${path}`);
}

async function approve(al: TestAirlock, id: string, token: string, body: unknown = {}): Promise<{ status: number; json: { approval?: View; message?: string } }> {
  const res = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as { approval?: View; message?: string } };
}

/** curl through the proxy; returns status, response headers and body. */
async function held(al: TestAirlock, url: string, body: string, extra: string[] = []): Promise<{ code: string; headers: string; body: string }> {
  const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-D', '-', '-H', 'content-type: application/json', ...extra, '-d', body, '-w', '\n%{http_code}', url]);
  const lines = r.stdout.split('\n');
  const code = lines.pop() ?? '';
  const text = lines.join('\n');
  const split = text.indexOf('\r\n\r\n');
  return { code, headers: text.slice(0, split), body: text.slice(split + 4) };
}

describe('approve with edits', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream((req, res, body) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, body: body.toString(), format: req.headers['x-export-format'] ?? null }));
    });
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot' });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('an export of 5,000,000 rows edited to 10,000: both owners were needed, the edit by one moves it to the one-owner rule; the upstream receives the edited body', async () => {
    const path = '/exports/customers';
    const agent = held(al, `${up.origin}${path}?limit=all&keep=a%20b`, JSON.stringify({ table: 'customers', rows: 5_000_000 }), ['-H', 'x-export-format: csv']);
    const view = await pendingFor(al, path);
    assert.equal(view.rule, 'huge-exports');
    assert.equal(view.required, 2);
    const edit = { body: [{ op: 'replace', path: '/rows', value: 10_000 }], query: { limit: '10000' }, headers: { 'x-export-format': 'parquet' } };
    const res = await approve(al, view.id, TOKENS.bob, { edit });
    assert.equal(res.status, 200, res.json.message);
    const v = res.json.approval!;
    assert.equal(v.state, 'approved', 'the edited request needs one owner, and the editor is one');
    assert.equal(v.rule, 'exports');
    assert.equal(v.edit?.by, 'bob@example.com');
    assert.equal(v.edit?.original_digest, view.request.digest);
    assert.notEqual(v.edit?.digest, view.request.digest);

    const answer = await agent;
    assert.equal(answer.code, '200', answer.body);
    assert.match(answer.headers, new RegExp(`^airlock-approval-id: ${view.id}\\r?$`, 'mi'));
    assert.match(answer.headers, /^airlock-modified: true\r?$/im);
    const seen = JSON.parse(answer.body) as { url: string; body: string; format: string };
    assert.deepEqual(JSON.parse(seen.body), { table: 'customers', rows: 10_000 });
    assert.equal(seen.url, `${path}?limit=10000&keep=a%20b`, 'other parameters kept byte for byte');
    assert.equal(seen.format, 'parquet');
    assert.equal(up.requests.filter((r) => r.url.startsWith(path)).length, 1);

    const audit = (await al.audit()).filter((e) => e.approval_id === view.id);
    const edited = audit.find((e) => e.event === 'approval_edited');
    assert.equal(edited?.approver, 'bob@example.com');
    assert.equal(edited?.original_digest, view.request.digest);
    assert.equal(edited?.digest, v.edit?.digest);
    assert.deepEqual(edited?.changes, { body: [{ op: 'replace', path: '/rows' }], query: ['limit'], headers: ['x-export-format'] });
    assert.deepEqual(audit.find((e) => e.event === 'approval_executed')?.approvers, ['bob@example.com']);
  });

  it('with two approvals required, an edit restarts the count: the other owner approves the edited version again', async () => {
    const path = '/exports/payments';
    const agent = held(al, `${up.origin}${path}`, JSON.stringify({ table: 'payments', rows: 3_000_000 }));
    const view = await pendingFor(al, path);
    const first = await approve(al, view.id, TOKENS.dana);
    assert.deepEqual([first.json.approval?.state, first.json.approval?.approvals.length], ['pending', 1]);
    const edited = await approve(al, view.id, TOKENS.bob, { edit: { body: [{ op: 'replace', path: '/rows', value: 2_000_000 }] } });
    assert.equal(edited.status, 200, edited.json.message);
    assert.equal(edited.json.approval?.rule, 'huge-exports');
    assert.deepEqual(edited.json.approval?.approvals.map((a) => a.approver), ['bob@example.com'], 'dana approved the original, not this');
    assert.equal(edited.json.approval?.state, 'pending');
    const second = await approve(al, view.id, TOKENS.dana);
    assert.equal(second.json.approval?.state, 'approved');
    const answer = await agent;
    assert.equal(answer.code, '200');
    assert.equal(JSON.parse((JSON.parse(answer.body) as { body: string }).body).rows, 2_000_000);
  });

  it('an edit the policy would deny is refused and changes nothing; so are a patch that does not apply and a header the rule does not make editable', async () => {
    const path = '/exports/orders';
    const agent = held(al, `${up.origin}${path}`, JSON.stringify({ table: 'orders', rows: 10 }));
    const view = await pendingFor(al, path);
    const denied = await approve(al, view.id, TOKENS.bob, { edit: { body: [{ op: 'replace', path: '/table', value: 'secrets' }] } });
    assert.equal(denied.status, 403);
    assert.match(denied.json.message!, /would be denied by rule no-secrets-table/);
    const missing = await approve(al, view.id, TOKENS.bob, { edit: { body: [{ op: 'replace', path: '/nope', value: 1 }] } });
    assert.equal(missing.status, 400);
    assert.match(missing.json.message!, /does not apply/);
    const header = await approve(al, view.id, TOKENS.bob, { edit: { headers: { authorization: 'Bearer x' } } });
    assert.equal(header.status, 400);
    assert.match(header.json.message!, /not editable/);
    const malformed = await approve(al, view.id, TOKENS.bob, { edit: { body: [{ op: 'frobnicate', path: '/rows' }] } });
    assert.equal(malformed.status, 400);
    const still = await pendingFor(al, path);
    assert.equal(still.edit, null);
    assert.equal(still.state, 'pending');
    // A plain approval still works, and forwards the original.
    assert.equal((await approve(al, view.id, TOKENS.dana)).status, 200);
    const answer = await agent;
    assert.equal(answer.code, '200');
    assert.doesNotMatch(answer.headers, /airlock-modified/i);
    assert.deepEqual(JSON.parse((JSON.parse(answer.body) as { body: string }).body), { table: 'orders', rows: 10 });
  });

  it('an edit that moves the request to another rule hands it to that rule\'s approvers; the editor\'s vote does not count there', async () => {
    const path = '/exports/ledger';
    const agent = held(al, `${up.origin}${path}`, JSON.stringify({ table: 'ledger', rows: 5 }));
    const view = await pendingFor(al, path);
    const res = await approve(al, view.id, TOKENS.bob, { edit: { query: { db: 'prod' } } });
    assert.equal(res.status, 200, res.json.message);
    assert.equal(res.json.approval?.state, 'pending');
    assert.equal(res.json.approval?.rule, 'dba-exports');
    assert.equal(res.json.approval?.approvals.length, 0);
    assert.equal((await approve(al, view.id, TOKENS.dana)).status, 403, 'an owner is no approver of the dba rule');
    // The dba approves from the command line.
    const cli = await airlockCli(['approvals', 'approve', view.id, '--admin', al.adminUrl], { ...process.env, AIRLOCK_APPROVER_TOKEN: TOKENS.erin });
    assert.equal(cli.code, 0, cli.stderr);
    const answer = await agent;
    assert.equal(answer.code, '200');
    assert.equal((JSON.parse(answer.body) as { url: string }).url, `${path}?db=prod`);
  });

  it('the command line edits too: --patch, --query, --header', async () => {
    const path = '/exports/invoices';
    const agent = held(al, `${up.origin}${path}?limit=all`, JSON.stringify({ table: 'invoices', rows: 2_000_000 }));
    const view = await pendingFor(al, path);
    const env = { ...process.env, AIRLOCK_APPROVER_TOKEN: TOKENS.dana };
    const cli = await airlockCli(
      ['approvals', 'approve', view.id, '--admin', al.adminUrl, '--patch', '[{"op":"replace","path":"/rows","value":500}]', '--query', 'limit=500', '--header', 'x-export-format=json'],
      env,
    );
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /edited and approved/);
    const answer = await agent;
    assert.equal(answer.code, '200');
    const seen = JSON.parse(answer.body) as { url: string; body: string; format: string };
    assert.deepEqual([seen.url, JSON.parse(seen.body).rows, seen.format], [`${path}?limit=500`, 500, 'json']);
  });
});
