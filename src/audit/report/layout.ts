/**
 * The report's sections as plain blocks of text, tables and plots. Markdown and HTML render the
 * same blocks, so they say the same things; every string here is raw (agent-supplied ones included)
 * and each renderer escapes it for its format.
 */
import type { ApprovalRow, DecisionRow } from './aggregate.js';
import { edits, forwarded, n, outcome, request, ruleName, span, verificationText, votes, when, who, type ReportDocument } from './format.js';
import { decisionsChart, timeToDecideChart } from './svg.js';

export interface Table {
  kind: 'table';
  head: string[];
  /** Right-aligned columns (numbers). */
  numeric?: number[];
  rows: (string | number)[][];
}

export type Block =
  | { kind: 'heading'; level: 1 | 2 | 3 | 4; text: string }
  | { kind: 'paragraph'; text: string }
  | { kind: 'alert'; tone: 'ok' | 'bad' | 'warn'; title: string; items: string[] }
  | { kind: 'list'; items: string[] }
  | Table
  /** `name` is the plot's file suffix next to a Markdown report; `table` says the same in text. */
  | { kind: 'plot'; name: string; title: string; svg: string; table: Table };

const NONE: Block = { kind: 'paragraph', text: 'None in this period.' };

const BAR_WIDTH = 40;
const bar = (value: number, max: number): string => (max === 0 || value === 0 ? '' : '█'.repeat(Math.max(1, Math.round((value / max) * BAR_WIDTH))));

function decisionTable(rows: readonly DecisionRow[], report: boolean): Table {
  const actions = report ? (['allow', 'deny', 'approve'] as const) : (['allow', 'deny', 'approve', 'refused'] as const);
  return {
    kind: 'table',
    head: ['identity', 'rule', ...actions, 'total'],
    numeric: actions.map((_, i) => i + 2).concat(actions.length + 2),
    rows: rows.map((r) => [who(r.identity), ruleName(r.rule), ...actions.map((a) => r[a]), r.total]),
  };
}

function approvalDetails(a: ApprovalRow): Block[] {
  const items = [
    `request: ${request(a.method, a.host, a.path) || '(not in the files read)'}${a.request_id === null ? '' : ` (request ${a.request_id})`}`,
    `identity: ${who(a.identity)}${a.owner === null ? '' : `, owner ${a.owner}`}; rule: ${ruleName(a.rule)}${a.required === null ? '' : `, ${a.required} approval${a.required === 1 ? '' : 's'} required`}${a.policy_version === null ? '' : `; policy ${a.policy_version}`}`,
    `requested: ${a.requested_at === null ? 'before the files read' : when(a.requested_at)}${a.joined > 0 ? `; ${a.joined} identical request${a.joined === 1 ? '' : 's'} joined` : ''}`,
  ];
  if (a.reason !== null) items.push(`stated reason: ${a.reason}`);
  for (const e of a.escalations) items.push(`escalated ${when(e.at)} to ${e.approvers.join(', ') || '(no group)'}${e.channel === null ? '' : ` on ${e.channel}`}`);
  for (const v of votes(a)) items.push(`vote: ${v}`);
  for (const r of a.refused_votes) items.push(`refused vote: ${r.approver} ${when(r.at)}${r.reason === null ? '' : `: ${r.reason}`}`);
  for (const e of edits(a)) items.push(`edit: ${e}`);
  const decided = a.decided_at === null ? (a.ended_at === null ? null : `${a.state} ${when(a.ended_at)}`) : `${a.state === 'denied' ? 'denied' : 'approved'} ${when(a.decided_at)}${a.decided_by === null ? '' : ` by ${a.decided_by}`}${a.time_to_decide_ms === null ? '' : `, ${span(a.time_to_decide_ms)} after it was requested`}`;
  items.push(`outcome: ${outcome(a)}${decided === null ? '' : ` (${decided})`}${a.decision_reason === null ? '' : `; reason: ${a.decision_reason}`}`);
  if (a.grants.length > 0) items.push(`grants given with it: ${a.grants.join(', ')}`);
  if (a.executed_at !== null) items.push(`${forwarded(a)}${a.executed_request_id === null ? '' : ` (request ${a.executed_request_id})`}`);
  if (a.forged_reason !== null) items.push(`refused as forged: ${a.forged_reason}`);
  return [{ kind: 'heading', level: 4, text: `${a.approval_id}: ${who(a.identity)}, ${ruleName(a.rule)}, ${outcome(a)}` }, { kind: 'list', items }];
}

/** The plots, by the name their SVG file takes next to a Markdown report. */
export function plots(doc: ReportDocument): { name: 'decisions' | 'time-to-decide'; title: string; svg: string }[] {
  return [
    { name: 'decisions', title: `Decisions per ${doc.decisions_over_time.bucket}`, svg: decisionsChart(doc.decisions_over_time) },
    { name: 'time-to-decide', title: 'Time to decide', svg: timeToDecideChart(doc.time_to_decide) },
  ];
}

export function layout(doc: ReportDocument): Block[] {
  const [decisionsPlot, timePlot] = plots(doc);
  const s = doc.summary;
  const blocks: Block[] = [{ kind: 'heading', level: 1, text: 'Airlock audit report' }, { kind: 'alert', ...verificationText(doc) }];

  const p = doc.period;
  const asked = p.since === null && p.until === null ? 'the whole trail' : `from ${p.since === null ? 'the start' : when(p.since)} until ${p.until === null ? 'the end' : when(p.until)} (excluded)`;
  const found = p.first_event === null ? 'no event in it' : `events from ${when(p.first_event)} to ${when(p.last_event)}`;
  blocks.push({ kind: 'paragraph', text: `Period: ${asked}; ${found}. Times are UTC. Generated ${when(doc.generated_at)} by airlock ${doc.airlock_version}.` });
  blocks.push({
    kind: 'table',
    head: ['file read', 'lines', 'events', 'first event', 'last event'],
    numeric: [1, 2],
    rows: doc.files.map((f) => [f.path, f.lines, f.events, when(f.first_event), when(f.last_event)]),
  });

  const a = s.approvals;
  const t = doc.time_to_decide;
  blocks.push({ kind: 'heading', level: 2, text: 'Summary' });
  blocks.push({
    kind: 'table',
    head: ['', 'count'],
    rows: [
      ['events in the period', n(s.events)],
      ['requests and tunnels decided', n(s.decisions.allow + s.decisions.deny + s.decisions.approve + s.decisions.refused)],
      ['allowed', n(s.decisions.allow)],
      ['denied', n(s.decisions.deny)],
      ['needing approval (held, or covered by a grant)', n(s.decisions.approve)],
      ['refused before evaluation', n(s.decisions.refused)],
      ['identities', n(s.identities)],
      ['approvals', `${n(a.total)}: ${a.approved} approved (${a.executed} forwarded), ${a.denied} denied, ${a.expired} expired undecided, ${a.cancelled} cancelled, ${a.pending} pending`],
      ['time to decide', t.count === 0 ? 'no decision' : `median ${span(t.median_ms)}, 90th percentile ${span(t.p90_ms)}, longest ${span(t.max_ms)} (${t.count} decided)`],
      ['votes, refused votes, edits', `${s.votes}, ${s.refused_votes}, ${s.edits}`],
      ['escalations', n(s.escalations)],
      ['grants created, used, revoked', `${s.grants.created}, ${s.grants.used}, ${s.grants.revoked}`],
      ['answered by Airlock after the decision', n(s.answered)],
      ['refused for the pending-approvals limit', n(s.limited)],
      ['forged approval state refused', n(s.forged)],
      ['policy loads, rejected policy edits', `${s.policy_loads}, ${s.policy_rejections}`],
      ['chain restarts, chain signatures', `${s.chain_restarts}, ${s.chain_signatures}`],
      ['lines that are not audit events', n(s.unreadable_lines)],
    ],
  });

  blocks.push({ kind: 'heading', level: 2, text: 'Decisions by identity and rule' });
  const enforce = doc.decisions.filter((r) => r.mode === 'enforce');
  const report = doc.decisions.filter((r) => r.mode === 'report');
  blocks.push(enforce.length === 0 ? NONE : decisionTable(enforce, false));
  if (report.length > 0) {
    blocks.push({ kind: 'heading', level: 3, text: 'Rules in report-only mode: what they would have done' });
    blocks.push(decisionTable(report, true));
  }

  const over = doc.decisions_over_time;
  const busiest = Math.max(0, ...over.buckets.map((b) => b.allow + b.deny + b.approve + b.refused));
  blocks.push({ kind: 'heading', level: 2, text: 'Decisions over time' });
  blocks.push({
    kind: 'plot',
    ...decisionsPlot!,
    table: {
      kind: 'table',
      head: [`${over.bucket} from (UTC)`, 'allow', 'deny', 'approve', 'refused', ''],
      numeric: [1, 2, 3, 4],
      // The plot shows the quiet ones; as text they would only be rows of zeros.
      rows: over.buckets
        .filter((b) => b.allow + b.deny + b.approve + b.refused > 0)
        .map((b) => [when(b.start), b.allow, b.deny, b.approve, b.refused, bar(b.allow + b.deny + b.approve + b.refused, busiest)]),
    },
  });

  blocks.push({ kind: 'heading', level: 2, text: 'Approvals' });
  const tallest = Math.max(0, ...t.histogram.map((b) => b.approved + b.denied));
  blocks.push({ kind: 'heading', level: 3, text: 'Time to decide' });
  blocks.push({
    kind: 'plot',
    ...timePlot!,
    table: { kind: 'table', head: ['time to decide', 'approved', 'denied', ''], numeric: [1, 2], rows: t.histogram.map((b) => [b.label, b.approved, b.denied, bar(b.approved + b.denied, tallest)]) },
  });
  blocks.push({ kind: 'heading', level: 3, text: 'Every approval' });
  if (doc.approvals.length === 0) blocks.push(NONE);
  else {
    blocks.push({
      kind: 'table',
      head: ['approval', 'identity', 'rule', 'requested', 'decided', 'time to decide', 'outcome', 'approvers', 'edits', 'grants', 'forwarded'],
      rows: doc.approvals.map((r) => [
        r.approval_id,
        who(r.identity),
        ruleName(r.rule),
        when(r.requested_at),
        when(r.decided_at ?? r.ended_at),
        span(r.time_to_decide_ms),
        outcome(r),
        r.votes.filter((v) => !v.superseded).map((v) => `${v.approver} (${v.verdict === 'approve' ? 'approved' : 'denied'} ${when(v.at)})`).join('; '),
        String(r.edits.length || ''),
        r.grants.join('; '),
        forwarded(r),
      ]),
    });
    for (const r of doc.approvals) blocks.push(...approvalDetails(r));
  }

  blocks.push({ kind: 'heading', level: 2, text: 'Denials and refusals' });
  blocks.push({ kind: 'heading', level: 3, text: 'Approvals denied' });
  const denied = doc.approvals.filter((r) => r.state === 'denied');
  blocks.push(
    denied.length === 0
      ? NONE
      : { kind: 'table', head: ['approval', 'identity', 'rule', 'request', 'denied', 'by', 'reason'], rows: denied.map((r) => [r.approval_id, who(r.identity), ruleName(r.rule), request(r.method, r.host, r.path), when(r.decided_at), r.decided_by ?? '', r.decision_reason ?? '']) },
  );
  blocks.push({ kind: 'heading', level: 3, text: 'Requests denied or refused' });
  if (doc.refusals.length === 0) blocks.push(NONE);
  else {
    blocks.push({
      kind: 'table',
      head: ['time', 'kind', 'identity', 'rule', 'request', 'status', 'error', 'reason'],
      rows: doc.refusals.map((r) => [when(r.at), r.kind, who(r.identity), r.kind === 'refused' ? '' : ruleName(r.rule), request(r.method, r.host, r.path) || (r.approval_id === null ? `request ${r.request_id ?? '?'}` : `approval ${r.approval_id}`), r.status ?? '', r.error ?? '', r.reason ?? '']),
    });
    if (doc.refusals_not_listed > 0) blocks.push({ kind: 'paragraph', text: `${n(doc.refusals_not_listed)} more not listed (the counts above include them).` });
  }
  blocks.push({ kind: 'heading', level: 3, text: 'Refused votes' });
  blocks.push(
    doc.vote_refusals.length === 0 ? NONE : { kind: 'table', head: ['time', 'approval', 'who', 'reason'], rows: doc.vote_refusals.map((r) => [when(r.at), r.approval_id, r.approver, r.reason ?? '']) },
  );
  blocks.push({ kind: 'heading', level: 3, text: 'Forged approval state refused' });
  blocks.push(
    doc.forged.length === 0
      ? NONE
      : { kind: 'table', head: ['time', 'approval or grant', 'identity', 'rule', 'request', 'reason'], rows: doc.forged.map((r) => [when(r.at), r.approval_id ?? r.grant_id ?? '', who(r.identity), ruleName(r.rule), r.request_id ?? '', r.reason ?? '']) },
  );

  blocks.push({ kind: 'heading', level: 2, text: 'Grants' });
  blocks.push(
    doc.grants.length === 0
      ? NONE
      : {
          kind: 'table',
          head: ['grant', 'approval', 'identity', 'rule', 'covers', 'pinned', 'created', 'by', 'expires', 'uses', 'used', 'uses left', 'revoked'],
          numeric: [9, 10, 11],
          rows: doc.grants.map((g) => [
            g.grant_id,
            g.approval_id ?? '',
            who(g.identity),
            ruleName(g.rule),
            request(g.method, g.port === null ? g.host : `${g.host ?? ''}:${g.port}`, null),
            g.pins.join(', '),
            when(g.created_at),
            g.created_by ?? '',
            when(g.expires_at),
            g.uses ?? '',
            g.used,
            g.uses_left ?? '',
            g.revoked_at === null ? '' : `${when(g.revoked_at)} by ${g.revoked_by ?? '?'}`,
          ]),
        },
  );

  blocks.push({ kind: 'heading', level: 2, text: 'Policy versions in force' });
  blocks.push(
    doc.policies.length === 0
      ? NONE
      : {
          kind: 'table',
          head: ['version', 'loaded', 'files', 'rules', 'decisions in the period'],
          numeric: [3, 4],
          rows: doc.policies.map((v) => [
            v.version,
            [v.in_force_at_start ? 'in force when the period began' : '', ...v.loaded_at.map(when)].filter(Boolean).join('; ') || 'before the files read',
            v.files.join(', '),
            v.rule_count ?? '',
            v.decisions,
          ]),
        },
  );
  if (doc.policy_rejections.length > 0) {
    blocks.push({ kind: 'heading', level: 3, text: 'Policy edits rejected (the version before stayed in force)' });
    blocks.push({ kind: 'table', head: ['time', 'still in force', 'errors'], rows: doc.policy_rejections.map((r) => [when(r.at), r.in_force ?? '', r.errors.join('; ') || (r.reason ?? '')]) });
  }

  blocks.push({ kind: 'heading', level: 2, text: 'Escalations' });
  const escalations = doc.approvals.flatMap((r) => r.escalations.map((e) => [when(e.at), r.approval_id, who(r.identity), ruleName(r.rule), e.approvers.join(', '), e.channel ?? '']));
  blocks.push(escalations.length === 0 ? NONE : { kind: 'table', head: ['time', 'approval', 'identity', 'rule', 'asked', 'channel'], rows: escalations });
  return blocks;
}
