/**
 * What a security review asks of an audit trail, computed from its events one at a time: decisions by
 * identity and rule, every approval with its votes, edits, grants and time to decide, denials and
 * refusals, grants, policy versions. Pure (no I/O): read.ts feeds it parsed lines in trail order.
 *
 * Memory grows with approvals, grants, policy versions and identity × rule pairs, not with lines:
 * plain requests are only counted, and listed refusals stop at `maxListed` (their counts do not).
 * Field names are the trail's (snake_case), so the JSON output reads like the trail.
 */

export const ACTIONS = ['allow', 'deny', 'approve', 'refused'] as const;
export type Action = (typeof ACTIONS)[number];
export type ActionCounts = Record<Action, number>;

export interface ReportPeriod {
  /** The period asked for (ISO), null when open. */
  since: string | null;
  until: string | null;
  /** The first and last event found in it. */
  first_event: string | null;
  last_event: string | null;
}

export interface Summary {
  /** Events in the period. */
  events: number;
  /** Policy decisions on requests and tunnels (rules in report-only mode are not decisions). */
  decisions: ActionCounts;
  identities: number;
  approvals: { total: number; pending: number; approved: number; denied: number; expired: number; cancelled: number; executed: number; forged: number };
  votes: number;
  refused_votes: number;
  edits: number;
  escalations: number;
  grants: { created: number; used: number; revoked: number };
  /** Requests answered by Airlock after their decision (`request_answered`). */
  answered: number;
  /** Requests refused for an identity's pending-approvals limit (`approval_limited`). */
  limited: number;
  forged: number;
  policy_loads: number;
  policy_rejections: number;
  chain_restarts: number;
  chain_signatures: number;
  /** Lines that are not audit events (in any period: they have no time). */
  unreadable_lines: number;
}

export interface DecisionRow extends ActionCounts {
  identity: string | null;
  rule: string | null;
  /** `report`: rules in report-only mode, counted by what they would have done. */
  mode: 'enforce' | 'report';
  total: number;
}

export interface Vote {
  approver: string;
  verdict: 'approve' | 'deny';
  at: string | null;
  reason: string | null;
  /** `edit`: the editor's approval of the edited request; `executed_record`: known only from `approval_executed` (the vote's own line is missing). */
  via: 'vote' | 'edit' | 'executed_record';
  /** An approval given before an edit: the edit restarted the count. */
  superseded: boolean;
}

export interface Edit {
  approver: string;
  at: string;
  /** The rule deciding the edited request. */
  rule: string | null;
  /** What changed, never values: `body replace /rows`, `query limit`, `header x-export-format`. */
  changes: string[];
  digest: string | null;
  /** Whether the edit counted as the editor's approval. */
  counted: boolean;
}

export interface ApprovalRow {
  approval_id: string;
  request_id: string | null;
  identity: string | null;
  owner: string | null;
  rule: string | null;
  method: string | null;
  host: string | null;
  path: string | null;
  /** The agent's stated reason (`X-Airlock-Reason`). */
  reason: string | null;
  required: number | null;
  policy_version: string | null;
  /** Null when the request was made before the files read. */
  requested_at: string | null;
  /** Identical requests that joined it. */
  joined: number;
  escalations: { at: string; approvers: string[]; channel: string | null }[];
  votes: Vote[];
  refused_votes: VoteRefusal[];
  edits: Edit[];
  /** The last state recorded: pending, approved, denied, expired, cancelled, executed, forged. */
  state: string;
  /** When approvers approved or denied it. */
  decided_at: string | null;
  decided_by: string | null;
  decision_reason: string | null;
  time_to_decide_ms: number | null;
  /** When it expired or was cancelled. */
  ended_at: string | null;
  executed_at: string | null;
  executed_request_id: string | null;
  replica: string | null;
  /** What Airlock itself answered the forwarded request with (an upstream failure); null: the upstream's answer, which the trail does not hold. */
  forwarded_answer: { status: number | null; error: string | null; reason: string | null } | null;
  grants: string[];
  forged_reason: string | null;
}

export interface Refusal {
  at: string;
  /**
   * `denied`: a rule (or the default) denied it; `refused`: rejected before evaluation; `answered`: answered
   * by Airlock after its decision (approval denied or expired, limits, upstream failure); `tunnel`: traffic
   * refused inside a tunnel; `destination`: the destination guard refused the address.
   */
  kind: 'denied' | 'refused' | 'answered' | 'tunnel' | 'destination';
  request_id: string | null;
  identity: string | null;
  rule: string | null;
  method: string | null;
  host: string | null;
  path: string | null;
  status: number | null;
  error: string | null;
  approval_id: string | null;
  reason: string | null;
}

export interface VoteRefusal {
  at: string;
  approval_id: string;
  approver: string;
  reason: string | null;
}

export interface Forged {
  at: string;
  request_id: string | null;
  approval_id: string | null;
  grant_id: string | null;
  identity: string | null;
  rule: string | null;
  reason: string | null;
}

export interface GrantRow {
  grant_id: string;
  approval_id: string | null;
  identity: string | null;
  rule: string | null;
  method: string | null;
  host: string | null;
  port: number | null;
  pins: string[];
  uses: number | null;
  expires_at: string | null;
  created_at: string | null;
  created_by: string | null;
  /** Uses recorded in the files read. */
  used: number;
  last_used_at: string | null;
  uses_left: number | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface PolicyRow {
  version: string;
  /** Every `policy_loaded` of this version in the files read. */
  loaded_at: string[];
  files: string[];
  rule_count: number | null;
  /** Already in force when the period began. */
  in_force_at_start: boolean;
  /** Decisions made under it in the period. */
  decisions: number;
}

export interface PolicyRejection {
  at: string;
  /** The version that stayed in force. */
  in_force: string | null;
  reason: string | null;
  errors: string[];
}

export interface TimeBucket extends ActionCounts {
  start: string;
}

export interface TimeToDecide {
  count: number;
  median_ms: number | null;
  p90_ms: number | null;
  max_ms: number | null;
  histogram: { label: string; min_ms: number; max_ms: number | null; approved: number; denied: number }[];
}

export interface Report {
  period: ReportPeriod;
  summary: Summary;
  decisions: DecisionRow[];
  approvals: ApprovalRow[];
  refusals: Refusal[];
  /** Refusals in the period beyond `maxListed`: counted, not listed. */
  refusals_not_listed: number;
  vote_refusals: VoteRefusal[];
  forged: Forged[];
  grants: GrantRow[];
  policies: PolicyRow[];
  policy_rejections: PolicyRejection[];
  decisions_over_time: { bucket: 'hour' | 'day' | 'week'; buckets: TimeBucket[] };
  time_to_decide: TimeToDecide;
}

export interface AggregateOptions {
  /** Milliseconds since the epoch; events before `since` or at/after `until` are outside the period. */
  since?: number;
  until?: number;
  /** Most refusals listed (default 10,000); the rest are counted. */
  maxListed?: number;
}

export interface Aggregator {
  /** One parsed audit line, in trail order. */
  add(event: Readonly<Record<string, unknown>>): void;
  /** A line that is not an audit event. */
  unreadable(): void;
  finish(): Report;
}

/** Held requests waiting for their approval line (see `held`). */
const MAX_HELD = 10_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** Time-to-decide bins: fixed, so reports of different periods compare. */
const BINS: readonly { label: string; min: number; max: number | null }[] = [
  { label: '< 10 s', min: 0, max: 10_000 },
  { label: '10 s – 1 min', min: 10_000, max: 60_000 },
  { label: '1 – 5 min', min: 60_000, max: 300_000 },
  { label: '5 – 15 min', min: 300_000, max: 900_000 },
  { label: '15 min – 1 h', min: 900_000, max: HOUR },
  { label: '1 – 4 h', min: HOUR, max: 4 * HOUR },
  { label: '4 – 24 h', min: 4 * HOUR, max: DAY },
  { label: '≥ 1 d', min: DAY, max: null },
];

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const zero = (): ActionCounts => ({ allow: 0, deny: 0, approve: 0, refused: 0 });
const isAction = (v: unknown): v is Action => typeof v === 'string' && (ACTIONS as readonly string[]).includes(v);

/** `changes` of `approval_edited` as short phrases. */
function describeChanges(changes: unknown): string[] {
  if (changes === null || typeof changes !== 'object') return [];
  const c = changes as Record<string, unknown>;
  const out: string[] = [];
  if (Array.isArray(c.body)) {
    for (const op of c.body as unknown[]) {
      if (op === null || typeof op !== 'object') continue;
      const o = op as Record<string, unknown>;
      const from = str(o.from);
      out.push(`body ${str(o.op) ?? '?'} ${str(o.path) ?? '?'}${from === null ? '' : ` from ${from}`}`);
    }
  }
  for (const name of strings(c.query)) out.push(`query ${name}`);
  for (const name of strings(c.headers)) out.push(`header ${name}`);
  return out;
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Start of the bucket holding `t`: weeks start on Monday, UTC (1970-01-05 was one). */
function bucketStart(t: number, size: 'hour' | 'day' | 'week'): number {
  if (size === 'hour') return Math.floor(t / HOUR) * HOUR;
  if (size === 'day') return Math.floor(t / DAY) * DAY;
  return Math.floor((t - 4 * DAY) / WEEK) * WEEK + 4 * DAY;
}

/** The row for `key`, made on first use. */
function row<T>(rows: Map<string, T>, key: string, make: () => T): T {
  let found = rows.get(key);
  if (found === undefined) {
    found = make();
    rows.set(key, found);
  }
  return found;
}

export function createAggregator(opts: AggregateOptions = {}): Aggregator {
  const since = opts.since ?? -Infinity;
  const until = opts.until ?? Infinity;
  const maxListed = opts.maxListed ?? 10_000;
  const within = (t: number): boolean => t >= since && t < until;

  const summary: Summary = {
    events: 0,
    decisions: zero(),
    identities: 0,
    approvals: { total: 0, pending: 0, approved: 0, denied: 0, expired: 0, cancelled: 0, executed: 0, forged: 0 },
    votes: 0,
    refused_votes: 0,
    edits: 0,
    escalations: 0,
    grants: { created: 0, used: 0, revoked: 0 },
    answered: 0,
    limited: 0,
    forged: 0,
    policy_loads: 0,
    policy_rejections: 0,
    chain_restarts: 0,
    chain_signatures: 0,
    unreadable_lines: 0,
  };
  let first: string | null = null;
  let last: string | null = null;
  const identities = new Set<string | null>();
  const decisions = new Map<string, DecisionRow>();
  /** Decisions per hour; merged into days or weeks at the end when the period is long. */
  const hourly = new Map<number, ActionCounts>();
  const refusals: Refusal[] = [];
  let refusalsNotListed = 0;
  const voteRefusals: VoteRefusal[] = [];
  const forged: Forged[] = [];

  const approvals = new Map<string, ApprovalRow>();
  /** Approvals with an event in the period: only those are reported, each with its whole recorded story. */
  const approvalsInPeriod = new Set<string>();
  /** Held requests (decision `approve`) not yet tied to an approval: what their approval line lacks. */
  const held = new Map<string, { policy_version: string | null }>();
  /** Request ids that forwarded an approved request: an upstream failure answered for them belongs to the approval. */
  const executing = new Map<string, string>();

  const grants = new Map<string, GrantRow>();
  const grantsInPeriod = new Set<string>();

  const policies = new Map<string, PolicyRow>();
  /** The version in force before the period began (the last one loaded before it). */
  let inForceAtStart: string | null = null;
  const rejections: PolicyRejection[] = [];

  const approvalRow = (id: string): ApprovalRow =>
    row(approvals, id, () => ({
      approval_id: id,
      request_id: null,
      identity: null,
      owner: null,
      rule: null,
      method: null,
      host: null,
      path: null,
      reason: null,
      required: null,
      policy_version: null,
      requested_at: null,
      joined: 0,
      escalations: [],
      votes: [],
      refused_votes: [],
      edits: [],
      state: 'pending',
      decided_at: null,
      decided_by: null,
      decision_reason: null,
      time_to_decide_ms: null,
      ended_at: null,
      executed_at: null,
      executed_request_id: null,
      replica: null,
      forwarded_answer: null,
      grants: [],
      forged_reason: null,
    }));

  const grantRow = (id: string): GrantRow =>
    row(grants, id, () => ({
      grant_id: id,
      approval_id: null,
      identity: null,
      rule: null,
      method: null,
      host: null,
      port: null,
      pins: [],
      uses: null,
      expires_at: null,
      created_at: null,
      created_by: null,
      used: 0,
      last_used_at: null,
      uses_left: null,
      revoked_at: null,
      revoked_by: null,
    }));

  const policyRow = (version: string): PolicyRow =>
    row(policies, version, () => ({ version, loaded_at: [], files: [], rule_count: null, in_force_at_start: false, decisions: 0 }));

  const count = (identity: string | null, rule: string | null, mode: 'enforce' | 'report', action: Action): void => {
    const key = JSON.stringify([identity, rule, mode]);
    let row = decisions.get(key);
    if (row === undefined) decisions.set(key, (row = { identity, rule, mode, ...zero(), total: 0 }));
    row[action]++;
    row.total++;
  };

  const refusal = (r: Refusal): void => {
    if (refusals.length < maxListed) refusals.push(r);
    else refusalsNotListed++;
  };

  const base = (e: Readonly<Record<string, unknown>>, at: string, kind: Refusal['kind']): Refusal => ({
    at,
    kind,
    request_id: str(e.request_id),
    identity: str(e.identity),
    rule: str(e.rule),
    method: str(e.method),
    host: str(e.host),
    path: str(e.path) ?? str(e.target),
    status: num(e.status),
    error: str(e.error),
    approval_id: str(e.approval_id),
    reason: str(e.reason),
  });

  /** A request or tunnel decided by the policy (or refused before it). */
  const decision = (e: Readonly<Record<string, unknown>>, at: string, t: number, inPeriod: boolean): void => {
    const action = e.decision;
    const requestId = str(e.request_id);
    if (action === 'approve' && requestId !== null) {
      held.set(requestId, { policy_version: str(e.policy_version) });
      // Its approval line follows at once; a request refused before it (body too large, store down)
      // never gets one, so only the newest are kept.
      if (held.size > MAX_HELD) held.delete(held.keys().next().value!);
    }
    if (!inPeriod || !isAction(action)) return;
    const identity = str(e.identity);
    const rule = str(e.rule);
    identities.add(identity);
    summary.decisions[action]++;
    count(identity, rule, 'enforce', action);
    if (Array.isArray(e.report)) {
      for (const r of e.report as unknown[]) {
        const entry = r !== null && typeof r === 'object' ? (r as Record<string, unknown>) : {};
        if (isAction(entry.action)) count(identity, str(entry.rule), 'report', entry.action);
      }
    }
    const hour = bucketStart(t, 'hour');
    const bucket = hourly.get(hour) ?? zero();
    bucket[action]++;
    hourly.set(hour, bucket);
    const version = str(e.policy_version);
    if (version !== null) policyRow(version).decisions++;
    if (action === 'deny') refusal(base(e, at, 'denied'));
    else if (action === 'refused') refusal(base(e, at, 'refused'));
  };

  const onApproval = (e: Readonly<Record<string, unknown>>, event: string, at: string, t: number, inPeriod: boolean): void => {
    const id = str(e.approval_id);
    if (id === null) return;
    const row = approvalRow(id);
    if (inPeriod) approvalsInPeriod.add(id);
    switch (event) {
      case 'approval_requested':
      case 'approval_joined': {
        const requestId = str(e.request_id);
        const request = requestId === null ? undefined : held.get(requestId);
        if (requestId !== null) held.delete(requestId);
        if (event === 'approval_joined') {
          row.joined++;
          // A join still tells what was asked when the approval was requested before the files read.
          if (row.requested_at !== null || row.rule !== null) return;
        } else {
          row.requested_at = at;
          row.request_id = requestId;
        }
        row.identity = str(e.identity);
        row.owner = str(e.owner);
        row.rule = str(e.rule);
        row.method = str(e.method);
        row.host = str(e.host);
        row.path = str(e.path);
        row.reason = str(e.reason);
        row.required = num(e.required);
        row.policy_version = request?.policy_version ?? row.policy_version;
        return;
      }
      case 'approval_vote': {
        const verdict = e.verdict === 'deny' ? 'deny' : 'approve';
        row.votes.push({ approver: str(e.approver) ?? '?', verdict, at, reason: str(e.reason), via: 'vote', superseded: false });
        if (inPeriod) summary.votes++;
        return;
      }
      case 'approval_vote_refused': {
        const refused: VoteRefusal = { at, approval_id: id, approver: str(e.approver) ?? '?', reason: str(e.reason) };
        row.refused_votes.push(refused);
        if (inPeriod) {
          voteRefusals.push(refused);
          summary.refused_votes++;
        }
        return;
      }
      case 'approval_edited': {
        for (const v of row.votes) if (v.verdict === 'approve') v.superseded = true;
        const approver = str(e.approver) ?? '?';
        // Airlock says why when the edit did not count as the editor's approval.
        const counted = str(e.reason) === null && (num(e.approvals) ?? 0) > 0;
        row.edits.push({ approver, at, rule: str(e.rule), changes: describeChanges(e.changes), digest: str(e.digest), counted });
        if (counted) row.votes.push({ approver, verdict: 'approve', at, reason: null, via: 'edit', superseded: false });
        if (inPeriod) summary.edits++;
        return;
      }
      case 'approval_decided': {
        const state = str(e.state) ?? 'decided';
        if (state === 'approved' || state === 'denied') {
          row.decided_at = at;
          row.decided_by = str(e.approver);
          row.decision_reason = str(e.reason);
          const asked = row.requested_at === null ? NaN : Date.parse(row.requested_at);
          row.time_to_decide_ms = Number.isFinite(asked) ? t - asked : null;
        } else {
          row.ended_at = at;
          // An approval that expired unused keeps who approved it; a cancellation says who and why.
          if (state === 'cancelled') {
            row.decided_by = str(e.approver) ?? str(e.identity);
            row.decision_reason = str(e.reason);
          } else if (row.decision_reason === null) {
            row.decision_reason = str(e.reason);
          }
        }
        row.rule ??= str(e.rule);
        row.identity ??= str(e.identity);
        row.state = state;
        return;
      }
      case 'approval_executed': {
        row.state = 'executed';
        row.executed_at = at;
        row.executed_request_id = str(e.request_id);
        row.replica = str(e.replica);
        row.rule ??= str(e.rule);
        row.identity ??= str(e.identity);
        if (row.executed_request_id !== null) executing.set(row.executed_request_id, id);
        // The stored record names every approval: one whose own line is missing is still on record.
        const approvers = strings(e.approvers);
        const times = strings(e.approved_at);
        approvers.forEach((approver, i) => {
          if (row.votes.some((v) => v.approver === approver && v.verdict === 'approve' && !v.superseded)) return;
          row.votes.push({ approver, verdict: 'approve', at: times[i] ?? null, reason: null, via: 'executed_record', superseded: false });
        });
        return;
      }
      case 'approval_escalated':
        row.escalations.push({ at, approvers: strings(e.approvers), channel: str(e.channel) });
        if (inPeriod) summary.escalations++;
        return;
      case 'approval_forged':
        row.state = 'forged';
        row.forged_reason = str(e.reason);
        return;
    }
  };

  const onGrant = (e: Readonly<Record<string, unknown>>, event: string, at: string, inPeriod: boolean): void => {
    const id = str(e.grant_id);
    if (id === null) return;
    const row = grantRow(id);
    if (inPeriod) grantsInPeriod.add(id);
    row.approval_id ??= str(e.approval_id);
    row.identity ??= str(e.identity);
    row.rule ??= str(e.rule);
    if (event === 'grant_created') {
      row.created_at = at;
      row.created_by = str(e.approver);
      row.method = str(e.method);
      row.host = str(e.host);
      row.port = num(e.port);
      row.pins = strings(e.pins);
      row.uses = num(e.uses);
      row.uses_left ??= row.uses;
      row.expires_at = str(e.expires_at);
      if (row.approval_id !== null && !approvalRow(row.approval_id).grants.includes(id)) approvalRow(row.approval_id).grants.push(id);
      if (inPeriod) summary.grants.created++;
    } else if (event === 'grant_used') {
      row.used++;
      row.last_used_at = at;
      row.uses_left = num(e.uses_left);
      row.expires_at ??= str(e.expires_at);
      if (inPeriod) summary.grants.used++;
    } else {
      row.revoked_at = at;
      row.revoked_by = str(e.approver);
      row.uses_left = num(e.uses_left);
      if (inPeriod) summary.grants.revoked++;
    }
  };

  return {
    unreadable() {
      summary.unreadable_lines++;
    },

    add(e) {
      const at = str(e.time);
      const event = str(e.event);
      if (at === null || event === null) {
        summary.unreadable_lines++;
        return;
      }
      const t = Date.parse(at);
      if (!Number.isFinite(t)) {
        summary.unreadable_lines++;
        return;
      }
      const inPeriod = within(t);
      if (inPeriod) {
        summary.events++;
        first ??= at;
        last = at;
      }
      switch (event) {
        case 'request':
        case 'tunnel':
          decision(e, at, t, inPeriod);
          return;
        case 'request_answered': {
          const requestId = str(e.request_id);
          if (requestId !== null) held.delete(requestId);
          const approvalId = requestId === null ? undefined : executing.get(requestId);
          if (approvalId !== undefined) {
            approvalRow(approvalId).forwarded_answer = { status: num(e.status), error: str(e.error), reason: str(e.reason) };
          }
          if (!inPeriod) return;
          summary.answered++;
          refusal(base(e, at, 'answered'));
          return;
        }
        case 'tunnel_closed':
          if (inPeriod && e.decision === 'deny') refusal(base(e, at, 'tunnel'));
          return;
        case 'destination_refused':
          if (inPeriod) refusal(base(e, at, 'destination'));
          return;
        case 'approval_limited': {
          const requestId = str(e.request_id);
          if (requestId !== null) held.delete(requestId);
          if (inPeriod) summary.limited++;
          return;
        }
        case 'policy_loaded': {
          const version = str(e.policy_version);
          if (version === null) return;
          if (t < since) inForceAtStart = version;
          const row = policyRow(version);
          row.loaded_at.push(at);
          row.files = strings(e.files);
          row.rule_count = num(e.rule_count);
          if (inPeriod) summary.policy_loads++;
          return;
        }
        case 'policy_rejected':
          if (!inPeriod) return;
          summary.policy_rejections++;
          rejections.push({ at, in_force: str(e.policy_version), reason: str(e.reason), errors: strings(e.errors) });
          return;
        case 'chain_restarted':
          if (inPeriod) summary.chain_restarts++;
          return;
        case 'chain_signed':
          if (inPeriod) summary.chain_signatures++;
          return;
        case 'grant_created':
        case 'grant_used':
        case 'grant_revoked': {
          const requestId = str(e.request_id);
          if (requestId !== null) held.delete(requestId);
          onGrant(e, event, at, inPeriod);
          return;
        }
        case 'approval_forged':
          if (inPeriod) {
            summary.forged++;
            forged.push({ at, request_id: str(e.request_id), approval_id: str(e.approval_id), grant_id: str(e.grant_id), identity: str(e.identity), rule: str(e.rule), reason: str(e.reason) });
          }
          onApproval(e, event, at, t, inPeriod);
          return;
        default:
          if (event.startsWith('approval_')) onApproval(e, event, at, t, inPeriod);
      }
    },

    finish() {
      summary.identities = identities.size;
      const listed = [...approvals.values()].filter((r) => approvalsInPeriod.has(r.approval_id));
      // Requested first first; those requested before the files read lead.
      listed.sort((a, b) => (a.requested_at ?? '').localeCompare(b.requested_at ?? ''));
      const a = summary.approvals;
      a.total = listed.length;
      for (const r of listed) {
        // Approved counts every approval approvers gave, whatever came after (executed, expired unused, forged).
        if (r.state === 'denied') a.denied++;
        else if (r.decided_at !== null) a.approved++;
        else if (r.state === 'expired') a.expired++;
        else if (r.state === 'cancelled') a.cancelled++;
        else if (r.state === 'pending') a.pending++;
        if (r.state === 'executed') a.executed++;
        if (r.state === 'forged') a.forged++;
      }

      const spans = listed.filter((r) => r.time_to_decide_ms !== null && r.decided_at !== null && within(Date.parse(r.decided_at)));
      const sorted = spans.map((r) => r.time_to_decide_ms!).sort((x, y) => x - y);
      const histogram = BINS.map((b) => ({ label: b.label, min_ms: b.min, max_ms: b.max, approved: 0, denied: 0 }));
      for (const r of spans) {
        const ms = r.time_to_decide_ms!;
        const bin = histogram.find((b) => ms >= b.min_ms && (b.max_ms === null || ms < b.max_ms)) ?? histogram[0]!;
        if (r.state === 'denied') bin.denied++;
        else bin.approved++;
      }

      const policyRows = [...policies.values()].filter((p) => p.version === inForceAtStart || p.decisions > 0 || p.loaded_at.some((at) => within(Date.parse(at))));
      for (const p of policyRows) p.in_force_at_start = p.version === inForceAtStart;
      // In force before the files (or the period) began first, then in the order loaded.
      const firstLoad = (p: PolicyRow): string => (p.in_force_at_start ? '' : (p.loaded_at.find((at) => within(Date.parse(at))) ?? p.loaded_at[0] ?? ''));
      policyRows.sort((x, y) => firstLoad(x).localeCompare(firstLoad(y)));

      return {
        period: {
          since: Number.isFinite(since) ? new Date(since).toISOString() : null,
          until: Number.isFinite(until) ? new Date(until).toISOString() : null,
          first_event: first,
          last_event: last,
        },
        summary,
        decisions: [...decisions.values()].sort(
          (x, y) => (x.mode === y.mode ? 0 : x.mode === 'enforce' ? -1 : 1) || y.total - x.total || (x.identity ?? '').localeCompare(y.identity ?? '') || (x.rule ?? '').localeCompare(y.rule ?? ''),
        ),
        approvals: listed,
        refusals,
        refusals_not_listed: refusalsNotListed,
        vote_refusals: voteRefusals,
        forged,
        grants: [...grants.values()].filter((g) => grantsInPeriod.has(g.grant_id)),
        policies: policyRows,
        policy_rejections: rejections,
        decisions_over_time: overTime(hourly),
        time_to_decide: {
          count: sorted.length,
          median_ms: quantile(sorted, 0.5),
          p90_ms: quantile(sorted, 0.9),
          max_ms: sorted.at(-1) ?? null,
          histogram,
        },
      };
    },
  };
}

/** Hourly counts as contiguous buckets (empty ones too): hours up to 3 days, days up to 120, weeks beyond. */
function overTime(hourly: ReadonlyMap<number, ActionCounts>): Report['decisions_over_time'] {
  if (hourly.size === 0) return { bucket: 'hour', buckets: [] };
  let lo = Infinity;
  let hi = -Infinity;
  for (const hour of hourly.keys()) {
    lo = Math.min(lo, hour);
    hi = Math.max(hi, hour);
  }
  const size = hi - lo < 3 * DAY ? 'hour' : hi - lo < 120 * DAY ? 'day' : 'week';
  const step = size === 'hour' ? HOUR : size === 'day' ? DAY : WEEK;
  const merged = new Map<number, ActionCounts>();
  for (const [hour, counts] of hourly) {
    const start = bucketStart(hour, size);
    const m = merged.get(start) ?? zero();
    for (const a of ACTIONS) m[a] += counts[a];
    merged.set(start, m);
  }
  const buckets: TimeBucket[] = [];
  for (let t = bucketStart(lo, size); t <= hi; t += step) buckets.push({ start: new Date(t).toISOString(), ...(merged.get(t) ?? zero()) });
  return { bucket: size, buckets };
}
