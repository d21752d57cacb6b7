import type { Finding } from '../inspect/finding.js';
import { redactQuery } from '../audit/redact.js';
import { bodyPreview } from './redact-body.js';
import type { GrantState } from './grants.js';
import { asDecided, type ApprovalRecord } from './types.js';

const PREVIEW_BYTES = 512;

function contentType(headers: readonly string[]): string | undefined {
  const i = headers.indexOf('content-type');
  return i >= 0 && i % 2 === 0 ? headers[i + 1] : undefined;
}
const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

function formatUrl(r: ApprovalRecord['request']): string {
  const defaultPort = r.scheme === 'https' ? 443 : 80;
  const host = r.host.includes(':') ? `[${r.host}]` : r.host;
  const port = r.port === defaultPort ? '' : `:${r.port}`;
  return `${r.scheme}://${host}${port}${r.encodedPath}${r.query ? `?${redactQuery(r.query)}` : ''}`;
}

/** The approvals API's View as JSON: what approvalView returns, as its readers (CLI, inbox) see it. */
export interface ApprovalView {
  id: string;
  state: string;
  rule: string;
  rule_description: string | null;
  identity: string | null;
  owner: string | null;
  reason: string | null;
  request: {
    method: string;
    url: string;
    classification: string | null;
    /** Absent from servers older than detectors. */
    findings?: Finding[];
    digest: string;
    body_bytes: number;
    body_preview: string;
  };
  required: number;
  approvals: { approver: string; at: string }[];
  created_at: string;
  expires_at: string;
  decided_at: string | null;
  decided_by: string | null;
  decision_reason: string | null;
  executed_at: string | null;
  forwarded: { status: number; at: string } | null;
  /** Absent from servers older than impact probes; null until they ran. */
  probes?: { name: string; state: 'ok' | 'failed'; status?: number; fields?: { pointer: string; value: string }[]; error?: string }[] | null;
  /** Absent from servers older than impact facts. */
  impact?: {
    body_bytes: number;
    arrays: { path: string; count: number }[];
    destination: string;
    classification: string | null;
    classification_why: string | null;
    history: { approved: number; denied: number; expired: number; first_time: boolean; window_days: number };
  } | null;
  /** Absent from servers older than approving with edits. */
  edit?: { by: string; at: string; changes: unknown; original_digest: string; digest: string; rule: string } | null;
  status_url: string;
}

/** Facts taken when the request was held (impact.ts), or null for records from before. */
function impactView(r: ApprovalRecord): Record<string, unknown> | null {
  const i = r.impact;
  if (i === null) return null;
  const h = i.history;
  return {
    body_bytes: i.bodyBytes,
    arrays: i.arrays,
    destination: i.destination,
    classification: i.classification,
    classification_why: i.classificationWhy,
    history: { approved: h.approved, denied: h.denied, expired: h.expired, first_time: h.approved + h.denied + h.expired === 0, window_days: 30 },
  };
}

/** What approvers see of a grant (the approvals API and CLI). */
export function grantView(g: GrantState): Record<string, unknown> {
  return {
    id: g.id,
    approval_id: g.approvalId,
    identity: g.identity,
    rule: g.rule,
    action: `${g.method} ${g.scheme}://${g.host.includes(':') ? `[${g.host}]` : g.host}:${g.port}`,
    pins: g.pins.map((p) => ({ field: p.field, value: JSON.parse(p.value) as unknown })),
    by: g.by,
    created_at: iso(g.createdAt),
    expires_at: iso(g.expiresAt),
    uses: g.uses,
    uses_left: g.usesLeft,
    revoked_at: iso(g.revokedAt),
    revoked_by: g.revokedBy,
  };
}

/** What an approver changed, when the request was approved with edits: the agent reads it too. */
export function editView(r: ApprovalRecord): Record<string, unknown> | null {
  const e = r.edit;
  return e === null ? null : { by: e.by, at: iso(e.at), changes: e.changes, original_digest: r.digest, digest: e.digest, rule: e.rule };
}

/**
 * What approvers see of an approval (the approvals API and CLI): the request it decides now (the
 * edited one after an edit), secrets in the query redacted, the body previewed.
 */
export function approvalView(record: ApprovalRecord, statusPrefix: string): Record<string, unknown> {
  const r = asDecided(record);
  const body = Buffer.from(r.request.body, 'base64');
  return {
    id: r.id,
    state: r.state,
    rule: r.rule,
    rule_description: r.ruleDescription,
    identity: r.identity,
    owner: r.owner,
    reason: r.reason,
    request: {
      method: r.request.method,
      url: formatUrl(r.request),
      classification: r.request.classification,
      findings: r.request.findings ?? [],
      digest: r.digest,
      body_bytes: body.length,
      // Secrets in the body are redacted here too, as in Slack.
      body_preview: bodyPreview(body, contentType(r.request.headers), PREVIEW_BYTES).text,
    },
    required: r.required,
    approvals: r.approvals.map((v) => ({ approver: v.approver, at: iso(v.at) })),
    created_at: iso(r.createdAt),
    expires_at: iso(r.expiresAt),
    decided_at: iso(r.decidedAt),
    decided_by: r.decidedBy,
    decision_reason: r.decisionReason,
    executed_at: iso(r.executedAt),
    // Null while executed: claimed for forwarding, and no answer recorded (yet, or ever: at most once).
    forwarded: r.forwarded === null ? null : { status: r.forwarded.status, at: iso(r.forwarded.at) },
    edit: editView(record),
    impact: impactView(record),
    // Null until the rule's impact probes ran (or when it has none).
    probes: record.probes,
    status_url: `${statusPrefix}${r.id}`,
  };
}
