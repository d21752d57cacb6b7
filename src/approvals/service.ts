import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../audit/sink.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ApproverGroup, CompiledPolicy, Decision, Identity, ProbeSpec } from '../policy/types.js';
import { applyEdit, type EditSpec } from './edit.js';
import { grantCovers, parseGrant, pinsOf, type Grant, type GrantAsk, type GrantState } from './grants.js';
import { parseDuration } from '../policy/duration.js';
import { impactOf, type History } from './impact.js';
import type { ProbeRunner } from './probes.js';
import type { StateSealer } from './state-seal.js';
import type { Tracing } from '../tracing/tracing.js';
import { asDecided, BY_POLICY, type ApprovalEdit, type ApprovalRecord, type Notice, type ApprovalStore, type ClaimResult, type ChannelName, type DecideResult, eligible, type MessageRefs, type StateChange, type StoredRequest } from './types.js';

export interface ApprovalServiceDeps {
  store: ApprovalStore;
  /** This process's id among replicas: the store wakes the replica holding a request by it. */
  replica: string;
  audit: AuditSink;
  metrics: Metrics;
  log: Logger;
  /** Seals records and votes, and checks them before anything is forwarded. */
  sealer: StateSealer;
  /** Sends a rule's impact probes (probes.ts); without it, probes are not run. */
  probe?: ProbeRunner;
  /** Whether this process expires and escalates overdue approvals and records their expiry (default true). */
  sweeps?: boolean;
  now?: () => number;
  /** How often held requests re-read their approval, in case an announcement was lost (default 5 s). */
  recheckMs?: number;
  /** Votes become `airlock.vote` spans when tracing is on. */
  tracing?: Tracing | null;
}

/** Why `approver` may not vote because of who asked (the requesting identity or its owner), or null. */
export function selfApproval(record: ApprovalRecord, approver: string): string | null {
  // Names are compared as people write them: Bob@Example.com is bob@example.com.
  const same = (a: string | null): boolean => a !== null && a.toLowerCase() === approver.toLowerCase();
  if (same(record.identity)) return 'an agent may not approve its own request';
  if (same(record.owner)) return `${approver} owns the requesting agent and may not approve its requests`;
  return null;
}

/**
 * Why an approver may not vote on a record, or null when they may: named as an API approver of the
 * rule, or (in the inbox) a member of one of its identity-provider groups; and not the requester or
 * its owner.
 */
export function refusalToVote(record: ApprovalRecord, approver: string, idpGroups: readonly string[] = []): string | null {
  const byGroup = (record.eligible.idp ?? []).some((g) => idpGroups.includes(g));
  if (!record.eligible.api.includes(approver) && !byGroup) return `${approver} is not an approver of rule ${record.rule}`;
  return selfApproval(record, approver);
}

/** The approver name the policy uses for this email (approver groups name API approvers by email). */
export function approverNameFor(policy: CompiledPolicy, email: string): string {
  for (const g of policy.approverGroups.values()) for (const a of g.api) if (a.toLowerCase() === email) return a;
  return email;
}

/**
 * The grant an approver asks for with their approval of `record` (untrusted input, as every channel
 * reads it): within its rule's caps, and only with the approval that completes the request (an
 * approval with an edit restarts the count, so it is not held to that here). `incomplete` tells
 * that second refusal from a malformed ask.
 */
export function grantAsk(policy: CompiledPolicy, record: ApprovalRecord, raw: unknown, withEdit = false): GrantAsk | { error: string; incomplete: boolean } {
  const d = asDecided(record);
  const ask = parseGrant(raw, policy.rules.find((r) => r.id === d.rule)?.approval?.grants, parseDuration);
  if (typeof ask === 'string') return { error: ask, incomplete: false };
  if (!withEdit && record.state === 'pending' && d.approvals.length + 1 < d.required) {
    return { error: `a grant comes with the approval that completes it: this one is ${d.approvals.length + 1} of ${d.required}; approve without a grant`, incomplete: true };
  }
  return ask;
}

/** Everyone in the approver groups of `settings`. */
export function eligibleFor(policy: CompiledPolicy, approvers: readonly string[]): ApprovalRecord['eligible'] {
  const groups = approvers.map((g) => policy.approverGroups.get(g));
  const all = (pick: (g: ApproverGroup) => readonly string[]): string[] => groups.flatMap((g) => (g ? pick(g) : []));
  return eligible(all((g) => g.api), all((g) => g.slack), all((g) => g.teams), all((g) => g.idpGroups));
}

/**
 * Who may decide `r` now (the edited request's approvers after an edit): those named when it was held
 * (or edited) AND still named by its rule in the policy in force, so removing someone from an approver
 * group (or the rule) takes effect for pending requests too.
 */
export function stillEligible(policy: CompiledPolicy, r: ApprovalRecord): ApprovalRecord['eligible'] {
  const d = asDecided(r);
  const settings = policy.rules.find((rule) => rule.id === d.rule)?.approval;
  const now = eligibleFor(policy, [...(settings?.approvers ?? []), ...(settings?.escalation?.approvers ?? [])]);
  const kept = (then: readonly string[] | undefined, still: readonly string[] | undefined): string[] => (then ?? []).filter((a) => still?.includes(a) === true);
  return eligible(kept(d.eligible.api, now.api), kept(d.eligible.slack, now.slack), kept(d.eligible.teams, now.teams), kept(d.eligible.idp, now.idp));
}

/** The record as it decides now, with who may still decide it: what every vote is checked against. */
export function asVotedOn(policy: CompiledPolicy, r: ApprovalRecord): ApprovalRecord {
  return { ...asDecided(r), eligible: stillEligible(policy, r) };
}

/** Where approvers are told about approvals (Slack), and told again whenever one changes. */
export interface ApprovalChannel {
  /** `slack`, `teams`: the label of its metrics. */
  readonly name: string;
  /** A new approval needs deciding (called on the replica that created it). */
  requested(record: ApprovalRecord): Promise<void>;
  /** A vote, a decision, an expiry, a withdrawal or the execution (called on the replica that made it). */
  changed(record: ApprovalRecord): Promise<void>;
  /** Nobody decided in time: the escalation's group is asked (called on the replica that escalated it). */
  escalated(record: ApprovalRecord): Promise<void>;
  /** A grant was given, used or revoked (called on the replica that did it). */
  grantChanged(grant: GrantState): Promise<void>;
  /** Whether this channel has posted `record` (or has nowhere to post it): a pending one it has not is posted again. */
  posted(record: ApprovalRecord): boolean;
}

/**
 * What a held request wakes up with: the record (null if it vanished), the announcement of an
 * approval, or this replica shutting down (the approval is still there for the agent's retry).
 */
/** How long a pending approval may go without a channel message before a replica posts it anyway. */
const REPOST_AFTER_MS = 15_000;

export type Woken = ApprovalRecord | null | 'approved' | 'shutdown';

/** A claim, or its refusal because the record's seals do not hold (the store was written by someone else). */
export type ClaimOutcome = ClaimResult | { ok: false; reason: 'forged'; message: string; record: ApprovalRecord };

export type VoteOutcome =
  | { ok: true; record: ApprovalRecord }
  | { ok: false; status: 400 | 403 | 404 | 409; message: string; record: ApprovalRecord | null };

/** The edited request decided under the policy in force (proxy/policy-in-force.ts), or why it cannot be read. */
export type Redecide = (request: StoredRequest, identity: string | null) => Promise<
  { decision: Decision; classification: string | null; findings: StoredRequest['findings'] } | { refused: string }
>;

/**
 * The approval lifecycle on top of a store: creates or joins approvals for held requests, wakes the
 * requests this replica holds when anyone (on any replica) decides, checks who may vote, and writes
 * every step to the audit trail.
 */
export class ApprovalService {
  private readonly waiters = new Map<string, Set<(woken: Woken) => void>>();
  private readonly now: () => number;
  private readonly unsubscribe: (() => void)[];
  private readonly poll: NodeJS.Timeout;
  private rechecking = false;
  /** Shutting down: held requests are answered at once (their approvals stay in the store). */
  private closed = false;
  private readonly channels: ApprovalChannel[] = [];
  /** Approvals this replica spent, until they expire: a store rolled back to `approved` is not obeyed twice here. */
  private readonly spent = new Map<string, number>();

  constructor(private readonly deps: ApprovalServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.unsubscribe = [
      deps.store.subscribe((change) => this.onChange(change)),
      // Announcements sent while the store was unreachable are lost (pub/sub is at-most-once).
      deps.store.onReconnect(() => this.recheck()),
    ];
    // Backstop for a lost announcement that no reconnect reported.
    this.poll = setInterval(() => this.recheck(), deps.recheckMs ?? 5000);
    this.poll.unref();
  }

  /** Every announced change, from any replica (the inbox's live updates). Returns an unsubscribe function. */
  subscribe(listener: (change: StateChange) => void): () => void {
    return this.deps.store.subscribe(listener);
  }

  /** Channels never hold up or change an approval: a failure is logged, and the API still decides. */
  private notifyGrant(grant: GrantState): void {
    for (const ch of this.channels) {
      ch.grantChanged(grant).catch((err: unknown) => this.channelFailed(ch, err, { grant_id: grant.id }, 'grant'));
    }
  }

  /**
   * Channels hear of every change from the store's announcements, whichever replica (or sidecar)
   * made it, and each change is told once across replicas (claimed by its version): one message per
   * approval, updated in place.
   */
  private tell(id: string, notice: Notice): void {
    this.deps.store
      .claimNotice(id, notice.version)
      .then(async (mine) => {
        if (!mine) return;
        const r = await this.get(id);
        if (r === null) return;
        if (notice.what === 'requested') this.notify('requested', r);
        else {
          if (notice.what === 'escalated') this.notify('escalated', r);
          this.notify('changed', r);
        }
      })
      .catch((err: unknown) => this.deps.log.warn({ err, approval_id: id }, 'could not tell the approval channels of a change'));
  }

  private notify(kind: 'requested' | 'changed' | 'escalated', record: ApprovalRecord, channels: readonly ApprovalChannel[] = this.channels): void {
    for (const ch of channels) {
      ch[kind](record).catch((err: unknown) => this.channelFailed(ch, err, { approval_id: record.id }, kind));
    }
  }

  private channelFailed(ch: ApprovalChannel, err: unknown, ids: Record<string, string>, kind: string): void {
    this.deps.metrics.channelErrors.inc({ channel: ch.name });
    this.deps.log.warn({ err, channel: ch.name, ...ids }, `approval channel failed (${kind})`);
  }

  /** Channels are counted from the start: a first failure is an increase an alert can see. */
  addChannel(channel: ApprovalChannel): void {
    this.deps.metrics.channelErrors.inc({ channel: channel.name }, 0);
    this.channels.push(channel);
  }

  get replica(): string {
    return this.deps.replica;
  }

  available(): boolean {
    return this.deps.store.ready();
  }

  /**
   * The approval for this request: the unfinished one for the same identity and digest (an identical
   * request joins it, without a new notification), or a new pending one.
   */
  async findOrCreate(args: {
    requestId: string;
    request: StoredRequest;
    digest: string;
    identity: Identity | null;
    decision: Decision;
    policy: CompiledPolicy;
    reason: string | null;
  }): Promise<{ record: ApprovalRecord; created: boolean }> {
    const { decision, policy } = args;
    const settings = decision.approval;
    if (!settings || decision.rule === null) throw new Error('findOrCreate needs an approve decision');
    const now = this.now();
    const rule = policy.rules.find((r) => r.id === decision.rule);
    const identityId = args.identity?.id ?? null;
    const history = await this.deps.store.history(identityId, decision.rule, now);
    const candidate: ApprovalRecord = {
      id: randomUUID(),
      state: 'pending',
      digest: args.digest,
      identity: args.identity?.id ?? null,
      owner: args.identity?.owner ?? null,
      rule: decision.rule,
      ruleDescription: rule?.description ?? null,
      reason: args.reason,
      eligible: eligibleFor(policy, settings.approvers),
      required: settings.required,
      channel: settings.channel ?? null,
      teamsConversation: settings.teams ?? null,
      request: args.request,
      createdAt: now,
      expiresAt: now + settings.expiresMs,
      approvals: [],
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      // The creating replica answers for the record until a held request elsewhere takes it over:
      // it is the one that writes the expiry to its audit trail.
      holder: this.deps.replica,
      executedAt: null,
      executedBy: null,
      slack: null,
      teams: null,
      seal: null,
      forwarded: null,
      edit: null,
      impact: impactOf(args.request, policy, history),
      escalation: settings.escalation
        ? {
            at: now + settings.escalation.afterMs,
            groups: [...settings.escalation.approvers],
            eligible: eligibleFor(policy, settings.escalation.approvers),
            channel: settings.escalation.channel ?? settings.channel ?? null,
            teamsConversation: settings.escalation.teams ?? settings.teams ?? null,
          }
        : null,
      escalatedAt: null,
      probes: null,
      grantCaps: settings.grants ?? null,
    };
    candidate.seal = this.deps.sealer.sealRecord(candidate);
    const result = await this.deps.store.createOrJoin(candidate, now);
    const r = result.record;
    this.deps.audit.write({
      event: result.created ? 'approval_requested' : 'approval_joined',
      request_id: args.requestId,
      approval_id: r.id,
      state: r.state,
      identity: r.identity,
      owner: r.owner,
      method: r.request.method,
      host: r.request.host,
      path: r.request.path,
      rule: r.rule,
      digest: r.digest,
      reason: args.reason ?? undefined,
      required: r.required,
    });
    if (result.created) {
      this.deps.metrics.approvalsRequested.inc({ rule: r.rule });
      if (settings.probes.length > 0) void this.runProbes(r, settings.probes);
    }
    return result;
  }

  setMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    return this.deps.store.setMessage(id, channel, ref);
  }

  /** Whether a request identical to this one (identity and digest) already has an approval to join. */
  async hasActive(identity: string | null, digest: string): Promise<boolean> {
    return (await this.deps.store.findActive(identity, digest, this.now())) !== null;
  }

  /** See ApprovalStore.countPending: exact at or above `cap`. */
  countPending(identity: string | null, cap?: number): Promise<number> {
    return this.deps.store.countPending(identity, this.now(), cap);
  }

  get(id: string): Promise<ApprovalRecord | null> {
    return this.deps.store.get(id, this.now());
  }

  list(filter: { state?: ApprovalRecord['state']; limit?: number }): Promise<ApprovalRecord[]> {
    return this.deps.store.list(filter, this.now());
  }

  /**
   * Wait until the approval leaves `pending`, at most `ms`. Resolves with the record as it then is
   * (still pending after a timeout), or null if it vanished; or with `'approved'` when the store
   * announced an approval: the caller then claims it (the claim checks it again) without reading the
   * whole record first, one store round trip less between an approver's click and the upstream.
   * `gone` (the client went away) stops waiting.
   */
  async wait(id: string, ms: number, gone: Promise<void>): Promise<Woken> {
    if (this.closed) return 'shutdown';
    await this.deps.store.setHolder(id, this.deps.replica);
    if (this.closed) return 'shutdown';
    this.deps.metrics.approvalsHeld.inc();
    let timer: NodeJS.Timeout | undefined;
    let wake: ((w: Woken) => void) | undefined;
    try {
      // Registered before the first read, so a decision between the read and the wait is not missed.
      const woken = new Promise<Woken | 'timeout' | 'gone'>((resolve) => {
        wake = resolve;
        this.addWaiter(id, wake);
        timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
        void gone.then(() => resolve('gone'));
      });
      const deadline = this.now() + ms;
      const current = await this.get(id);
      if (current === null || current.state !== 'pending') return current;
      const outcome = await woken;
      // Timers run on a monotonic clock that may be a millisecond ahead of the wall clock: read the
      // record as of the deadline the timer stood for, so a wait that ends at expiry sees it expired.
      if (outcome === 'timeout') return this.deps.store.get(id, Math.max(this.now(), deadline));
      if (outcome === 'gone') return this.get(id);
      return outcome;
    } finally {
      if (timer) clearTimeout(timer);
      if (wake) this.removeWaiter(id, wake);
      this.deps.metrics.approvalsHeld.dec();
    }
  }

  /**
   * Spend an approval for the request with `expected` identity and digest: exactly one caller, on any
   * replica, gets `ok` and forwards the request, and only when the record's seals hold. Who approved
   * is written to the audit trail here, from the stored record, and committed before the request
   * leaves: a vote whose own audit line was lost (its replica failed after the store took it) is on
   * record all the same.
   */
  async claim(id: string, requestId: string, expected: { identity: string | null; digest: string }): Promise<ClaimOutcome> {
    const now = this.now();
    const result = await this.deps.store.claim(id, this.deps.replica, now);
    if (!result.ok) return result;
    const r = result.record;
    const forgery = this.spent.has(id) ? 'this approval was already used here (the store was rolled back)' : this.deps.sealer.forgery(r, expected);
    if (forgery !== null) {
      this.deps.audit.write({ event: 'approval_forged', request_id: requestId, approval_id: id, state: r.state, rule: r.rule, identity: expected.identity, digest: expected.digest, reason: forgery, approvers: r.approvals.map((v) => v.approver) });
      this.deps.audit.commit();
      this.deps.metrics.approvalsForged.inc();
      this.deps.log.error({ approval_id: id, request_id: requestId, reason: forgery }, 'refused to forward: approval state not written by Airlock');
      return { ok: false, reason: 'forged', message: forgery, record: r };
    }
    this.remember(id, r.expiresAt, now);
    this.deps.audit.write({
      event: 'approval_executed',
      request_id: requestId,
      approval_id: id,
      state: 'executed',
      replica: this.deps.replica,
      rule: r.rule,
      identity: r.identity,
      digest: r.digest,
      approvers: r.approvals.map((v) => v.approver),
      approved_at: r.approvals.map((v) => new Date(v.at).toISOString()),
      decided_by: r.decidedBy ?? undefined,
    });
    this.deps.audit.commit();
    this.deps.metrics.approvalOutcomes.inc({ state: 'executed' });
    return result;
  }

  /** The rule's impact probes, all at once; their results are stored, audited and shown. Never decide anything. */
  private async runProbes(r: ApprovalRecord, specs: readonly ProbeSpec[]): Promise<void> {
    const probe = this.deps.probe;
    if (probe === undefined) return;
    try {
      const results = await Promise.all(specs.map((spec) => probe(spec, r.request)));
      await this.deps.store.setProbes(r.id, results);
      this.deps.audit.write({
        event: 'approval_probed',
        approval_id: r.id,
        rule: r.rule,
        identity: r.identity,
        probes: results.map((p) => ({ name: p.name, state: p.state, ...(p.status !== undefined ? { status: p.status } : {}), ...(p.error !== undefined ? { error: p.error } : {}), ms: p.ms })),
      });
    } catch (err) {
      this.deps.log.warn({ err, approval_id: r.id }, 'could not record the impact probes');
    }
  }

  /** Kept for the history approvers see on this identity's next request under the rule; never blocks a decision. */
  private noteOutcome(r: ApprovalRecord, outcome: keyof History): void {
    this.deps.store.noteOutcome(r.identity, r.rule, outcome, r.id, this.now()).catch((err: unknown) =>
      this.deps.log.warn({ err, approval_id: r.id }, 'could not record the outcome for the approval history'),
    );
  }

  /** What the forwarded request of an executed approval was answered with (shown to approvers). */
  forwarded(id: string, status: number): void {
    this.deps.store
      .setForwarded(id, { status, at: this.now() })
      .catch((err: unknown) => this.deps.log.warn({ err, approval_id: id }, 'could not record what a forwarded approval was answered with'));
  }

  private remember(id: string, until: number, now: number): void {
    // Oldest first: stop at the first still in force (amortised O(1) per claim).
    for (const [spentId, expires] of this.spent) {
      if (expires >= now) break;
      this.spent.delete(spentId);
    }
    this.spent.set(id, until);
  }

  /** The requesting agent withdraws its pending request (`by` is its identity, or "anonymous"). */
  async withdraw(id: string, by: string, requestId: string): Promise<DecideResult> {
    const result = await this.deps.store.cancel(id, by, 'withdrawn by the requesting agent', this.now());
    if (result.ok) {
      this.deps.audit.write({ event: 'approval_decided', request_id: requestId, approval_id: id, state: 'cancelled', identity: by, reason: 'withdrawn by the requesting agent' });
      this.deps.metrics.approvalOutcomes.inc({ state: 'cancelled' });
    }
    return result;
  }

  /**
   * The policy in force now denies a request held or approved under an earlier one: the approval is
   * cancelled (never forwarded), with the rule that denies it as the reason.
   */
  async revoke(id: string, reason: string, requestId: string): Promise<DecideResult> {
    const result = await this.deps.store.cancel(id, BY_POLICY, reason, this.now());
    if (result.ok) {
      this.deps.audit.write({ event: 'approval_decided', request_id: requestId, approval_id: id, state: 'cancelled', approver: BY_POLICY, rule: result.record.rule, identity: result.record.identity, reason });
      this.deps.metrics.approvalOutcomes.inc({ state: 'cancelled' });
    }
    return result;
  }

  /**
   * One approver's vote, after `mayVote` (by default: an approvals-API approver of the rule, and not
   * the requester or its owner) says they may cast it.
   */
  async vote(
    id: string,
    approver: string,
    verdict: 'approve' | 'deny',
    reason: string | null,
    mayVote: (record: ApprovalRecord, approver: string) => string | null = (r, a) => refusalToVote(asDecided(r), a),
  ): Promise<VoteOutcome> {
    const cast = (): Promise<VoteOutcome> => this.castVote(id, approver, verdict, reason, mayVote);
    return this.deps.tracing ? this.deps.tracing.vote({ approvalId: id, approver, verdict, edited: false }, cast) : cast();
  }

  private async castVote(
    id: string,
    approver: string,
    verdict: 'approve' | 'deny',
    reason: string | null,
    mayVote: (record: ApprovalRecord, approver: string) => string | null,
  ): Promise<VoteOutcome> {
    const now = this.now();
    const record = await this.deps.store.get(id, now);
    if (record === null) return { ok: false, status: 404, message: `no approval ${id}`, record: null };
    const refusal = mayVote(record, approver);
    if (refusal !== null) {
      this.deps.audit.write({ event: 'approval_vote_refused', approval_id: id, approver, state: record.state, reason: refusal });
      return { ok: false, status: 403, message: refusal, record };
    }
    const seal = verdict === 'approve' ? this.deps.sealer.sealVote(record, approver, now) : undefined;
    const result: DecideResult = await this.deps.store.decide(id, { approver, verdict, reason, ...(seal === undefined ? {} : { seal }) }, now);
    if (!result.ok) {
      const message =
        result.reason === 'already_voted'
          ? `${approver} has already approved this request`
          : result.reason === 'not_found'
            ? `no approval ${id}`
            : `this request is already ${result.record?.state ?? 'decided'}`;
      return { ok: false, status: result.reason === 'not_found' ? 404 : 409, message, record: result.record };
    }
    const r = result.record;
    this.deps.audit.write({
      event: 'approval_vote',
      approval_id: id,
      approver,
      verdict,
      state: r.state,
      reason: reason ?? undefined,
      approvals: r.approvals.length,
      required: r.required,
    });
    if (r.state !== 'pending') {
      this.noteOutcome(r, r.state === 'approved' ? 'approved' : 'denied');
      this.deps.audit.write({ event: 'approval_decided', approval_id: id, approver, state: r.state, rule: r.rule, identity: r.identity, reason: r.decisionReason ?? undefined });
      this.deps.metrics.approvalOutcomes.inc({ state: r.state });
      this.deps.metrics.approvalDecisionSeconds.observe({ state: r.state }, (now - r.createdAt) / 1000);
    }
    return { ok: true, record: r };
  }

  /**
   * An approver edits a pending request and approves the edited version. The edit is applied
   * (edit.ts), the result decided again under the policy in force (`redecide`): it must not be denied,
   * and if it now falls to another rule, that rule's approvers decide it. Votes restart; the editor's
   * own approval counts when they may decide the edited request (`mayVote` on it).
   */
  async approveWithEdit(
    id: string,
    approver: string,
    spec: EditSpec,
    policy: CompiledPolicy,
    redecide: Redecide,
    mayVote: (record: ApprovalRecord, approver: string) => string | null,
  ): Promise<VoteOutcome> {
    const cast = (): Promise<VoteOutcome> => this.editAndApprove(id, approver, spec, policy, redecide, mayVote);
    return this.deps.tracing ? this.deps.tracing.vote({ approvalId: id, approver, verdict: 'approve', edited: true }, cast) : cast();
  }

  private async editAndApprove(
    id: string,
    approver: string,
    spec: EditSpec,
    policy: CompiledPolicy,
    redecide: Redecide,
    mayVote: (record: ApprovalRecord, approver: string) => string | null,
  ): Promise<VoteOutcome> {
    const now = this.now();
    const record = await this.deps.store.get(id, now);
    if (record === null) return { ok: false, status: 404, message: `no approval ${id}`, record: null };
    const refusal = mayVote(asVotedOn(policy, record), approver);
    if (refusal !== null) {
      this.deps.audit.write({ event: 'approval_vote_refused', approval_id: id, approver, state: record.state, reason: refusal });
      return { ok: false, status: 403, message: refusal, record };
    }
    if (record.state !== 'pending') return { ok: false, status: 409, message: `this request is already ${record.state}`, record };
    const current = asDecided(record);
    const editable = policy.rules.find((r) => r.id === current.rule)?.approval?.editableHeaders ?? [];
    const applied = applyEdit(current.request, spec, editable);
    if (!applied.ok) return { ok: false, status: 400, message: applied.message, record };
    const outcome = await redecide(applied.request, record.identity);
    if ('refused' in outcome) return { ok: false, status: 400, message: `the edited request cannot be read: ${outcome.refused}`, record };
    const d = outcome.decision;
    if (d.action === 'deny') {
      const by = d.rule === null ? 'the policy default' : `rule ${d.rule}`;
      return { ok: false, status: 403, message: `the edited request would be denied by ${by}: ${d.reason}`, record };
    }
    // Another approve rule decides the edited request: its approvers, its count. An edit that needs no
    // approval at all stays with the rule it was held under.
    const moved = d.action === 'approve' && d.rule !== null && d.approval !== undefined;
    const fields: Omit<ApprovalEdit, 'seal'> = {
      request: { ...applied.request, classification: outcome.classification, ...(outcome.findings?.length ? { findings: outcome.findings } : {}) },
      digest: applied.digest,
      changes: spec,
      by: approver,
      at: now,
      rule: moved ? d.rule! : current.rule,
      required: moved ? d.approval!.required : current.required,
      eligible: moved ? eligibleFor(policy, d.approval!.approvers) : current.eligible,
    };
    if (fields.request.findings === undefined) delete fields.request.findings;
    const edit: ApprovalEdit = { ...fields, seal: this.deps.sealer.sealEdit(record, fields) };
    const edited: ApprovalRecord = { ...record, edit, approvals: [] };
    const counts = mayVote(asVotedOn(policy, edited), approver) === null;
    const vote = counts ? { approver, verdict: 'approve' as const, seal: this.deps.sealer.sealVote(edited, approver, now) } : null;
    const result = await this.deps.store.edit(id, edit, vote, now);
    if (!result.ok) {
      const message = result.reason === 'not_found' ? `no approval ${id}` : `this request is already ${result.record?.state ?? 'decided'}`;
      return { ok: false, status: result.reason === 'not_found' ? 404 : 409, message, record: result.record };
    }
    const r = result.record;
    this.deps.audit.write({
      event: 'approval_edited',
      approval_id: id,
      approver,
      state: r.state,
      rule: edit.rule,
      original_digest: record.digest,
      previous_digest: current.digest,
      digest: edit.digest,
      changes: {
        ...(spec.body ? { body: spec.body.map((op) => ({ op: op.op, path: op.path, ...('from' in op ? { from: op.from } : {}) })) } : {}),
        ...(spec.query ? { query: Object.keys(spec.query) } : {}),
        ...(spec.headers ? { headers: Object.keys(spec.headers) } : {}),
      },
      approvals: r.approvals.length,
      required: edit.required,
      reason: counts ? undefined : `${approver} edited it but is not an approver of rule ${edit.rule}: its approvers decide`,
    });
    if (r.state !== 'pending') {
      this.noteOutcome(r, 'approved');
      this.deps.audit.write({ event: 'approval_decided', approval_id: id, approver, state: r.state, rule: edit.rule, identity: r.identity });
      this.deps.metrics.approvalOutcomes.inc({ state: r.state });
      this.deps.metrics.approvalDecisionSeconds.observe({ state: r.state }, (now - r.createdAt) / 1000);
    }
    return { ok: true, record: r };
  }

  /**
   * Give the grant an approver asked for with the approval that approved `r` (asDecided: the edited
   * request when there was an edit). Returns it, or why it cannot be given (a pinned field missing).
   */
  async grant(r: ApprovalRecord, approver: string, ask: GrantAsk): Promise<{ ok: true; grant: GrantState } | { ok: false; message: string }> {
    const d = asDecided(r);
    const pins = pinsOf(d.request, ask.pins);
    if (typeof pins === 'string') return { ok: false, message: pins };
    const now = this.now();
    const fields: Omit<Grant, 'seal'> = {
      id: randomUUID(),
      approvalId: r.id,
      identity: r.identity,
      rule: d.rule,
      method: d.request.method,
      scheme: d.request.scheme,
      host: d.request.host,
      port: d.request.port,
      pins,
      by: approver,
      createdAt: now,
      expiresAt: now + ask.durationMs,
      uses: ask.uses,
    };
    const grant: Grant = { ...fields, seal: this.deps.sealer.sealGrant(fields) };
    await this.deps.store.createGrant(grant);
    const state: GrantState = { ...grant, usesLeft: grant.uses, revokedAt: null, revokedBy: null, slack: null, teams: null };
    this.notifyGrant(state);
    this.deps.audit.write({
      event: 'grant_created',
      grant_id: grant.id,
      approval_id: r.id,
      approver,
      identity: r.identity,
      rule: grant.rule,
      method: grant.method,
      host: grant.host,
      port: grant.port,
      pins: pins.map((p) => p.field),
      uses: grant.uses,
      expires_at: new Date(grant.expiresAt).toISOString(),
    });
    return { ok: true, grant: state };
  }

  /**
   * A request that needs approval under `rule`, covered by a grant of its identity: one use is taken
   * (atomically, on any replica) and the grant returned; the request then goes without asking. Null
   * when no grant covers it. Grants whose seal fails are ignored, counted and audited.
   */
  async useGrant(identity: string | null, rule: string, request: StoredRequest, requestId: string): Promise<GrantState | null> {
    const now = this.now();
    for (const g of await this.deps.store.grantsFor(identity, rule, now)) {
      if (!this.deps.sealer.grantValid(g)) {
        this.deps.audit.write({ event: 'approval_forged', request_id: requestId, grant_id: g.id, rule, identity, reason: 'the grant was altered or not given by Airlock (its seal does not match)' });
        this.deps.metrics.approvalsForged.inc();
        continue;
      }
      if (!grantCovers(g, rule, request)) continue;
      const used = await this.deps.store.useGrant(g.id, now);
      if (used === null) continue;
      this.deps.audit.write({ event: 'grant_used', request_id: requestId, grant_id: g.id, approval_id: g.approvalId, rule, identity, uses_left: used.usesLeft, expires_at: new Date(g.expiresAt).toISOString() });
      // On record before the request leaves.
      this.deps.audit.commit();
      this.notifyGrant(used);
      return used;
    }
    return null;
  }

  async revokeGrant(id: string, by: string): Promise<GrantState | null> {
    const g = await this.deps.store.revokeGrant(id, by, this.now());
    if (g !== null) {
      this.deps.audit.write({ event: 'grant_revoked', grant_id: id, approval_id: g.approvalId, approver: by, rule: g.rule, identity: g.identity, uses_left: g.usesLeft });
      this.notifyGrant(g);
    }
    return g;
  }

  setGrantMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    return this.deps.store.setGrantMessage(id, channel, ref);
  }

  listGrants(): Promise<GrantState[]> {
    return this.deps.store.listGrants(this.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    for (const off of this.unsubscribe) off();
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const w of set) w('shutdown');
  }

  /**
   * Wake the requests held here whose approval was decided without this replica hearing of it. Only
   * states are read (store.settled), and one round at a time.
   */
  private recheck(): void {
    if (this.deps.sweeps !== false) this.sweep();
    if (this.rechecking || this.waiters.size === 0) return;
    this.rechecking = true;
    this.deps.store.settled([...this.waiters.keys()], this.now()).then(
      (ids) => {
        this.rechecking = false;
        for (const id of ids) this.wakeIfDecided(id);
      },
      (err: unknown) => {
        this.rechecking = false;
        this.deps.log.warn({ err }, 'could not re-check held approvals; retrying at the next interval');
      },
    );
  }

  /**
   * Announcements are at most once: a request whose 'requested' announcement no replica acted on
   * (all were disconnected) has no message after a while. One replica posts it then (lease version 0,
   * which no announcement uses).
   */
  private repost(): void {
    const before = this.now() - REPOST_AFTER_MS;
    this.deps.store.list({ state: 'pending' }, this.now()).then(
      (pending) => {
        for (const r of pending) {
          const missing = this.channels.filter((ch) => !ch.posted(r));
          if (missing.length === 0 || r.createdAt > before) continue;
          void this.deps.store.claimNotice(r.id, 0).then(
            (mine) => mine && this.notify('requested', r, missing),
            (err: unknown) => this.deps.log.warn({ err, approval_id: r.id }, 'could not claim a missed approval message'),
          );
        }
      },
      (err: unknown) => this.deps.log.warn({ err }, 'could not look for approvals without a message'),
    );
  }

  /** Expire what is overdue even if no request waits for it here, and escalate what nobody decided in time. */
  private sweep(): void {
    if (this.channels.length > 0) this.repost();
    this.deps.store.expireDue(this.now()).then(
      (ids) => ids.forEach((id) => this.recordExpiry(id)),
      (err: unknown) => this.deps.log.warn({ err }, 'could not expire overdue approvals; retrying at the next interval'),
    );
    // Each escalation happens once, on one replica.
    this.deps.store.escalateDue(this.now()).then(
      (records) => records.forEach((r) => this.escalated(r)),
      (err: unknown) => this.deps.log.warn({ err }, 'could not escalate overdue approvals; retrying at the next interval'),
    );
  }

  private onChange(change: StateChange): void {
    if (change.notice !== undefined && this.channels.length > 0) this.tell(change.id, change.notice);
    // Whichever replica hears of it first records it (claimed in the store): the one that held the
    // request may be gone.
    if (change.state === 'expired' && this.deps.sweeps !== false) this.recordExpiry(change.id);
    if (change.state === 'pending' || !this.waiters.has(change.id)) return;
    if (change.state === 'approved') for (const w of this.waiters.get(change.id)!) w('approved');
    else this.wakeIfDecided(change.id);
  }

  private escalated(r: ApprovalRecord): void {
    this.deps.audit.write({
      event: 'approval_escalated',
      approval_id: r.id,
      state: r.state,
      rule: r.rule,
      identity: r.identity,
      approvers: r.escalation?.groups ?? [],
      channel: r.escalation?.channel ?? undefined,
      reason: `nobody decided within ${Math.round(((r.escalation?.at ?? r.createdAt) - r.createdAt) / 1000)} s`,
    });
  }

  /** Expiry happens in the store when a record is next read (or swept); one replica records it. */
  private recordExpiry(id: string): void {
    void this.deps.store.claimExpiryRecord(id).then(async (mine) => (mine ? this.get(id) : null)).then(
      (r) => {
        if (r === null) return;
        const wasApproved = r.approvals.length >= asDecided(r).required;
        if (!wasApproved) this.noteOutcome(r, 'expired');
        this.deps.audit.write({
          event: 'approval_decided',
          approval_id: id,
          state: 'expired',
          rule: r.rule,
          identity: r.identity,
          reason: wasApproved ? 'approved but not used before it expired' : 'nobody decided before it expired',
        });
        this.deps.metrics.approvalOutcomes.inc({ state: 'expired' });
      },
      (err: unknown) => this.deps.log.warn({ err, approval_id: id }, 'could not read an expired approval to record it'),
    );
  }

  private wakeIfDecided(id: string): void {
    void this.get(id).then(
      (record) => {
        if (record !== null && record.state === 'pending') return;
        for (const w of this.waiters.get(id) ?? []) w(record);
      },
      (err: unknown) => this.deps.log.warn({ err, approval_id: id }, 'could not re-read an approval a held request waits for'),
    );
  }

  private addWaiter(id: string, w: (woken: Woken) => void): void {
    let set = this.waiters.get(id);
    if (!set) this.waiters.set(id, (set = new Set()));
    set.add(w);
  }

  private removeWaiter(id: string, w: (woken: Woken) => void): void {
    const set = this.waiters.get(id);
    set?.delete(w);
    if (set?.size === 0) this.waiters.delete(id);
  }
}
