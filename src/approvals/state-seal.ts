/**
 * Seals on approval state. Whoever can write to the store (Redis) could otherwise approve a request
 * by setting a record's state, or change what was approved. So every record is sealed when it is
 * created (HMAC-SHA256 over what identifies the request and who may decide it) and every approving
 * vote is sealed by the replica that accepted it, under a key the replicas hold and the store does not.
 * A request is forwarded only when its record's seal holds and enough distinct approvers' votes carry
 * valid seals: a forged or altered record is refused, counted and audited.
 *
 * Several keys may be configured for rotation: the first seals, any of them verifies.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Grant } from './grants.js';
import { asDecided, type ApprovalEdit, type ApprovalRecord, type Eligible } from './types.js';

/** Shortest accepted key, in bytes: 256 bits, as `openssl rand -base64 32` gives. */
export const MIN_KEY_BYTES = 32;

export interface StateKeySource {
  /** AIRLOCK_STATE_KEY: one or more keys separated by commas or white space. */
  value?: string;
  /** A file with one key per line (a mounted Secret). */
  file?: string;
}

export class StateSealer {
  private constructor(private readonly keys: readonly Buffer[]) {}

  /** A key for this process only: enough when the store is in this process's memory. */
  static ephemeral(): StateSealer {
    return new StateSealer([randomBytes(MIN_KEY_BYTES)]);
  }

  /** From configured keys; throws a message saying what is wrong (never the key itself). */
  static fromKeys(texts: readonly string[], where: string): StateSealer {
    const keys = texts.map((t) => t.trim()).filter((t) => t !== '');
    if (keys.length === 0) throw new Error(`${where} holds no key`);
    keys.forEach((k, i) => {
      if (Buffer.byteLength(k) < MIN_KEY_BYTES) throw new Error(`${where}: key ${i + 1} is ${Buffer.byteLength(k)} bytes; use at least ${MIN_KEY_BYTES} (openssl rand -base64 32)`);
    });
    return new StateSealer(keys.map((k) => Buffer.from(k)));
  }

  /** A key for another purpose (the inbox's cookies), derived from the state key: every replica derives the same. */
  derive(label: string): Buffer {
    return createHmac('sha256', this.keys[0]!).update(`airlock-derived-key-v1\n${label}`).digest();
  }

  sealRecord(r: ApprovalRecord): string {
    return this.mac(recordPayload(r), this.keys[0]!);
  }

  /** A vote is for the request the approval decides now: the edited one after an edit. */
  sealVote(r: ApprovalRecord, approver: string, at: number): string {
    return this.mac(votePayload(r, approver, at), this.keys[0]!);
  }

  sealEdit(r: ApprovalRecord, edit: Omit<ApprovalEdit, 'seal'>): string {
    return this.mac(editPayload(r, edit), this.keys[0]!);
  }

  sealGrant(g: Omit<Grant, 'seal'>): string {
    return this.mac(grantPayload(g), this.keys[0]!);
  }

  /** Whether a grant read from the store is one Airlock gave, unaltered. */
  grantValid(g: Grant): boolean {
    return this.verify(grantPayload(g), g.seal);
  }

  /**
   * Why this approved or executed record must not be forwarded for the request with `digest` from
   * `identity`, or null when its seals hold: a missing or wrong record seal, a record for another
   * request, or fewer validly sealed approvals from distinct approvers (not the requester or its
   * owner) than it requires.
   */
  forgery(r: ApprovalRecord, expected: { identity: string | null; digest: string }): string | null {
    if (r.seal === null) return 'the approval record carries no seal';
    if (!this.verify(recordPayload(r), r.seal)) return 'the approval record was altered (its seal does not match)';
    if (r.identity !== expected.identity || r.digest !== expected.digest) return 'the approval record is for a different request';
    if (r.edit !== null && !this.verify(editPayload(r, r.edit), r.edit.seal)) return 'the approver\'s edit was altered (its seal does not match)';
    const { required } = asDecided(r);
    const approvers = new Set<string>();
    for (const v of r.approvals) {
      if (v.approver === r.identity || v.approver === r.owner) continue;
      if (v.seal !== undefined && this.verify(votePayload(r, v.approver, v.at), v.seal)) approvers.add(v.approver);
    }
    if (approvers.size < required) return `only ${approvers.size} of the ${required} approvals it needs carry a valid seal`;
    return null;
  }

  private mac(payload: string, key: Buffer): string {
    return createHmac('sha256', key).update(payload).digest('base64url');
  }

  private verify(payload: string, seal: string): boolean {
    const given = Buffer.from(seal, 'base64url');
    return this.keys.some((key) => {
      const want = createHmac('sha256', key).update(payload).digest();
      return given.length === want.length && timingSafeEqual(given, want);
    });
  }
}

/** Everything that identifies the request and who decides it; the stored request by its hash. */
function recordPayload(r: ApprovalRecord): string {
  const request = createHash('sha256').update(JSON.stringify(r.request)).digest('base64url');
  const escalation = r.escalation === null ? null : [r.escalation.at, r.escalation.eligible.api, r.escalation.eligible.slack, ...optional(r.escalation.eligible)];
  return JSON.stringify(['airlock-record-v1', r.id, r.digest, r.identity, r.owner, r.rule, r.required, r.eligible.api, r.eligible.slack, r.createdAt, r.expiresAt, request, escalation, ...idpOnly(r.eligible), ...teamsOnly(r.eligible)]);
}

/**
 * Lists added after the first sealed records are sealed only when named, so records sealed before
 * they existed still verify; tagged so one cannot pass for the other.
 */
function idpOnly(e: Eligible): unknown[] {
  return e.idp?.length ? [e.idp] : [];
}

function teamsOnly(e: Eligible): unknown[] {
  return e.teams?.length ? [{ teams: e.teams }] : [];
}

function optional(e: Eligible): unknown[] {
  return [...(e.idp?.length ? [{ idp: e.idp }] : []), ...teamsOnly(e)];
}

function votePayload(r: ApprovalRecord, approver: string, at: number): string {
  return JSON.stringify(['airlock-vote-v1', r.id, asDecided(r).digest, approver, at]);
}

function grantPayload(g: Omit<Grant, 'seal'>): string {
  return JSON.stringify(['airlock-grant-v1', g.id, g.approvalId, g.identity, g.rule, g.method, g.scheme, g.host, g.port, g.pins, g.by, g.createdAt, g.expiresAt, g.uses]);
}

function editPayload(r: ApprovalRecord, e: Omit<ApprovalEdit, 'seal'>): string {
  const request = createHash('sha256').update(JSON.stringify(e.request)).digest('base64url');
  return JSON.stringify(['airlock-edit-v1', r.id, r.digest, e.digest, e.by, e.at, e.rule, e.required, e.eligible.api, e.eligible.slack, request, ...idpOnly(e.eligible), ...teamsOnly(e.eligible)]);
}

/**
 * The sealer for this process: from AIRLOCK_STATE_KEY or a key file; with neither, a key of its own
 * when approvals stay in memory, and an error when they are shared (replicas must share the key).
 */
export async function loadStateSealer(source: StateKeySource, shared: boolean): Promise<StateSealer> {
  if (source.file !== undefined) {
    let text: string;
    try {
      text = await readFile(source.file, 'utf8');
    } catch (err) {
      throw new Error(`state key file ${source.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return StateSealer.fromKeys(text.split(/\r?\n/), `state key file ${source.file}`);
  }
  if (source.value !== undefined && source.value.trim() !== '') return StateSealer.fromKeys(source.value.split(/[\s,]+/), 'AIRLOCK_STATE_KEY');
  if (shared) {
    throw new Error(
      'approvals shared through Redis need a state key that every replica holds and Redis does not: set AIRLOCK_STATE_KEY or --state-key-file (generate one with: openssl rand -base64 32)',
    );
  }
  return StateSealer.ephemeral();
}
