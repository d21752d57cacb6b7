/**
 * `airlock audit report`, the installed command, on a trail written by a real Airlock: a request
 * held and approved through the approvals API, another denied, a vote refused, a request denied by a
 * rule. The report names the approver and the time to decide, escapes what the agent wrote, and
 * flags a trail edited afterwards.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const BOT_TOKEN = 'report-bot-token';
const TOKENS = { bob: 'bob-approver-token', dana: 'dana-approver-token', eve: 'eve-not-an-approver' };
const AGENT_REASON = '<script>alert("agent")</script> month-end, as usual';

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com, tokens: ["${hashToken(BOT_TOKEN)}"] }
approvers:
  data-owners: { api: [bob@example.com, dana@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKENS.bob)}"]
  dana@example.com: ["${hashToken(TOKENS.dana)}"]
  eve@example.com: ["${hashToken(TOKENS.eve)}"]
rules:
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/v1/**"] }
    action: allow
  - id: no-admin
    match: { hosts: [127.0.0.1], ports: [${up.port}], paths: ["/admin/**"] }
    action: deny
    reason: the admin API is off limits
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m }
`;
}

describe('airlock audit report on a real trail', () => {
  let up: Upstream;
  let al: TestAirlock;
  let dir: string;
  let trail: string;
  let approvedId: string;
  let deniedId: string;

  async function api(path: string, token: string, body: unknown = {}): Promise<number> {
    const res = await fetch(`${al.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await res.arrayBuffer();
    return res.status;
  }

  async function pending(path: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${TOKENS.bob}` } });
      const found = ((await res.json()) as { approvals: { id: string; request: { url: string } }[] }).approvals.find((v) => new URL(v.request.url).pathname === path);
      if (found) return found.id;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no pending approval for ${path}`);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-report-it-'));
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) });
    const proxy = `http://billing-bot:${BOT_TOKEN}@${new URL(al.proxyUrl).host}`;
    const curl = (...args: string[]) => run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, ...args]);

    assert.equal((await curl(`${up.origin}/v1/users`)).stdout, '200');

    const exporting = curl('-H', `X-Airlock-Reason: ${AGENT_REASON}`, '-d', '{"rows":10}', `${up.origin}/exports/customers`);
    approvedId = await pending('/exports/customers');
    assert.equal(await api(`/v1/approvals/${approvedId}/approve`, TOKENS.eve), 403, 'eve may not decide');
    // Time passes before the approver decides.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await api(`/v1/approvals/${approvedId}/approve`, TOKENS.bob), 200);
    assert.equal((await exporting).stdout, '200');

    const dumping = curl('-d', '{"rows":"all"}', `${up.origin}/exports/everything`);
    deniedId = await pending('/exports/everything');
    assert.equal(await api(`/v1/approvals/${deniedId}/deny`, TOKENS.dana, { reason: 'not this month' }), 200);
    assert.equal((await dumping).stdout, '403');

    assert.equal((await curl(`${up.origin}/admin/users`)).stdout, '403');

    await al.airlock.audit.flush();
    trail = join(dir, 'audit.jsonl');
    await copyFile(al.auditFile, trail);
  });
  after(async () => {
    await al.close();
    await up.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The trail's own lines, to check the report against. */
  async function events(): Promise<Record<string, unknown>[]> {
    return (await readFile(trail, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  it('Markdown: the chain is intact, the approver and the time to decide are named, and it exits 0', async () => {
    const r = await airlockCli(['audit', 'report', trail]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^> ✔ \*\*Chain intact: \d+ lines in 1 file/m);
    const row = r.stdout.split('\n').find((l) => l.startsWith(`| ${approvedId} |`));
    assert.ok(row, 'the approval is listed');
    assert.match(row, /\| billing-bot \| exports \| .* \| approved, forwarded \| bob@example\.com \(approved \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\) \|/);
    // The time to decide shown is the time between the trail's own request and decision lines.
    const trailEvents = await events();
    const at = (event: string, id: string) => Date.parse(trailEvents.find((e) => e.event === event && e.approval_id === id)!.time as string);
    const ms = at('approval_decided', approvedId) - at('approval_requested', approvedId);
    assert.ok(ms >= 300, `decided ${ms} ms after the request`);
    const shown = ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
    assert.ok(row.includes(`| ${shown} |`), `${shown} in ${row}`);
    // The denial with its reason, the refused vote, the denied request.
    assert.match(r.stdout, new RegExp(`\\| ${deniedId} \\| billing-bot \\| exports \\| POST 127\\.0\\.0\\.1/exports/everything \\| [^|]+ \\| dana@example\\.com \\| not this month \\|`));
    assert.match(r.stdout, new RegExp(`\\| ${approvedId} \\| eve@example\\.com \\| eve@example\\.com is not an approver`));
    assert.match(r.stdout, /\| denied \| billing-bot \| no-admin \| GET 127\.0\.0\.1\/admin\/users \| 403 \| denied \| the admin API is off limits \|/);
    assert.match(r.stdout, /\| billing-bot \| reads \| 1 \| 0 \| 0 \| 0 \| 1 \|/);
  });

  it('JSON gives the time to decide in milliseconds, the approvers with their times, and the policy version in force', async () => {
    const r = await airlockCli(['audit', 'report', trail, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      verification: { ok: boolean };
      approvals: { approval_id: string; time_to_decide_ms: number; state: string; votes: { approver: string; at: string }[]; policy_version: string }[];
      policies: { version: string; decisions: number }[];
    };
    const trailEvents = await events();
    const byEvent = (event: string, id: string) => trailEvents.find((e) => e.event === event && e.approval_id === id)!;
    const approved = doc.approvals.find((a) => a.approval_id === approvedId)!;
    assert.equal(approved.time_to_decide_ms, Date.parse(byEvent('approval_decided', approvedId).time as string) - Date.parse(byEvent('approval_requested', approvedId).time as string));
    assert.deepEqual(approved.votes.map((v) => [v.approver, v.at]), [['bob@example.com', byEvent('approval_vote', approvedId).time]]);
    assert.equal(approved.state, 'executed');
    const loaded = trailEvents.find((e) => e.event === 'policy_loaded')!;
    assert.equal(approved.policy_version, loaded.policy_version);
    assert.deepEqual(doc.policies.map((p) => [p.version, p.decisions]), [[loaded.policy_version, 4]]);
    assert.equal(doc.verification.ok, true);
  });

  it('HTML shows what the agent wrote without running it; CSV lists the approver', async () => {
    const html = await airlockCli(['audit', 'report', trail, '--format', 'html']);
    assert.equal(html.code, 0, html.stderr);
    assert.equal(html.stdout.match(/<script/gi), null);
    assert.ok(html.stdout.includes('&#60;script&#62;alert(&#34;agent&#34;)&#60;/script&#62; month-end, as usual'));
    const csv = await airlockCli(['audit', 'report', trail, '--format', 'csv', '--table', 'approvals']);
    assert.equal(csv.code, 0, csv.stderr);
    // Read as another tool reads it: Python's csv module.
    const parsed = await run('python3', ['-c', 'import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))'], process.env, csv.stdout);
    const [columns, ...rows] = JSON.parse(parsed.stdout) as string[][];
    const approved = rows.find((r) => r[0] === approvedId)!;
    const col = (name: string) => approved[columns!.indexOf(name)];
    assert.deepEqual([col('approvers'), col('state'), col('reason')], ['bob@example.com', 'executed', AGENT_REASON]);
  });

  it('a trail edited afterwards: the report still comes out, says so at the top, and exits 1', async () => {
    const lines = (await readFile(trail, 'utf8')).split('\n');
    const vote = lines.findIndex((l) => l.includes('"event":"approval_vote"') && l.includes(approvedId));
    lines[vote] = lines[vote]!.replace('bob@example.com', 'mallory@example.com');
    const edited = join(dir, 'edited.jsonl');
    await writeFile(edited, lines.join('\n'));
    const output = join(dir, 'report.html');
    const r = await airlockCli(['audit', 'report', edited, '--format', 'html', '--output', output]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`the audit chain is broken \\(.*edited\\.jsonl line ${vote + 1}: edited\\)`));
    const html = await readFile(output, 'utf8');
    assert.match(html, /<div class="alert bad" role="alert"><strong>THE AUDIT CHAIN IS BROKEN/);
    assert.ok(html.indexOf('THE AUDIT CHAIN IS BROKEN') < html.indexOf('<h2>'), 'before anything else');
  });

  it('usage errors exit 2 and write nothing', async () => {
    for (const args of [['--since', 'yesterday'], ['--format', 'pdf'], ['--table', 'grants'], ['--since', '2026-12-01', '--until', '2026-11-01']]) {
      const r = await airlockCli(['audit', 'report', trail, ...args]);
      assert.deepEqual([r.code, r.stdout], [2, ''], args.join(' '));
    }
    const missing = await airlockCli(['audit', 'report', join(dir, 'nope.jsonl')]);
    assert.deepEqual([missing.code, missing.stdout], [2, '']);
    assert.match(missing.stderr, /cannot read .*nope\.jsonl: no such file/);
  });
});
