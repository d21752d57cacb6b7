/**
 * Approvals: a request that needs approval is stored with everything needed to forward it later,
 * from any replica, and moves through
 *
 *   pending ──► approved ──► executed
 *      │           ├──────► expired     (an approval not spent in time)
 *      │           └──────► cancelled   (the policy in force denies it before it runs)
 *      ├──────► denied
 *      ├──────► expired      (nobody decided before `expiresAt`)
 *      └──────► cancelled    (withdrawn by the agent, or denied by the policy in force)
 *
 * Every transition is a compare-and-set in the store, so concurrent approvers, duplicate clicks and
 * several replicas agree on one outcome, and an approved request is claimed for forwarding once. A
 * claim comes before the forwarding: a replica that dies between the two leaves the record `executed`
 * with no `forwarded` outcome, so an approval is used at most once, never twice (docs/approvals.md).
 */

import type { EditSpec } from './edit.js';
import type { Grant, GrantState } from './grants.js';
import type { History, Impact } from './impact.js';
import type { ProbeResult } from './probes.js';
import type { Finding } from '../inspect/finding.js';
import type { CanonicalRequest } from '../policy/types.js';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled' | 'executed';

/** `decidedBy` of an approval cancelled because the policy in force denies its request (no identity or approver can be named so). */
export const BY_POLICY = '(policy in force)';

/** How long a finished record stays readable (the API, the CLI, a retry's answer) unless a store is told otherwise. */
export const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;

/** The canonical request as it will be forwarded once approved. */
export type StoredRequest = Pick<CanonicalRequest, 'method' | 'scheme' | 'host' | 'port' | 'path' | 'encodedPath' | 'query' | 'classification'> & {
  /** Flat [name, value, …] list exactly as it will be sent upstream (hop-by-hop and credentials removed). */
  headers: string[];
  /** The buffered body, base64. */
  body: string;
  /** What the policy's detectors found in it (absent: none, or none ran). */
  findings?: Finding[];
};

export interface ApprovalVote {
  approver: string;
  at: number;
  /** MAC of the vote under the state key (state-seal.ts): proof that Airlock accepted it. */
  seal?: string;
}

/** What became of an executed approval's request: the status its agent was answered with. */
export interface ForwardOutcome {
  /** The upstream's status, or Airlock's own (502, 504) when the upstream failed. */
  status: number;
  at: number;
}

export interface ApprovalRecord {
  id: string;
  state: ApprovalState;
  /** sha256 hex of the canonical request (method, URL, forwarded headers but volatile ones, body). */
  digest: string;
  identity: string | null;
  owner: string | null;
  rule: string;
  ruleDescription: string | null;
  /** The agent's stated intent (`X-Airlock-Reason`), or null. */
  reason: string | null;
  /** Who may decide, resolved from the policy when the request was held: approver names (API), Slack and Teams entries. */
  eligible: Eligible;
  required: number;
  /** Slack channel the request is posted to (the rule's), or null for the default. */
  channel: string | null;
  /** Teams conversation the card is posted to (the rule's), or null for the default. */
  teamsConversation: string | null;
  request: StoredRequest;
  createdAt: number;
  /** A pending request nobody decided by then is expired; an approval not spent by then lapses. */
  expiresAt: number;
  approvals: ApprovalVote[];
  /** Set once decided (approved, denied, expired, cancelled). */
  decidedAt: number | null;
  /** Who decided: the approver whose vote approved it, who denied (with their reason), or who cancelled. */
  decidedBy: string | null;
  decisionReason: string | null;
  /** Replica that holds the client connection, if any (the one to wake). */
  holder: string | null;
  executedAt: number | null;
  executedBy: string | null;
  /** The Slack message that asks for this approval, once posted (any replica can update it). */
  slack: SlackMessageRef | null;
  /** The Teams card that asks for this approval, once posted. */
  teams: TeamsMessageRef | null;
  /** MAC of the immutable part under the state key (state-seal.ts), or null when nothing sealed it. */
  seal: string | null;
  /** Set after an executed approval's request was forwarded; null while executed means it may never have been. */
  forwarded: ForwardOutcome | null;
  /** An approver's edit: from then on the approval is for the edited request, decided by its approvers. */
  edit: ApprovalEdit | null;
  /** Facts for the approver, taken when the request was held (impact.ts); null on records from before. */
  impact: Impact | null;
  /** Who else is asked when nobody has decided by `at` (the rule's `approval.escalate`), or null. */
  escalation: Escalation | null;
  /** When it was escalated (the further group asked and allowed to decide), or null. */
  escalatedAt: number | null;
  /** What the rule's impact probes found (probes.ts), once they ran; null before, or without probes. */
  probes: ProbeResult[] | null;
  /** What its rule lets an approver grant with the approval (grants.ts), or null for nothing. */
  grantCaps: { maxDurationMs: number; maxUses: number } | null;
}

export interface Escalation {
  at: number;
  /** The approver groups asked, by name (for people). */
  groups: string[];
  eligible: Eligible;
  channel: string | null;
  teamsConversation: string | null;
}

/**
 * The held request as an approver changed it. It was evaluated again under the policy: `rule`,
 * `required` and `eligible` are what decide it now, and votes count for `digest` (they restart).
 */
export interface ApprovalEdit {
  request: StoredRequest;
  digest: string;
  /** What the approver asked for (JSON Patch of the body, query and header changes). */
  changes: EditSpec;
  by: string;
  at: number;
  rule: string;
  required: number;
  eligible: Eligible;
  /** MAC under the state key (state-seal.ts). */
  seal: string;
}

/**
 * The record as it decides now: after an edit, the edited request, its digest, rule, approvers and
 * required count in place of the original's (which stay in `r` for the join and the seal).
 */
export function asDecided(r: ApprovalRecord): ApprovalRecord {
  const e = r.edit;
  const d = e === null ? r : { ...r, request: e.request, digest: e.digest, rule: e.rule, required: e.required, eligible: e.eligible };
  // Once escalated, the further group may decide as well.
  if (r.escalatedAt === null || r.escalation === null) return d;
  const more = r.escalation.eligible;
  return { ...d, eligible: mergeEligible(d.eligible, more) };
}

/**
 * Who may decide, resolved from the policy's approver groups: API approvers (the inbox matches them
 * by email), Slack entries, and — absent when none are named — Teams entries (Entra object ids or
 * principal names, lower-case) and identity-provider groups.
 */
export interface Eligible {
  api: string[];
  slack: string[];
  teams?: string[];
  idp?: string[];
}

/** An Eligible with the optional lists present only when non-empty (how records are stored and sealed). */
export function eligible(api: readonly string[], slack: readonly string[], teams: readonly string[], idp: readonly string[]): Eligible {
  const unique = (l: readonly string[]): string[] => [...new Set(l)];
  return { api: unique(api), slack: unique(slack), ...(teams.length > 0 ? { teams: unique(teams) } : {}), ...(idp.length > 0 ? { idp: unique(idp) } : {}) };
}

export function mergeEligible(a: Eligible, b: Eligible): Eligible {
  return eligible([...a.api, ...b.api], [...a.slack, ...b.slack], [...(a.teams ?? []), ...(b.teams ?? [])], [...(a.idp ?? []), ...(b.idp ?? [])]);
}

export interface SlackMessageRef {
  channel: string;
  ts: string;
}

/** A posted Teams activity: where it is (its conversation, through which Bot Framework service) and its id. */
export interface TeamsMessageRef {
  serviceUrl: string;
  conversationId: string;
  activityId: string;
}

/** Where each channel posted an approval or a grant (recorded so any replica can update it). */
export interface MessageRefs {
  slack: SlackMessageRef;
  teams: TeamsMessageRef;
}
export type ChannelName = keyof MessageRefs;

/** The reference's own fields only: what a store keeps of it. */
export function copyRef<C extends ChannelName>(channel: C, ref: MessageRefs[C]): MessageRefs[C] {
  if (channel === 'slack') {
    const r = ref as SlackMessageRef;
    return { channel: r.channel, ts: r.ts } as MessageRefs[C];
  }
  const r = ref as TeamsMessageRef;
  return { serviceUrl: r.serviceUrl, conversationId: r.conversationId, activityId: r.activityId } as MessageRefs[C];
}

/** One approver's vote as the store records it (`seal` for an approval: see ApprovalVote). */
export interface Vote {
  approver: string;
  verdict: 'approve' | 'deny';
  reason?: string | null;
  seal?: string;
}

export type DecideResult =
  /** The vote counted; `record` is the state after it (approved when enough approvals arrived). */
  | { ok: true; record: ApprovalRecord }
  /** Nothing changed: the record is already decided, the approver already voted, or it doesn't exist. */
  | { ok: false; reason: 'not_found' | 'not_pending' | 'already_voted'; record: ApprovalRecord | null };

export type ClaimResult =
  /** This caller won the right to forward the request: the record is now `executed`. */
  | { ok: true; record: ApprovalRecord }
  | { ok: false; reason: 'not_found' | 'not_approved' | 'lapsed'; record: ApprovalRecord | null };

export interface StateChange {
  id: string;
  state: ApprovalState;
  holder: string | null;
  /** Set when people should be told (a channel message posted or updated); absent for quiet changes. */
  notice?: Notice;
}

/** What to tell approvers about a change, and its number among the record's changes (told once: claimNotice). */
export interface Notice {
  what: 'requested' | 'changed' | 'escalated';
  version: number;
}

/**
 * Where approvals live. Two implementations (memory, Redis) pass the same contract tests
 * (test/unit/approval-store-contract.ts). Every method is atomic with respect to every other caller,
 * in this process or on another replica. `now` is passed in (ms since the epoch) so expiry is testable.
 */
export interface ApprovalStore {
  /**
   * Store a new pending request, unless one answers for the same identity and digest — pending,
   * approved and not yet spent, or denied and not past its `expiresAt` (a denial stands for identical
   * retries) — then nothing is created and that one is returned.
   */
  createOrJoin(record: ApprovalRecord, now: number): Promise<{ created: boolean; record: ApprovalRecord }>;
  /** The record (with `pending` past `expiresAt` reported, and stored, as `expired`), or null. */
  get(id: string, now: number): Promise<ApprovalRecord | null>;
  /**
   * Those of `ids` that are no longer pending (decided, expired by `now`, or gone): a cheap check of
   * many ids at once, reading no more than each record's state. Nothing is changed or announced.
   */
  settled(ids: readonly string[], now: number): Promise<string[]>;
  /** The record answering for identity + digest (as in createOrJoin), if any. */
  findActive(identity: string | null, digest: string, now: number): Promise<ApprovalRecord | null>;
  /**
   * How many requests of `identity` (null: anonymous callers) are pending: what caps how many one
   * agent can put in front of approvers at once. With `cap`, a store may answer any number below
   * `cap` when the exact count is below it (only the comparison with the cap is then exact).
   */
  countPending(identity: string | null, now: number, cap?: number): Promise<number>;
  /**
   * Expire every unfinished record past its `expiresAt` (pending: nobody decided; approved: not spent)
   * and return their ids: what no held request waits for still gets expired, and recorded.
   */
  expireDue(now: number): Promise<string[]>;
  /**
   * Escalate every pending record whose escalation time has come and that nobody escalated yet; returns
   * the records this caller escalated (each is escalated by exactly one caller, on any replica).
   */
  escalateDue(now: number): Promise<ApprovalRecord[]>;
  /** True for exactly one caller per record and version, on any replica: the one that tells the channels. */
  claimNotice(id: string, version: number): Promise<boolean>;
  /** True for exactly one caller per record, on any replica: the one that writes its expiry to the audit trail. */
  claimExpiryRecord(id: string): Promise<boolean>;
  /** Records, newest first; `state` filters. Finished records are kept for `retentionMs` after they finish. */
  list(filter: { state?: ApprovalState; limit?: number }, now: number): Promise<ApprovalRecord[]>;
  /**
   * One approver's vote. `approve` adds the approver (once) and moves to `approved` when `required`
   * distinct approvals are in; `deny` moves to `denied` at once (any deny is final).
   * Eligibility (who may vote) is the caller's business; the store guarantees atomicity.
   */
  decide(id: string, vote: Vote, now: number): Promise<DecideResult>;
  /**
   * Replace the request a pending approval decides with `edit`: votes restart with `vote` (the
   * editor's approval of the edited version, when they may give one), and it is approved when that
   * alone meets `edit.required`.
   */
  edit(id: string, edit: ApprovalEdit, vote: (Vote & { verdict: 'approve' }) | null, now: number): Promise<DecideResult>;
  /** Remember how an approval of `identity` under `rule` ended (approved, denied, expired), for `history`. */
  noteOutcome(identity: string | null, rule: string, outcome: keyof History, id: string, at: number): Promise<void>;
  /** How approvals of `identity` under `rule` ended in the 30 days before `now`. */
  history(identity: string | null, rule: string, now: number): Promise<History>;
  /** Store a new grant (grants.ts) with all its uses left. */
  createGrant(grant: Grant): Promise<void>;
  /** Grants of `identity` under `rule` that can still be used at `now` (not expired, revoked or used up). */
  grantsFor(identity: string | null, rule: string, now: number): Promise<GrantState[]>;
  /** Take one use of a grant, atomically across replicas; null when it has none left, expired or was revoked. */
  useGrant(id: string, now: number): Promise<GrantState | null>;
  /** Revoke a grant (it is used no more); null when there is none that can still be used. */
  revokeGrant(id: string, by: string, now: number): Promise<GrantState | null>;
  /** Record where a channel announced the grant. */
  setGrantMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void>;
  /** Every grant that can still be used at `now`, newest first. */
  listGrants(now: number): Promise<GrantState[]>;
  /** pending or approved (not yet executed) → cancelled (by `by`, with a reason). */
  cancel(id: string, by: string, reason: string | null, now: number): Promise<DecideResult>;
  /** approved → executed, for exactly one caller; fails if the approval lapsed (`expiresAt` passed). */
  claim(id: string, replica: string, now: number): Promise<ClaimResult>;
  /** Record which replica holds the client connection, so decisions wake it. */
  setHolder(id: string, holder: string | null): Promise<void>;
  /** Record what the impact probes found (not announced: it changes no state). */
  setProbes(id: string, results: ProbeResult[]): Promise<void>;
  /** Record what the forwarded request was answered with (not announced: it changes no state). */
  setForwarded(id: string, outcome: ForwardOutcome): Promise<void>;
  /** Record where a channel posted the approval (not announced: it changes no state). */
  setMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void>;
  /** Called on every state change made by anyone (this process or another replica). Returns an unsubscribe function. */
  subscribe(listener: (change: StateChange) => void): () => void;
  /**
   * Called when the store is back after a disconnect during which changes may have gone unannounced
   * (Redis pub/sub is at-most-once): listeners re-read what they wait for. Returns an unsubscribe function.
   */
  onReconnect(listener: () => void): () => void;
  /** Whether the store can serve requests now; false means requests needing approval fail closed (503). */
  ready(): boolean;
  close(): Promise<void>;
}
