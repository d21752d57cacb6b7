/** The report as a whole, and the wording shared by its renderers. */
import type { ApprovalRow, Report } from './aggregate.js';
import type { FileInfo } from './read.js';
import type { TrailVerification } from './verify-files.js';

export interface ReportDocument extends Report {
  generated_at: string;
  airlock_version: string;
  files: FileInfo[];
  verification: TrailVerification;
}

/** A duration for people: 412 ms, 4.2 s, 3 min 12 s, 2 h 5 min, 1 d 3 h. */
export function span(ms: number | null): string {
  if (ms === null) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}

/** A trail time, shorter: `2026-11-21 09:08:31Z` (UTC, like the trail). */
export function when(iso: string | null): string {
  if (iso === null) return '';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]}Z` : iso;
}

export const who = (identity: string | null): string => identity ?? '(anonymous)';
/** As the metrics name it: no rule matched, the policy's default decided. */
export const ruleName = (rule: string | null): string => rule ?? '(default)';

export function request(method: string | null, host: string | null, path: string | null): string {
  return [method, `${host ?? ''}${path ?? ''}`].filter((p) => p !== null && p !== '').join(' ');
}

/** What became of an approval, in words. */
export function outcome(a: ApprovalRow): string {
  switch (a.state) {
    case 'executed':
      return 'approved, forwarded';
    case 'approved':
      return 'approved, not forwarded yet';
    case 'expired':
      return a.decided_at === null ? 'expired: nobody decided' : 'approved, expired unused';
    case 'cancelled':
      return `cancelled${a.decided_by === null ? '' : ` by ${a.decided_by}`}`;
    case 'forged':
      return 'refused: forged approval state';
    default:
      return a.state;
  }
}

/** Each vote: `bob@example.com approved 2026-11-21 09:10:02Z`. */
export function votes(a: ApprovalRow): string[] {
  return a.votes.map((v) => {
    const verb = v.verdict === 'approve' ? (v.via === 'edit' ? 'approved with an edit' : 'approved') : 'denied';
    const notes = [v.via === 'executed_record' ? 'known from the executed record: the vote\'s own line is missing' : '', v.superseded ? 'superseded by a later edit' : '']
      .filter(Boolean)
      .join('; ');
    return `${v.approver} ${verb}${v.at === null ? '' : ` ${when(v.at)}`}${v.reason === null ? '' : `: ${v.reason}`}${notes === '' ? '' : ` (${notes})`}`;
  });
}

export function edits(a: ApprovalRow): string[] {
  return a.edits.map(
    (e) => `${e.approver} ${when(e.at)}: ${e.changes.join(', ') || 'no change recorded'}${e.rule !== null && e.rule !== a.rule ? `; now decided by rule ${e.rule}` : ''}${e.counted ? '' : '; not counted as an approval'}`,
  );
}

/** The forwarded request, as far as the trail knows it (the upstream's status is not an audit event). */
export function forwarded(a: ApprovalRow): string {
  if (a.executed_at === null) return '';
  const answer = a.forwarded_answer;
  const how = answer === null ? 'forwarded' : `forwarded; Airlock answered ${answer.status ?? '?'} ${answer.error ?? ''}`.trimEnd();
  return `${how} ${when(a.executed_at)}${a.replica === null ? '' : ` by ${a.replica}`}`;
}

export const n = (value: number): string => value.toLocaleString('en-US');

/** The verification's headline and the lines under it. */
export function verificationText(doc: ReportDocument): { tone: 'ok' | 'bad' | 'warn'; title: string; items: string[] } {
  const v = doc.verification;
  const lines = doc.files.reduce((sum, f) => sum + f.lines, 0);
  const files = doc.files.length === 1 ? '1 file' : `${doc.files.length} files`;
  const notes = v.notes.map((x) => `note: ${x.file} line ${x.line}: ${x.message}`);
  if (!v.checked) {
    return { tone: 'warn', title: 'Chain not verified.', items: [v.skipped ?? 'verification was turned off (--no-verify): nothing shows these lines are what Airlock wrote'] };
  }
  if (!v.ok) {
    return {
      tone: 'bad',
      title: 'THE AUDIT CHAIN IS BROKEN: lines were edited, removed, reordered, damaged or wrongly signed, so this report may not show what Airlock wrote.',
      items: [...v.problems.map((p) => `${p.file} line ${p.line}: ${p.kind}: ${p.message}`), ...notes],
    };
  }
  const signatures = v.signatures_checked ? 'signatures valid' : 'signatures not checked (give --public-key)';
  return { tone: 'ok', title: `Chain intact: ${n(lines)} lines in ${files}, checked as airlock audit verify checks them; ${signatures}.`, items: notes };
}
