/**
 * `airlock audit report` on trails written by the real audit sink (so the chain is real), at chosen
 * times: what each section says, the period filter, escaping of agent-supplied text in HTML and
 * Markdown, CSV quoting, and a broken chain reported at the top.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import type { AuditEvent } from '../../src/audit/events.js';
import { createAuditSink } from '../../src/audit/sink.js';
import type { Report } from '../../src/audit/report/aggregate.js';
import { csvCell, renderCsv } from '../../src/audit/report/csv.js';
import { renderHtml } from '../../src/audit/report/html.js';
import { renderMarkdown } from '../../src/audit/report/markdown.js';
import { decisionsChart, timeToDecideChart } from '../../src/audit/report/svg.js';
import { buildReport, parseReportTime, runReport, type ReportRequest } from '../../src/audit/report/run.js';

let dir: string;
/** The trail below, written by the sink. */
let trail: string;

const T = (iso: string): number => Date.parse(iso);
const AGENT_REASON = '<script>alert(1)</script> | quarterly, "urgent"';
const DENY_REASON = '=HYPERLINK("http://evil.example") not this month';

/** Each event is written at its time, through the real sink. */
async function writeTrail(file: string, events: readonly [string, AuditEvent][]): Promise<void> {
  mock.timers.enable({ apis: ['Date'], now: T(events[0]![0]) });
  try {
    const sink = await createAuditSink({ destination: file, sync: true });
    for (const [time, event] of events) {
      mock.timers.setTime(T(time));
      sink.write(event);
    }
    await sink.close();
  } finally {
    mock.timers.reset();
  }
}

const held = (id: string, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  event: 'request', request_id: id, decision: 'approve', rule: 'exports', identity: 'billing-bot', owner: 'alice@example.com',
  method: 'POST', scheme: 'https', host: 'exports.internal', port: 443, rules: ['exports'], policy_version: 'v1', reason: 'needs approval', path: '/exports/customers', ...extra,
});

const EVENTS: [string, AuditEvent][] = [
  ['2026-11-20T08:00:00.000Z', { event: 'policy_loaded', policy_version: 'v1', files: ['policy.yaml'], rule_count: 4 }],
  ['2026-11-21T09:00:00.000Z', { event: 'request', request_id: 'r-read', decision: 'allow', rule: 'reads', identity: 'billing-bot', method: 'GET', host: 'api.internal', path: '/v1/users', policy_version: 'v1' }],
  ['2026-11-21T09:00:01.000Z', { event: 'request', request_id: 'r-iam', decision: 'deny', rule: 'no-iam', identity: 'billing-bot', status: 403, error: 'denied', method: 'GET', host: 'iam.amazonaws.com', policy_version: 'v1', reason: 'IAM is off limits', path: '/<script>x</script>' }],
  ['2026-11-21T09:00:02.000Z', held('r-held-1')],
  ['2026-11-21T09:00:02.000Z', { event: 'approval_requested', request_id: 'r-held-1', approval_id: 'a1', state: 'pending', identity: 'billing-bot', owner: 'alice@example.com', method: 'POST', host: 'exports.internal', path: '/exports/customers', rule: 'exports', digest: 'd1', reason: 'monthly report', required: 2 }],
  ['2026-11-21T09:01:00.000Z', { event: 'approval_vote_refused', approval_id: 'a1', approver: 'alice@example.com', state: 'pending', reason: 'the owner of the requesting identity may not decide' }],
  ['2026-11-21T09:02:00.000Z', { event: 'approval_vote', approval_id: 'a1', approver: 'bob@example.com', verdict: 'approve', state: 'pending', approvals: 1, required: 2 }],
  ['2026-11-21T09:05:00.000Z', { event: 'approval_edited', approval_id: 'a1', approver: 'dana@example.com', state: 'approved', rule: 'exports-small', original_digest: 'd1', previous_digest: 'd1', digest: 'd2', changes: { body: [{ op: 'replace', path: '/rows' }], query: ['limit'] }, approvals: 1, required: 1 }],
  ['2026-11-21T09:05:00.000Z', { event: 'approval_decided', approval_id: 'a1', approver: 'dana@example.com', state: 'approved', rule: 'exports-small', identity: 'billing-bot' }],
  ['2026-11-21T09:05:00.500Z', { event: 'grant_created', grant_id: 'g1', approval_id: 'a1', approver: 'dana@example.com', identity: 'billing-bot', rule: 'exports-small', method: 'POST', host: 'exports.internal', port: 443, pins: ['/table'], uses: 3, expires_at: '2026-11-21T10:05:00.500Z' }],
  ['2026-11-21T09:05:01.000Z', { event: 'approval_executed', request_id: 'r-held-1b', approval_id: 'a1', state: 'executed', replica: 'replica-1', rule: 'exports-small', identity: 'billing-bot', digest: 'd2', approvers: ['dana@example.com'], approved_at: ['2026-11-21T09:05:00.000Z'] }],
  ['2026-11-21T09:05:02.000Z', { event: 'request_answered', request_id: 'r-held-1b', rule: 'exports-small', identity: 'billing-bot', status: 502, error: 'upstream_error', reason: 'the upstream failed' }],
  ['2026-11-21T10:00:00.000Z', held('r-g1', { rule: 'exports-small' })],
  ['2026-11-21T10:00:00.000Z', { event: 'grant_used', request_id: 'r-g1', grant_id: 'g1', approval_id: 'a1', rule: 'exports-small', identity: 'billing-bot', uses_left: 2, expires_at: '2026-11-21T10:05:00.500Z' }],
  ['2026-11-21T10:30:00.000Z', { event: 'grant_revoked', grant_id: 'g1', approval_id: 'a1', approver: 'bob@example.com', rule: 'exports-small', identity: 'billing-bot', uses_left: 2 }],
  ['2026-11-21T11:00:00.000Z', held('r-held-2', { path: '/exports/all' })],
  ['2026-11-21T11:00:00.000Z', { event: 'approval_requested', request_id: 'r-held-2', approval_id: 'a2', state: 'pending', identity: 'billing-bot', owner: 'alice@example.com', method: 'POST', host: 'exports.internal', path: '/exports/all', rule: 'exports', digest: 'd3', reason: AGENT_REASON, required: 1 }],
  ['2026-11-21T11:04:00.000Z', { event: 'approval_escalated', approval_id: 'a2', state: 'pending', rule: 'exports', identity: 'billing-bot', approvers: ['security'], channel: '#security', reason: 'nobody decided within 240 s' }],
  ['2026-11-21T11:10:00.000Z', { event: 'approval_vote', approval_id: 'a2', approver: 'dana@example.com', verdict: 'deny', state: 'denied', reason: DENY_REASON, approvals: 0, required: 1 }],
  ['2026-11-21T11:10:00.000Z', { event: 'approval_decided', approval_id: 'a2', approver: 'dana@example.com', state: 'denied', rule: 'exports', identity: 'billing-bot', reason: DENY_REASON }],
  ['2026-11-21T11:10:00.001Z', { event: 'request_answered', request_id: 'r-held-2', rule: 'exports', identity: 'billing-bot', status: 403, error: 'approval_denied', approval_id: 'a2', reason: DENY_REASON }],
  ['2026-11-21T12:00:00.000Z', { event: 'policy_rejected', policy_version: 'v1', reason: 'the edited policy has errors; the previous policy stays in force', errors: ['policy.yaml:3:1 unknown field'] }],
  ['2026-11-21T13:00:00.000Z', { event: 'policy_loaded', policy_version: 'v2', files: ['policy.yaml', 'more.yaml'], rule_count: 5 }],
  ['2026-11-21T13:30:00.000Z', { event: 'request', request_id: 'r-anon', decision: 'allow', rule: null, identity: null, method: 'GET', host: 'docs.internal', path: '/', policy_version: 'v2', report: [{ rule: 'strict', action: 'deny' }] }],
  ['2026-11-22T09:00:00.000Z', { event: 'request', request_id: 'r-407', decision: 'refused', rule: null, identity: null, status: 407, error: 'proxy_auth_required', method: 'GET', host: 'api.internal', policy_version: 'v2', reason: 'proxy credentials required' }],
  ['2026-11-23T08:00:00.000Z', held('r-held-3', { policy_version: 'v2' })],
  ['2026-11-23T08:00:00.000Z', { event: 'approval_requested', request_id: 'r-held-3', approval_id: 'a3', state: 'pending', identity: 'billing-bot', owner: 'alice@example.com', method: 'POST', host: 'exports.internal', path: '/exports/customers', rule: 'exports', digest: 'd4', required: 1 }],
  ['2026-11-23T08:30:00.000Z', { event: 'approval_decided', approval_id: 'a3', state: 'expired', rule: 'exports', identity: 'billing-bot', reason: 'nobody decided before it expired' }],
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-audit-report-'));
  trail = join(dir, 'audit.jsonl');
  await writeTrail(trail, EVENTS);
});
after(() => rm(dir, { recursive: true, force: true }));

const request = (over: Partial<ReportRequest> = {}): ReportRequest => ({ files: [trail], format: 'markdown', verify: true, ...over });
const approval = (r: Report, id: string) => r.approvals.find((a) => a.approval_id === id)!;

describe('audit report: aggregation', () => {
  it('counts decisions by action, and by identity and rule, report-only rules apart', async () => {
    const r = await buildReport(request());
    assert.deepEqual(r.summary.decisions, { allow: 2, deny: 1, approve: 4, refused: 1 });
    assert.equal(r.summary.identities, 2);
    const row = (identity: string | null, rule: string | null, mode = 'enforce') => r.decisions.find((d) => d.identity === identity && d.rule === rule && d.mode === mode);
    assert.deepEqual([row('billing-bot', 'exports')?.approve, row('billing-bot', 'exports')?.total], [3, 3]);
    assert.equal(row('billing-bot', 'no-iam')?.deny, 1);
    assert.equal(row(null, null)?.allow, 1);
    assert.equal(row(null, 'strict', 'report')?.deny, 1, 'a report-only rule is counted by what it would have done');
    assert.equal(r.summary.decisions.allow + r.summary.decisions.deny, 3, 'a report-only match is not a decision');
  });

  it('an approval: its approvers with times, the vote an edit superseded, the edit, time to decide, grant, execution and what Airlock answered', async () => {
    const a1 = approval(await buildReport(request()), 'a1');
    assert.equal(a1.requested_at, '2026-11-21T09:00:02.000Z');
    assert.equal(a1.policy_version, 'v1', 'from the held request\'s line');
    assert.deepEqual(
      a1.votes.map((v) => [v.approver, v.verdict, v.at, v.via, v.superseded]),
      [
        ['bob@example.com', 'approve', '2026-11-21T09:02:00.000Z', 'vote', true],
        ['dana@example.com', 'approve', '2026-11-21T09:05:00.000Z', 'edit', false],
      ],
    );
    assert.deepEqual(a1.edits.map((e) => [e.approver, e.rule, e.changes, e.counted]), [['dana@example.com', 'exports-small', ['body replace /rows', 'query limit'], true]]);
    assert.deepEqual([a1.state, a1.decided_by, a1.decided_at], ['executed', 'dana@example.com', '2026-11-21T09:05:00.000Z']);
    assert.equal(a1.time_to_decide_ms, 4 * 60_000 + 58_000);
    assert.deepEqual(a1.grants, ['g1']);
    assert.deepEqual([a1.executed_request_id, a1.replica], ['r-held-1b', 'replica-1']);
    assert.deepEqual(a1.forwarded_answer, { status: 502, error: 'upstream_error', reason: 'the upstream failed' });
    assert.deepEqual(a1.refused_votes.map((v) => v.approver), ['alice@example.com']);
  });

  it('a vote known only from the executed record is still listed, and said so', async () => {
    const file = join(dir, 'lost-vote.jsonl');
    await writeTrail(file, [
      ['2026-11-21T09:00:00.000Z', { event: 'approval_requested', request_id: 'r', approval_id: 'a', identity: 'bot', rule: 'exports', required: 1 }],
      ['2026-11-21T09:03:00.000Z', { event: 'approval_executed', request_id: 'r', approval_id: 'a', approvers: ['erin@example.com'], approved_at: ['2026-11-21T09:02:00.000Z'] }],
    ]);
    const a = approval(await buildReport(request({ files: [file] })), 'a');
    assert.deepEqual(a.votes.map((v) => [v.approver, v.at, v.via]), [['erin@example.com', '2026-11-21T09:02:00.000Z', 'executed_record']]);
    assert.match(renderMarkdown(await buildReport(request({ files: [file] }))), /erin@example\.com approved 2026-11-21 09:02:00Z \(known from the executed record/);
  });

  it('denials and refusals: denied requests, refusals, approval denials with their reason, refused votes', async () => {
    const r = await buildReport(request());
    assert.deepEqual(
      r.refusals.map((x) => [x.kind, x.request_id, x.status ?? null, x.error ?? null]),
      [
        ['denied', 'r-iam', 403, 'denied'],
        ['answered', 'r-held-1b', 502, 'upstream_error'],
        ['answered', 'r-held-2', 403, 'approval_denied'],
        ['refused', 'r-407', 407, 'proxy_auth_required'],
      ],
    );
    const a2 = approval(r, 'a2');
    assert.deepEqual([a2.state, a2.decided_by, a2.decision_reason, a2.time_to_decide_ms], ['denied', 'dana@example.com', DENY_REASON, 10 * 60_000]);
    assert.deepEqual(a2.escalations, [{ at: '2026-11-21T11:04:00.000Z', approvers: ['security'], channel: '#security' }]);
    assert.deepEqual(r.vote_refusals.map((v) => [v.approval_id, v.approver]), [['a1', 'alice@example.com']]);
    assert.deepEqual(r.summary.approvals, { total: 3, pending: 0, approved: 1, denied: 1, expired: 1, cancelled: 0, executed: 1, forged: 0 });
  });

  it('grants: created with the approval, used, revoked', async () => {
    const r = await buildReport(request());
    assert.deepEqual(r.grants, [
      {
        grant_id: 'g1', approval_id: 'a1', identity: 'billing-bot', rule: 'exports-small', method: 'POST', host: 'exports.internal', port: 443, pins: ['/table'], uses: 3,
        expires_at: '2026-11-21T10:05:00.500Z', created_at: '2026-11-21T09:05:00.500Z', created_by: 'dana@example.com', used: 1, last_used_at: '2026-11-21T10:00:00.000Z',
        uses_left: 2, revoked_at: '2026-11-21T10:30:00.000Z', revoked_by: 'bob@example.com',
      },
    ]);
    assert.deepEqual(r.summary.grants, { created: 1, used: 1, revoked: 1 });
  });

  it('policy versions: when each was loaded, the decisions made under it, and the rejected edit', async () => {
    const r = await buildReport(request());
    assert.deepEqual(
      r.policies.map((p) => [p.version, p.loaded_at, p.rule_count, p.decisions]),
      [
        ['v1', ['2026-11-20T08:00:00.000Z'], 4, 5],
        ['v2', ['2026-11-21T13:00:00.000Z'], 5, 3],
      ],
    );
    assert.deepEqual(r.policy_rejections, [{ at: '2026-11-21T12:00:00.000Z', in_force: 'v1', reason: 'the edited policy has errors; the previous policy stays in force', errors: ['policy.yaml:3:1 unknown field'] }]);
  });

  it('a period keeps what happened in it: approvals touched in it (whole), decisions in it, the policy in force when it began', async () => {
    const r = await buildReport(request({ since: T('2026-11-21T11:00:00Z'), until: T('2026-11-22T00:00:00Z') }));
    assert.deepEqual(r.period, { since: '2026-11-21T11:00:00.000Z', until: '2026-11-22T00:00:00.000Z', first_event: '2026-11-21T11:00:00.000Z', last_event: '2026-11-21T13:30:00.000Z' });
    assert.deepEqual(r.approvals.map((a) => a.approval_id), ['a2']);
    assert.deepEqual(r.summary.decisions, { allow: 1, deny: 0, approve: 1, refused: 0 });
    assert.deepEqual(r.policies.map((p) => [p.version, p.in_force_at_start, p.decisions]), [['v1', true, 1], ['v2', false, 1]]);
    assert.deepEqual(r.grants, [], 'g1 was created, used and revoked before the period');
    assert.equal(r.time_to_decide.count, 1);
    assert.deepEqual(r.refusals.map((x) => x.request_id), ['r-held-2']);
    // `until` is excluded: an event at that very time is not in the period.
    const edge = await buildReport(request({ since: T('2026-11-21T09:00:00Z'), until: T('2026-11-21T09:00:01Z') }));
    assert.deepEqual(edge.summary.decisions, { allow: 1, deny: 0, approve: 0, refused: 0 });
  });

  it('decisions over time in hours for a short trail, days for a long one; time to decide in bins', async () => {
    const r = await buildReport(request());
    assert.equal(r.decisions_over_time.bucket, 'hour');
    assert.equal(r.decisions_over_time.buckets[0]!.start, '2026-11-21T09:00:00.000Z');
    assert.deepEqual(r.decisions_over_time.buckets[0], { start: '2026-11-21T09:00:00.000Z', allow: 1, deny: 1, approve: 1, refused: 0 });
    assert.equal(r.decisions_over_time.buckets.length, 48, 'empty hours are shown, up to the last decision');
    const file = join(dir, 'long.jsonl');
    await writeTrail(file, [
      ['2026-10-01T10:00:00.000Z', { event: 'request', decision: 'allow', rule: 'reads', identity: 'a' }],
      ['2026-10-01T11:00:00.000Z', { event: 'request', decision: 'deny', rule: 'no', identity: 'a' }],
      ['2026-10-20T10:00:00.000Z', { event: 'request', decision: 'allow', rule: 'reads', identity: 'a' }],
    ]);
    const long = await buildReport(request({ files: [file] }));
    assert.equal(long.decisions_over_time.bucket, 'day');
    assert.deepEqual(long.decisions_over_time.buckets[0], { start: '2026-10-01T00:00:00.000Z', allow: 1, deny: 1, approve: 0, refused: 0 });
    assert.equal(long.decisions_over_time.buckets.length, 20);
    assert.deepEqual(
      r.time_to_decide.histogram.filter((b) => b.approved + b.denied > 0).map((b) => [b.label, b.approved, b.denied]),
      [['1 – 5 min', 1, 0], ['5 – 15 min', 0, 1]],
    );
  });

  it('parses --since/--until: durations back from now, ISO dates and times (UTC unless zoned)', () => {
    const now = T('2026-11-30T12:00:00Z');
    assert.equal(parseReportTime('7d', now), T('2026-11-23T12:00:00Z'));
    assert.equal(parseReportTime('1h30m', now), T('2026-11-30T10:30:00Z'));
    assert.equal(parseReportTime('2026-11-01', now), T('2026-11-01T00:00:00Z'));
    assert.equal(parseReportTime('2026-11-01T09:00', now), T('2026-11-01T09:00:00Z'));
    assert.equal(parseReportTime('2026-11-01T09:00:00+02:00', now), T('2026-11-01T07:00:00Z'));
    for (const bad of ['yesterday', '7', '0d', '2026-13-01', '11/01/2026', '']) assert.equal(parseReportTime(bad, now), null, bad);
  });
});

describe('audit report: rendering', () => {
  it('Markdown names approvers, time to decide, edits and the grant, and keeps agent text literal', async () => {
    const md = renderMarkdown(await buildReport(request()));
    assert.match(md, /^> ✔ \*\*Chain intact: 28 lines in 1 file/m);
    assert.match(md, /a1: billing-bot, exports, approved, forwarded/);
    assert.match(md, /dana@example\.com \(approved 2026-11-21 09:05:00Z\)/);
    assert.match(md, /\| 4 min 58 s \|/);
    assert.match(md, /edit: dana@example\.com 2026-11-21 09:05:00Z: body replace \/rows, query limit; now decided by rule exports-small/);
    assert.match(md, /grants given with it: g1/);
    assert.match(md, /forwarded; Airlock answered 502 upstream\\_error/);
    assert.ok(!md.includes('<script>'), 'no raw HTML from the trail');
    assert.match(md, /&lt;script&gt;alert\(1\)&lt;\/script&gt; \\\| quarterly/);
    // The agent's `|` does not add a cell: every row of the approvals table has as many cells as its head.
    const all = md.split('\n');
    const start = all.findIndex((l) => l.startsWith('| approval | identity | rule | requested |'));
    const head = all[start]!;
    const rows = all.slice(start + 2, all.indexOf('', start));
    assert.equal(rows.length, 3);
    const cells = (l: string) => l.split(/(?<!\\)\|/).length;
    for (const l of rows) assert.equal(cells(l), cells(head), l);
  });

  it('HTML is one self-contained page, and every value from the trail is escaped', async () => {
    const html = renderHtml(await buildReport(request()));
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    assert.equal(html.match(/<script/gi), null, 'the agent\'s <script> is shown, never run');
    assert.match(html, /&#60;script&#62;alert\(1\)&#60;\/script&#62; \| quarterly, &#34;urgent&#34;/);
    assert.match(html, /\/&#60;script&#62;x&#60;\/script&#62;/, 'in a path too');
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    assert.equal(html.match(/\b(?:src|href)=/g), null, 'nothing fetched');
    assert.equal(html.match(/<svg /g)?.length, 2, 'both plots inline');
    assert.match(html, /<td>dana@example\.com \(approved 2026-11-21 09:05:00Z\)<\/td>/);
  });

  it('plots: decisions stacked per hour and time to decide per bin, each bar saying its count', async () => {
    const doc = await buildReport(request());
    const decisions = decisionsChart(doc.decisions_over_time);
    const bars = [...decisions.matchAll(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="([^"]+)"><title>([^<]+)<\/title><\/rect>/g)].map((m) => m[2]);
    assert.deepEqual(bars, ['11-21 09:00: 1 allow', '11-21 09:00: 1 deny', '11-21 09:00: 1 approve', '11-21 10:00: 1 approve', '11-21 11:00: 1 approve', '11-21 13:00: 1 allow', '11-22 09:00: 1 refused', '11-23 08:00: 1 approve']);
    const ttd = timeToDecideChart(doc.time_to_decide);
    assert.match(ttd, /<title>1 – 5 min: 1 approved<\/title>/);
    assert.match(ttd, /<title>5 – 15 min: 1 denied<\/title>/);
    assert.match(timeToDecideChart((await buildReport(request({ since: T('2026-11-23T00:00:00Z') }))).time_to_decide), />No approval decided in this period</);
  });

  it('CSV: quotes commas, quotes and newlines, and disarms formulas', () => {
    assert.equal(csvCell('plain'), 'plain');
    assert.equal(csvCell('a,b'), '"a,b"');
    assert.equal(csvCell('say "hi"'), '"say ""hi"""');
    assert.equal(csvCell('two\nlines'), '"two\nlines"');
    assert.equal(csvCell('=1+1'), "'=1+1");
    assert.equal(csvCell('+1'), "'+1");
    assert.equal(csvCell('-2'), "'-2");
    assert.equal(csvCell('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvCell('\t=1'), "'\t=1");
    assert.equal(csvCell('=a,"b"'), `"'=a,""b"""`);
    assert.equal(csvCell(-2), '-2', 'numbers stay numbers');
    assert.equal(csvCell(null), '');
  });

  it('CSV tables round-trip through a CSV reader, agent text whole and formulas disarmed', async () => {
    const doc = await buildReport(request());
    const approvals = parseCsv(renderCsv(doc, 'approvals'));
    const head = approvals[0]!;
    const col = (row: string[], name: string) => row[head.indexOf(name)];
    assert.equal(approvals.length, 4);
    const a2 = approvals.find((r) => r[0] === 'a2')!;
    assert.equal(col(a2, 'reason'), AGENT_REASON);
    assert.equal(col(a2, 'decision_reason'), `'${DENY_REASON}`);
    assert.equal(col(a2, 'time_to_decide_ms'), '600000');
    const a1 = approvals.find((r) => r[0] === 'a1')!;
    assert.deepEqual([col(a1, 'approvers'), col(a1, 'edited_by'), col(a1, 'grants'), col(a1, 'forwarded_status')], ['dana@example.com', 'dana@example.com', 'g1', '502']);
    const denials = parseCsv(renderCsv(doc, 'denials'));
    assert.deepEqual(denials.slice(1).map((r) => r[1]), ['denied', 'vote_refused', 'answered', 'approval_denied', 'answered', 'refused']);
    const votes = parseCsv(renderCsv(doc, 'votes'));
    assert.deepEqual(votes.slice(1).map((r) => [r[0], r[3], r[4]]), [['a1', 'bob@example.com', 'approve'], ['a1', 'dana@example.com', 'approve'], ['a2', 'dana@example.com', 'deny']]);
  });
});

describe('audit report: the chain', () => {
  it('a broken chain is reported at the top and exits 1, after writing the report', async () => {
    const lines = (await readFile(trail, 'utf8')).split('\n');
    lines[6] = lines[6]!.replace('bob@example.com', 'mallory@example.com');
    const edited = join(dir, 'edited.jsonl');
    await writeFile(edited, lines.join('\n'));
    const output = join(dir, 'edited.md');
    const err: string[] = [];
    const code = await runReport(request({ files: [edited], output }), { stdout: () => assert.fail('written to the file'), stderr: (l) => err.push(l) });
    assert.equal(code, 1);
    const md = await readFile(output, 'utf8');
    assert.match(md.split('\n').slice(0, 6).join('\n'), /THE AUDIT CHAIN IS BROKEN/);
    assert.match(md, new RegExp(`${edited.replace(/[.]/g, '\\.')} line 7: edited`));
    assert.match(err.join('\n'), /chain is broken \(.*edited\.jsonl line 7: edited\)/);
    // The plots are written beside a Markdown report, and linked.
    assert.match(md, /!\[Decisions per hour\]\(<edited\.decisions\.svg>\)/);
    assert.match(await readFile(join(dir, 'edited.decisions.svg'), 'utf8'), /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  });

  it('rotated files are verified as one chain, and a problem is named by file and line', async () => {
    const lines = (await readFile(trail, 'utf8')).split('\n').filter(Boolean);
    const older = join(dir, 'audit.jsonl.1');
    const newer = join(dir, 'audit.jsonl.2');
    await writeFile(older, lines.slice(0, 10).join('\n') + '\n');
    await writeFile(newer, lines.slice(10).join('\n') + '\n');
    const ok = await buildReport(request({ files: [older, newer] }));
    assert.deepEqual([ok.verification.ok, ok.verification.problems], [true, []]);
    assert.equal(ok.approvals.length, 3);
    const alone = await buildReport(request({ files: [newer] }));
    assert.equal(alone.verification.problems[0]?.kind, 'removed', 'the older file is missing');
    const tampered = [...lines.slice(10)];
    tampered[3] = tampered[3]!.replace('"uses_left":2', '"uses_left":3');
    await writeFile(newer, tampered.join('\n') + '\n');
    const bad = await buildReport(request({ files: [older, newer] }));
    assert.deepEqual(bad.verification.problems.map((p) => [p.file, p.line, p.kind]), [[newer, 4, 'edited']]);
  });

  it('a file that starts a new chain is verified on its own, with a note', async () => {
    const other = join(dir, 'restarted.jsonl');
    await writeTrail(other, [['2026-11-24T08:00:00.000Z', { event: 'policy_loaded', policy_version: 'v2', files: ['policy.yaml'], rule_count: 5 }]]);
    const r = await buildReport(request({ files: [trail, other] }));
    assert.equal(r.verification.ok, true);
    assert.match(r.verification.notes.map((x) => `${x.file}: ${x.message}`).join('\n'), /restarted\.jsonl: starts a new chain/);
  });

  it('--no-verify says the chain was not checked; an unreadable file writes nothing and exits 2', async () => {
    const md = renderMarkdown(await buildReport(request({ verify: false })));
    assert.match(md, /^> ⚠ \*\*Chain not verified\.\*\*/m);
    const before = await readFile(trail, 'utf8');
    const over = await runReport(request({ output: trail }), { stdout: () => assert.fail('nothing written'), stderr: () => {} });
    assert.equal(over, 2, 'the report never overwrites the trail it reads');
    assert.equal(await readFile(trail, 'utf8'), before);
    const err: string[] = [];
    const code = await runReport(request({ files: [join(dir, 'missing.jsonl')] }), { stdout: () => assert.fail('nothing written'), stderr: (l) => err.push(l) });
    assert.deepEqual([code, err], [2, [`airlock audit report: cannot read ${join(dir, 'missing.jsonl')}: no such file`]]);
  });
});

/** RFC 4180, as a spreadsheet reads it. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  return rows;
}
