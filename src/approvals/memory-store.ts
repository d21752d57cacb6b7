/**
 * The embedded approval store: one process, no dependencies, for trying Airlock out and for tests of
 * the core. Same semantics as the Redis store (test/unit/approval-store-contract.ts): every method runs
 * to completion without awaiting, so each is atomic with respect to every other caller.
 */
import {
  DEFAULT_RETENTION_MS,
  type ApprovalRecord,
  type ApprovalState,
  type ApprovalStore,
  type ClaimResult,
  type DecideResult,
  type ForwardOutcome,
  type ChannelName,
  copyRef,
  type MessageRefs,
  type Notice,
  type StateChange,
  type Vote,
  type ApprovalEdit,
} from './types.js';
import type { Grant, GrantState } from './grants.js';
import type { ProbeResult } from './probes.js';
import { HISTORY_WINDOW_MS, type History } from './impact.js';


export interface MemoryStoreOptions {
  /** How long finished records are kept (ms). Default 24 h. */
  retentionMs?: number;
  /** How often old records are swept (ms). Default min(retentionMs, 60 s). */
  sweepIntervalMs?: number;
}

function joinKey(identity: string | null, digest: string): string {
  return JSON.stringify([identity, digest]);
}

function unfinished(state: ApprovalState): boolean {
  return state === 'pending' || state === 'approved';
}

/** Whether a record answers for its identity+digest: unfinished, or a denial not yet past expiresAt (it stands for identical retries). */
function answers(r: ApprovalRecord, now: number): boolean {
  return unfinished(r.state) || (r.state === 'denied' && now < r.expiresAt);
}

export class MemoryStore implements ApprovalStore {
  private readonly records = new Map<string, ApprovalRecord>();
  /** identity+digest → id of the unfinished record answering for it. */
  private readonly active = new Map<string, string>();
  private readonly listeners = new Set<(change: StateChange) => void>();
  private readonly retentionMs: number;
  private timer: NodeJS.Timeout | null;
  private closed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    this.retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    const every = opts.sweepIntervalMs ?? Math.max(1000, Math.min(this.retentionMs, 60_000));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
  }

  /** Forget records whose retention ran out by `now`: finished ones `retentionMs` after they finished. */
  sweep(now: number): number {
    let removed = 0;
    for (const [id, r] of this.records) {
      if (now < this.finishedAt(r) + this.retentionMs) continue;
      this.records.delete(id);
      this.versions.delete(id);
      this.notices.delete(id);
      this.release(r);
      removed++;
    }
    return removed;
  }

  /** When a record finished (or will, for an unfinished one: at `expiresAt`). */
  private finishedAt(r: ApprovalRecord): number {
    switch (r.state) {
      case 'executed':
        return r.executedAt ?? r.expiresAt;
      case 'denied':
      case 'cancelled':
        return r.decidedAt ?? r.expiresAt;
      default:
        return r.expiresAt;
    }
  }

  private release(r: ApprovalRecord): void {
    const key = joinKey(r.identity, r.digest);
    if (this.active.get(key) === r.id) this.active.delete(key);
  }

  /** Each record's count of changes people are told about (the Redis store keeps it in the record). */
  private readonly versions = new Map<string, number>();
  private readonly notices = new Map<string, Set<number>>();

  private announce(r: ApprovalRecord, what: Notice['what'] | 'quiet' = 'changed'): void {
    const change: StateChange = { id: r.id, state: r.state, holder: r.holder };
    if (what !== 'quiet') {
      const version = (this.versions.get(r.id) ?? 0) + 1;
      this.versions.set(r.id, version);
      change.notice = { what, version };
    }
    for (const l of [...this.listeners]) {
      try {
        l({ ...change });
      } catch {
        // A listener's failure is its own business; the store's state is already consistent.
      }
    }
  }

  /** The live record with lazy expiry applied (pending or approved-unspent past expiresAt → expired). */
  private load(id: string, now: number): ApprovalRecord | null {
    const r = this.records.get(id);
    if (r === undefined) return null;
    if (unfinished(r.state) && now >= r.expiresAt) {
      if (r.state === 'pending') r.decidedAt = r.expiresAt;
      r.state = 'expired';
      this.release(r);
      this.announce(r);
    }
    return r;
  }

  private finish(r: ApprovalRecord): void {
    this.release(r);
    this.announce(r);
  }

  async createOrJoin(record: ApprovalRecord, now: number): Promise<{ created: boolean; record: ApprovalRecord }> {
    this.assertOpen();
    // Ids are fresh per request: one that exists was made by an earlier attempt of this call.
    const mine = this.load(record.id, now);
    if (mine !== null) {
      if (mine.identity !== record.identity || mine.digest !== record.digest) throw new Error(`approval id ${record.id} already exists`);
      return { created: true, record: structuredClone(mine) };
    }
    const key = joinKey(record.identity, record.digest);
    const currentId = this.active.get(key);
    if (currentId !== undefined) {
      const current = this.load(currentId, now);
      if (current !== null && answers(current, now)) return { created: false, record: structuredClone(current) };
      this.active.delete(key);
    }
    const fresh: ApprovalRecord = {
      ...structuredClone(record),
      state: 'pending',
      approvals: [],
      decidedAt: null,
      decidedBy: null,
      decisionReason: null,
      executedAt: null,
      executedBy: null,
      forwarded: null,
      edit: null,
      impact: record.impact ?? null,
      escalation: record.escalation ?? null,
      escalatedAt: null,
      probes: null,
    };
    this.records.set(fresh.id, fresh);
    this.active.set(key, fresh.id);
    this.announce(fresh, 'requested');
    return { created: true, record: structuredClone(fresh) };
  }

  async get(id: string, now: number): Promise<ApprovalRecord | null> {
    this.assertOpen();
    const r = this.load(id, now);
    return r === null ? null : structuredClone(r);
  }

  async settled(ids: readonly string[], now: number): Promise<string[]> {
    this.assertOpen();
    return ids.filter((id) => {
      const r = this.records.get(id);
      return r === undefined || r.state !== 'pending' || now >= r.expiresAt;
    });
  }

  private readonly expiryRecorded = new Set<string>();

  async expireDue(now: number): Promise<string[]> {
    this.assertOpen();
    const out: string[] = [];
    for (const id of [...this.active.values()]) {
      const r = this.records.get(id);
      if (r === undefined || !unfinished(r.state) || now < r.expiresAt) continue;
      if (this.load(id, now)?.state === 'expired') out.push(id);
    }
    return out;
  }

  async escalateDue(now: number): Promise<ApprovalRecord[]> {
    this.assertOpen();
    const out: ApprovalRecord[] = [];
    for (const id of [...this.active.values()]) {
      const r = this.load(id, now);
      if (r === null || r.state !== 'pending' || r.escalation === null || r.escalatedAt !== null || now < r.escalation.at) continue;
      r.escalatedAt = now;
      this.announce(r, 'escalated');
      out.push(structuredClone(r));
    }
    return out;
  }

  async claimNotice(id: string, version: number): Promise<boolean> {
    this.assertOpen();
    if (!this.records.has(id)) return false;
    let told = this.notices.get(id);
    if (told === undefined) this.notices.set(id, (told = new Set()));
    if (told.has(version)) return false;
    told.add(version);
    return true;
  }

  async claimExpiryRecord(id: string): Promise<boolean> {
    this.assertOpen();
    if (this.expiryRecorded.has(id)) return false;
    this.expiryRecorded.add(id);
    return true;
  }

  async countPending(identity: string | null, now: number): Promise<number> {
    this.assertOpen();
    let n = 0;
    for (const id of this.active.values()) {
      const r = this.load(id, now);
      if (r !== null && r.state === 'pending' && r.identity === identity) n++;
    }
    return n;
  }

  async findActive(identity: string | null, digest: string, now: number): Promise<ApprovalRecord | null> {
    this.assertOpen();
    const key = joinKey(identity, digest);
    const id = this.active.get(key);
    if (id === undefined) return null;
    const r = this.load(id, now);
    if (r === null || !answers(r, now)) {
      this.active.delete(key);
      return null;
    }
    return structuredClone(r);
  }

  async list(filter: { state?: ApprovalState; limit?: number }, now: number): Promise<ApprovalRecord[]> {
    this.assertOpen();
    const limit = filter.limit ?? Infinity;
    const out: ApprovalRecord[] = [];
    if (limit <= 0) return out;
    // Newest first; among equal createdAt, the later insertion first.
    const all = [...this.records.keys()].reverse();
    const ordered = all
      .map((id, i) => ({ id, i, at: this.records.get(id)?.createdAt ?? 0 }))
      .sort((a, b) => b.at - a.at || a.i - b.i);
    for (const { id } of ordered) {
      const r = this.load(id, now);
      if (r === null || (filter.state !== undefined && r.state !== filter.state)) continue;
      out.push(structuredClone(r));
      if (out.length >= limit) break;
    }
    return out;
  }

  async decide(id: string, vote: Vote, now: number): Promise<DecideResult> {
    this.assertOpen();
    const r = this.load(id, now);
    if (r === null) return { ok: false, reason: 'not_found', record: null };
    if (r.state !== 'pending') return { ok: false, reason: 'not_pending', record: structuredClone(r) };
    if (vote.verdict === 'deny') {
      r.state = 'denied';
      r.decidedAt = now;
      r.decidedBy = vote.approver;
      r.decisionReason = vote.reason ?? null;
      // The join pointer stays: the denial answers identical retries until expiresAt.
      this.announce(r);
      return { ok: true, record: structuredClone(r) };
    }
    if (r.approvals.some((v) => v.approver === vote.approver)) {
      return { ok: false, reason: 'already_voted', record: structuredClone(r) };
    }
    r.approvals.push(vote.seal === undefined ? { approver: vote.approver, at: now } : { approver: vote.approver, at: now, seal: vote.seal });
    if (r.approvals.length >= (r.edit?.required ?? r.required)) {
      r.state = 'approved';
      r.decidedAt = now;
      // The approver whose vote made it approved.
      r.decidedBy = vote.approver;
    }
    this.announce(r);
    return { ok: true, record: structuredClone(r) };
  }

  async edit(id: string, edit: ApprovalEdit, vote: (Vote & { verdict: 'approve' }) | null, now: number): Promise<DecideResult> {
    this.assertOpen();
    const r = this.load(id, now);
    if (r === null) return { ok: false, reason: 'not_found', record: null };
    if (r.state !== 'pending') return { ok: false, reason: 'not_pending', record: structuredClone(r) };
    r.edit = structuredClone(edit);
    r.approvals = vote === null ? [] : [vote.seal === undefined ? { approver: vote.approver, at: now } : { approver: vote.approver, at: now, seal: vote.seal }];
    if (r.approvals.length >= edit.required) {
      r.state = 'approved';
      r.decidedAt = now;
      r.decidedBy = vote!.approver;
    }
    this.announce(r);
    return { ok: true, record: structuredClone(r) };
  }

  async cancel(id: string, by: string, reason: string | null, now: number): Promise<DecideResult> {
    this.assertOpen();
    const r = this.load(id, now);
    if (r === null) return { ok: false, reason: 'not_found', record: null };
    if (r.state !== 'pending' && r.state !== 'approved') return { ok: false, reason: 'not_pending', record: structuredClone(r) };
    r.state = 'cancelled';
    r.decidedAt = now;
    r.decidedBy = by;
    r.decisionReason = reason;
    this.finish(r);
    return { ok: true, record: structuredClone(r) };
  }

  async claim(id: string, replica: string, now: number): Promise<ClaimResult> {
    this.assertOpen();
    const r = this.load(id, now);
    if (r === null) return { ok: false, reason: 'not_found', record: null };
    if (r.state === 'expired') return { ok: false, reason: 'lapsed', record: structuredClone(r) };
    if (r.state !== 'approved') return { ok: false, reason: 'not_approved', record: structuredClone(r) };
    r.state = 'executed';
    r.executedAt = now;
    r.executedBy = replica;
    this.finish(r);
    return { ok: true, record: structuredClone(r) };
  }

  async setHolder(id: string, holder: string | null): Promise<void> {
    this.assertOpen();
    const r = this.records.get(id);
    if (r === undefined) return;
    r.holder = holder;
    this.announce(r, 'quiet');
  }

  private readonly outcomes = new Map<string, { outcome: keyof History; id: string; at: number }[]>();

  async noteOutcome(identity: string | null, rule: string, outcome: keyof History, id: string, at: number): Promise<void> {
    this.assertOpen();
    const key = JSON.stringify([identity, rule]);
    const list = (this.outcomes.get(key) ?? []).filter((o) => o.at > at - HISTORY_WINDOW_MS && o.id !== id);
    list.push({ outcome, id, at });
    this.outcomes.set(key, list);
  }

  async history(identity: string | null, rule: string, now: number): Promise<History> {
    this.assertOpen();
    const h: History = { approved: 0, denied: 0, expired: 0 };
    for (const o of this.outcomes.get(JSON.stringify([identity, rule])) ?? []) if (o.at > now - HISTORY_WINDOW_MS && o.at <= now) h[o.outcome]++;
    return h;
  }

  private readonly grants = new Map<string, GrantState>();

  private usable(g: GrantState | undefined, now: number): g is GrantState {
    return g !== undefined && g.revokedAt === null && now < g.expiresAt && g.usesLeft > 0;
  }

  async createGrant(grant: Grant): Promise<void> {
    this.assertOpen();
    this.grants.set(grant.id, { ...structuredClone(grant), usesLeft: grant.uses, revokedAt: null, revokedBy: null, slack: null, teams: null });
  }

  async setGrantMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    this.assertOpen();
    const g = this.grants.get(id);
    if (g !== undefined) (g[channel] as MessageRefs[C]) = copyRef(channel, ref);
  }

  async grantsFor(identity: string | null, rule: string, now: number): Promise<GrantState[]> {
    this.assertOpen();
    return [...this.grants.values()].filter((g) => g.identity === identity && g.rule === rule && this.usable(g, now)).map((g) => structuredClone(g));
  }

  async useGrant(id: string, now: number): Promise<GrantState | null> {
    this.assertOpen();
    const g = this.grants.get(id);
    if (!this.usable(g, now)) return null;
    g.usesLeft--;
    return structuredClone(g);
  }

  async revokeGrant(id: string, by: string, now: number): Promise<GrantState | null> {
    this.assertOpen();
    const g = this.grants.get(id);
    if (!this.usable(g, now)) return null;
    g.revokedAt = now;
    g.revokedBy = by;
    return structuredClone(g);
  }

  async listGrants(now: number): Promise<GrantState[]> {
    this.assertOpen();
    for (const [id, g] of this.grants) if (now >= g.expiresAt + this.retentionMs) this.grants.delete(id);
    return [...this.grants.values()].filter((g) => this.usable(g, now)).sort((a, b) => b.createdAt - a.createdAt).map((g) => structuredClone(g));
  }

  async setProbes(id: string, results: ProbeResult[]): Promise<void> {
    this.assertOpen();
    const r = this.records.get(id);
    if (r === undefined) return;
    r.probes = structuredClone(results);
    this.announce(r);
  }

  async setForwarded(id: string, outcome: ForwardOutcome): Promise<void> {
    this.assertOpen();
    const r = this.records.get(id);
    if (r === undefined) return;
    r.forwarded = { status: outcome.status, at: outcome.at };
    this.announce(r);
  }

  async setMessage<C extends ChannelName>(id: string, channel: C, ref: MessageRefs[C]): Promise<void> {
    this.assertOpen();
    const r = this.records.get(id);
    if (r !== undefined) (r[channel] as MessageRefs[C]) = copyRef(channel, ref);
  }

  subscribe(listener: (change: StateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The memory store never loses its changes feed; present so callers can treat both stores alike. */
  onReconnect(_listener: () => void): () => void {
    return () => {};
  }

  ready(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('approval store is closed');
  }
}
