/**
 * What every approval channel says about a request, whatever its markup: the URL as approvers see
 * it, durations, what an edit changed, and the sentence that tells how it ended. Each channel (Slack,
 * Teams) formats these with its own escaping, dates and mentions.
 */
import { redactQuery } from '../audit/redact.js';
import { bodyPreview } from './redact-body.js';
import { BY_POLICY, type ApprovalEdit, type ApprovalRecord } from './types.js';

export function hostPort(r: ApprovalRecord['request']): string {
  const host = r.host.includes(':') ? `[${r.host}]` : r.host;
  return r.port === (r.scheme === 'https' ? 443 : 80) ? host : `${host}:${r.port}`;
}

/** The URL as approvers see it: the query's secrets redacted (as in the approvals API). */
export function displayUrl(r: ApprovalRecord['request']): string {
  return `${r.scheme}://${hostPort(r)}${r.encodedPath}${r.query ? `?${redactQuery(r.query)}` : ''}`;
}

/** A header of a flat [name, value, …] list, by case-insensitive name. */
export function headerOf(list: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < list.length; i += 2) if (list[i]?.toLowerCase() === lower) return list[i + 1];
  return undefined;
}

/** What approvers see of a body (bytes of UTF-8, before escaping). */
const BODY_PREVIEW_BYTES = 512;

/**
 * The body as approvers see it — its first bytes with secrets redacted — and notes on what is shown
 * (size, content type as `show` writes it, redacted, cut); null for no body.
 */
export function bodyShown(req: ApprovalRecord['request'], show: (text: string, max: number) => string): { text: string; notes: string } | null {
  const body = Buffer.from(req.body, 'base64');
  if (body.length === 0) return null;
  const contentType = headerOf(req.headers, 'content-type');
  const preview = bodyPreview(body, contentType, BODY_PREVIEW_BYTES);
  const notes = [
    `${body.length} byte${body.length === 1 ? '' : 's'}`,
    contentType ? show(contentType, 100) : 'no content type',
    ...(preview.redacted ? ['secrets redacted'] : []),
    ...(preview.truncated ? [`first ${BODY_PREVIEW_BYTES} bytes shown`] : []),
  ];
  return { text: preview.text, notes: notes.join(' · ') };
}

export function duration(ms: number): string {
  const min = Math.round(ms / 60_000);
  if (ms < 60_000) return `${Math.max(0, Math.round(ms / 1000))} s`;
  if (min < 60) return `${min} min`;
  if (min < 48 * 60) return min % 60 === 0 ? `${min / 60} h` : `${Math.floor(min / 60)} h ${min % 60} min`;
  return `${Math.round(min / 1440)} days`;
}

/** What an approver's edit changed, one line each. */
export function editChanges(e: ApprovalEdit): string[] {
  return [
    ...(e.changes.body ?? []).map((op) => `${op.op} ${op.path}`),
    ...Object.entries(e.changes.query ?? {}).map(([k, v]) => (v === null ? `query ${k} removed` : `query ${k}=${v}`)),
    ...Object.entries(e.changes.headers ?? {}).map(([k, v]) => (v === null ? `header ${k} removed` : `header ${k}: ${v}`)),
  ];
}

/** How a channel writes what the outcome sentence is made of. */
export interface OutcomeFormat {
  date(ms: number): string;
  /** A list of people (the approvers). */
  people(names: readonly string[]): string;
  person(name: string): string;
  strong(s: string): string;
}

export function approvalsSoFar(r: ApprovalRecord, people: (names: readonly string[]) => string): string {
  const who = r.approvals.length > 0 ? `: ${people(r.approvals.map((v) => v.approver))}` : '';
  return `${r.approvals.length} of ${r.required} approval${r.required === 1 ? '' : 's'}${who}`;
}

/** What happened to a decided request, who decided and when. Empty for a pending one. */
export function outcomeSentence(r: ApprovalRecord, now: number, f: OutcomeFormat): string {
  const at = f.date(r.decidedAt ?? now);
  const approvers = f.people(r.approvals.map((v) => v.approver));
  switch (r.state) {
    case 'approved':
      return `${f.strong('Approved')} by ${approvers}, ${at}. The request may be sent once, until ${f.date(r.expiresAt)}.`;
    case 'executed':
      // Claimed, then sent: until the answer is recorded it may never have left (its replica stopped).
      return r.forwarded === null
        ? `${f.strong('Approved')} by ${approvers}, ${at}. ${f.strong('Sending')} since ${f.date(r.executedAt ?? now)}; no answer recorded yet.`
        : `${f.strong('Approved')} by ${approvers}, ${at}. ${f.strong('Sent')} ${f.date(r.executedAt ?? now)}; answered ${r.forwarded.status}.`;
    case 'denied':
      return `${f.strong('Denied')} by ${r.decidedBy === null ? 'an approver' : f.person(r.decidedBy)}, ${at}.`;
    case 'cancelled':
      if (r.decidedBy === BY_POLICY) return `${f.strong('Refused by the policy in force')}, ${at}: it was not sent.`;
      return `${f.strong('Withdrawn')} by ${r.decidedBy === null ? 'the agent' : f.person(r.decidedBy)}, ${at}, before anyone decided.`;
    case 'expired':
      return r.approvals.length >= r.required
        ? `${f.strong('Lapsed')}: approved by ${approvers} but not sent before ${f.date(r.expiresAt)}. The agent must ask again.`
        : `${f.strong('Expired')} ${f.date(r.expiresAt)} with nobody deciding (${approvalsSoFar(r, f.people)}). The request was not sent.`;
    default:
      return '';
  }
}

/** Titles of a decided request, as a channel's header shows them. */
export const OUTCOME_TITLE: Record<Exclude<ApprovalRecord['state'], 'pending'>, { text: string; word: string }> = {
  approved: { text: '✅ Approved', word: 'Approved' },
  executed: { text: '✅ Approved and sent', word: 'Approved and sent' },
  denied: { text: '⛔ Denied', word: 'Denied' },
  expired: { text: '⌛ Expired', word: 'Expired' },
  cancelled: { text: '↩️ Withdrawn', word: 'Withdrawn' },
};

export function outcomeTitle(r: ApprovalRecord): { text: string; word: string } {
  if (r.state === 'pending') return { text: 'Approval needed', word: 'Approval needed' };
  return r.state === 'cancelled' && r.decidedBy === BY_POLICY ? { text: '🛑 Refused by policy', word: 'Refused by policy' } : OUTCOME_TITLE[r.state];
}
