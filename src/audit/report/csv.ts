/**
 * One table of the report as CSV (RFC 4180: CRLF, quoted where needed), for spreadsheets and other
 * tools. Values are kept whole, newlines included; only cells a spreadsheet would run as a formula
 * are changed.
 */
import type { ReportDocument } from './format.js';

export const CSV_TABLES = ['approvals', 'votes', 'decisions', 'denials', 'grants', 'policies'] as const;
export type CsvTable = (typeof CSV_TABLES)[number];

type Cell = string | number | boolean | null;

/**
 * A cell: text starting with = + - @ (or a tab or carriage return) is what spreadsheets evaluate as
 * a formula, and the trail holds agent-controlled text: it gets a leading `'` (OWASP's advice).
 * Numbers are written as numbers.
 */
export function csvCell(value: Cell): string {
  if (value === null) return '';
  if (typeof value !== 'string') return String(value);
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLines(head: readonly string[], rows: Iterable<readonly Cell[]>): string {
  let out = `${head.map(csvCell).join(',')}\r\n`;
  for (const row of rows) out += `${row.map(csvCell).join(',')}\r\n`;
  return out;
}

function rowsOf(doc: ReportDocument, table: CsvTable): { head: string[]; rows: Cell[][] } {
  switch (table) {
    case 'approvals':
      return {
        head: ['approval_id', 'request_id', 'identity', 'owner', 'rule', 'method', 'host', 'path', 'reason', 'required', 'policy_version', 'requested_at', 'joined', 'state', 'decided_at', 'decided_by', 'decision_reason', 'time_to_decide_ms', 'ended_at', 'approvers', 'approved_at', 'denied_by', 'edits', 'edited_by', 'escalations', 'refused_votes', 'grants', 'executed_at', 'executed_request_id', 'replica', 'forwarded_status', 'forwarded_error', 'forged_reason'],
        rows: doc.approvals.map((a) => {
          const approvals = a.votes.filter((v) => v.verdict === 'approve' && !v.superseded);
          return [
            a.approval_id, a.request_id, a.identity, a.owner, a.rule, a.method, a.host, a.path, a.reason, a.required, a.policy_version,
            a.requested_at, a.joined, a.state, a.decided_at, a.decided_by, a.decision_reason, a.time_to_decide_ms, a.ended_at,
            approvals.map((v) => v.approver).join(' '),
            approvals.map((v) => v.at ?? '').join(' '),
            a.votes.filter((v) => v.verdict === 'deny').map((v) => v.approver).join(' '),
            a.edits.length,
            a.edits.map((e) => e.approver).join(' '),
            a.escalations.length,
            a.refused_votes.length,
            a.grants.join(' '),
            a.executed_at, a.executed_request_id, a.replica,
            a.forwarded_answer?.status ?? null, a.forwarded_answer?.error ?? null,
            a.forged_reason,
          ];
        }),
      };
    case 'votes':
      return {
        head: ['approval_id', 'identity', 'rule', 'approver', 'verdict', 'at', 'reason', 'via', 'superseded'],
        rows: doc.approvals.flatMap((a) => a.votes.map((v) => [a.approval_id, a.identity, a.rule, v.approver, v.verdict, v.at, v.reason, v.via, v.superseded])),
      };
    case 'decisions':
      return {
        head: ['identity', 'rule', 'mode', 'allow', 'deny', 'approve', 'refused', 'total'],
        rows: doc.decisions.map((d) => [d.identity, d.rule, d.mode, d.allow, d.deny, d.approve, d.refused, d.total]),
      };
    case 'denials':
      return {
        head: ['time', 'kind', 'request_id', 'approval_id', 'grant_id', 'identity', 'rule', 'method', 'host', 'path', 'status', 'error', 'by', 'reason'],
        rows: [
          ...doc.refusals.map((r) => [r.at, r.kind, r.request_id, r.approval_id, null, r.identity, r.rule, r.method, r.host, r.path, r.status, r.error, null, r.reason]),
          // Approvers' denials, refused votes and forged state, in the same columns.
          ...doc.approvals
            .filter((a) => a.state === 'denied')
            .map((a) => [a.decided_at, 'approval_denied', a.request_id, a.approval_id, null, a.identity, a.rule, a.method, a.host, a.path, null, null, a.decided_by, a.decision_reason]),
          ...doc.vote_refusals.map((v) => [v.at, 'vote_refused', null, v.approval_id, null, null, null, null, null, null, null, null, v.approver, v.reason]),
          ...doc.forged.map((f) => [f.at, 'forged', f.request_id, f.approval_id, f.grant_id, f.identity, f.rule, null, null, null, null, null, null, f.reason]),
        ].sort((x, y) => String(x[0] ?? '').localeCompare(String(y[0] ?? ''))),
      };
    case 'grants':
      return {
        head: ['grant_id', 'approval_id', 'identity', 'rule', 'method', 'host', 'port', 'pins', 'uses', 'expires_at', 'created_at', 'created_by', 'used', 'last_used_at', 'uses_left', 'revoked_at', 'revoked_by'],
        rows: doc.grants.map((g) => [g.grant_id, g.approval_id, g.identity, g.rule, g.method, g.host, g.port, g.pins.join(' '), g.uses, g.expires_at, g.created_at, g.created_by, g.used, g.last_used_at, g.uses_left, g.revoked_at, g.revoked_by]),
      };
    case 'policies':
      return {
        head: ['version', 'event', 'at', 'files', 'rule_count', 'in_force_at_start', 'decisions', 'errors'],
        rows: [
          ...doc.policies.map((p) => [p.version, 'loaded', p.loaded_at.join(' '), p.files.join(' '), p.rule_count, p.in_force_at_start, p.decisions, null]),
          ...doc.policy_rejections.map((r) => [r.in_force, 'rejected', r.at, null, null, null, null, r.errors.join('\n')]),
        ],
      };
  }
}

export function renderCsv(doc: ReportDocument, table: CsvTable = 'approvals'): string {
  const { head, rows } = rowsOf(doc, table);
  return csvLines(head, rows);
}
