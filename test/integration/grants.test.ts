/**
 * Bounded grants, end to end: an approver approves a query and grants the same agent the same
 * action on the same table for 30 minutes, three times; it is used three times, then asks again;
 * another grant is revoked from the command line. Past a rule's caps, nothing is granted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const TOKENS = { bob: 'bob-token', dana: 'dana-token' };

function policy(up: Upstream): string {
  const where = `hosts: [127.0.0.1], ports: [${up.port}]`;
  return `
version: 1
approvers:
  owners: { api: [bob@example.com, dana@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
rules:
  - id: queries
    match: { methods: [POST], ${where}, paths: ["/db/query"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m, grants: { maxDuration: 1h, maxUses: 5 } }
  - id: migrations
    match: { methods: [POST], ${where}, paths: ["/db/migrate"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m }
  - id: transfers
    match: { methods: [POST], ${where}, paths: ["/transfers"] }
    action: approve
    approval: { approvers: [owners], required: 2, wait: 30s, expires: 10m, grants: { maxDuration: 1h, maxUses: 5 } }
`;
}

interface Answer {
  code: string;
  headers: string;
  body: string;
}

describe('grants', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'report-bot' });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  async function send(path: string, body: unknown, async = true): Promise<Answer> {
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-D', '-', ...(async ? ['-H', 'prefer: respond-async'] : []), '-H', 'content-type: application/json', '-d', JSON.stringify(body), '-w', '\n%{http_code}', `${up.origin}${path}`]);
    const lines = r.stdout.split('\n');
    const code = lines.pop() ?? '';
    const text = lines.join('\n');
    const split = text.indexOf('\r\n\r\n');
    return { code, headers: text.slice(0, split), body: text.slice(split + 4) };
  }

  async function approve(id: string, token: string, extra: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(extra),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  const approvalId = (a: Answer): string => (JSON.parse(a.body) as { approval_id: string }).approval_id;
  const grantHeader = (a: Answer): string | undefined => /^airlock-grant-id: (\S+)\r?$/im.exec(a.headers)?.[1];
  const arrivals = (): number => up.requests.filter((r) => r.url === '/db/query').length;

  it('a 30-minute grant for three uses, pinned to the table: used three times, then the next asks again; other tables always ask', async () => {
    const first = await send('/db/query', { table: 'orders', sql: 'select 1' });
    assert.equal(first.code, '202');
    const res = await approve(approvalId(first), TOKENS.bob, { grant: { for: '30m', uses: 3, pin: ['/table'] } });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const grant = res.json.grant as { id: string; uses: number; uses_left: number; pins: unknown; identity: string };
    assert.deepEqual([grant.uses, grant.uses_left, grant.identity], [3, 3, 'report-bot']);
    assert.deepEqual(grant.pins, [{ field: '/table', value: 'orders' }]);
    // The approved request itself is forwarded on the agent's retry, without using the grant.
    assert.equal((await send('/db/query', { table: 'orders', sql: 'select 1' })).code, '200');
    assert.equal(arrivals(), 1);

    for (let i = 1; i <= 3; i++) {
      const used = await send('/db/query', { table: 'orders', sql: `select ${i + 1}` });
      assert.equal(used.code, '200', `use ${i}: ${used.body}`);
      assert.equal(grantHeader(used), grant.id);
    }
    assert.equal(arrivals(), 4);
    const fourth = await send('/db/query', { table: 'orders', sql: 'select 5' });
    assert.equal(fourth.code, '202', 'used up: asks again');
    assert.equal((await send('/db/query', { table: 'customers', sql: 'select 1' })).code, '202', 'another table is not covered');
    assert.equal(arrivals(), 4);

    const audit = await al.audit();
    const used = audit.filter((e) => e.event === 'grant_used' && e.grant_id === grant.id);
    assert.deepEqual(used.map((e) => e.uses_left), [2, 1, 0]);
    assert.equal(audit.filter((e) => e.event === 'grant_created' && e.grant_id === grant.id).length, 1);
  });

  it('a grant revoked from the command line covers nothing more', async () => {
    const asked = await send('/db/query', { table: 'invoices', sql: 'select 1' });
    const env = { ...process.env, AIRLOCK_APPROVER_TOKEN: TOKENS.dana };
    const cli = await airlockCli(['approvals', 'approve', approvalId(asked), '--admin', al.adminUrl, '--grant-for', '30m', '--pin', '/table'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^granted: \S+ {2}report-bot may POST http:\/\/127\.0\.0\.1:\d+ \(rule queries\) where \/table = "invoices": 5 of 5 uses left/m);
    const grantId = /^granted: (\S+)/m.exec(cli.stdout)![1]!;
    await send('/db/query', { table: 'invoices', sql: 'select 1' });
    assert.equal(grantHeader(await send('/db/query', { table: 'invoices', sql: 'select 2' })), grantId);
    const listed = await airlockCli(['approvals', 'grants', '--admin', al.adminUrl], env);
    assert.match(listed.stdout, new RegExp(`^${grantId} .* 4 of 5 uses left`, 'm'));
    const revoked = await airlockCli(['approvals', 'revoke-grant', grantId, '--admin', al.adminUrl], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /^revoked: /);
    assert.equal((await send('/db/query', { table: 'invoices', sql: 'select 3' })).code, '202');
    const again = await airlockCli(['approvals', 'revoke-grant', grantId, '--admin', al.adminUrl], env);
    assert.equal(again.code, 1);
    assert.ok((await al.audit()).some((e) => e.event === 'grant_revoked' && e.grant_id === grantId && e.approver === 'dana@example.com'));
  });

  it('refuses a grant past the rule\'s caps, on a rule without grants, pinning a missing field, or with an approval that does not complete it', async () => {
    const q = approvalId(await send('/db/query', { table: 'ledger', sql: 'x' }));
    const long = await approve(q, TOKENS.bob, { grant: { for: '2h' } });
    assert.deepEqual([long.status, long.json.message], [400, 'grant.for (2h) is longer than this rule allows (60 min)']);
    const many = await approve(q, TOKENS.bob, { grant: { for: '30m', uses: 6 } });
    assert.deepEqual([many.status, many.json.message], [400, 'grant.uses (6) is more than this rule allows (5)']);
    const m = approvalId(await send('/db/migrate', { v: 2 }));
    const none = await approve(m, TOKENS.bob, { grant: { for: '30m' } });
    assert.deepEqual([none.status, none.json.message], [400, 'this rule allows no grants (approval.grants)']);
    const t = approvalId(await send('/transfers', { amount: 10 }));
    const partial = await approve(t, TOKENS.bob, { grant: { for: '30m' } });
    assert.equal(partial.status, 400);
    assert.match(String(partial.json.message), /comes with the approval that completes it: this one is 1 of 2/);
    const missing = await approve(q, TOKENS.bob, { grant: { for: '30m', pin: ['/schema'] } });
    assert.equal(missing.status, 200, 'the approval stands');
    assert.equal(missing.json.grant, null);
    assert.match(String(missing.json.grant_error), /cannot pin \/schema/);
  });
});
