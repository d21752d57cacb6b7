/**
 * The contract every ApprovalStore passes (memory: test/unit/approval-store-memory.test.ts, Redis:
 * test/integration/approval-store-redis.test.ts). Not a test file itself: call
 * `approvalStoreContract(name, makeStores)` from one.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Grant } from '../../src/approvals/grants.js';
import type { ApprovalEdit, ApprovalRecord, ApprovalStore, StateChange } from '../../src/approvals/types.js';

/** Two handles on the same data: two replicas sharing one Redis, or one memory store twice. */
export interface StorePair {
  a: ApprovalStore;
  b: ApprovalStore;
  close(): Promise<void>;
}

/** Bound on waiting for a change to arrive (pub/sub round trip); a failure, not a synchronisation. */
const EVENT_WAIT_MS = 3000;

export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A pending record created at `base` that expires a minute later. */
export function makeRecord(base: number, over: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id: `apr_${randomUUID()}`,
    state: 'pending',
    digest: digestOf(randomUUID()),
    identity: 'billing-bot',
    owner: 'alice@example.com',
    rule: 'confidential-export',
    ruleDescription: 'Exports of confidential data need two data owners',
    reason: 'monthly export',
    eligible: { api: ['bob@example.com', 'carol@example.com'], slack: ['U024BE7LH'] },
    required: 1,
    channel: '#ai-approvals',
    teamsConversation: null,
    request: {
      method: 'POST',
      scheme: 'https',
      host: 'eu.data.internal',
      port: 443,
      path: '/exports/2024 q1',
      encodedPath: '/exports/2024%20q1',
      query: '?format=csv',
      headers: ['content-type', 'application/json', 'x-data-classification', 'confidential'],
      body: Buffer.from('{"rows":"all","note":"ünïcödé / \\"quoted\\""}').toString('base64'),
      classification: 'confidential',
    },
    createdAt: base,
    expiresAt: base + 60_000,
    approvals: [],
    decidedAt: null,
    decidedBy: null,
    decisionReason: null,
    holder: 'replica-a',
    executedAt: null,
    executedBy: null,
    slack: null,
    teams: null,
    seal: null,
    forwarded: null,
    edit: null,
    impact: null,
    escalation: null,
    escalatedAt: null,
    probes: null,
    grantCaps: null,
    ...over,
  };
}

/** Resolves with the first change matching `match`; rejects after a bounded wait. Subscribe BEFORE acting. */
export function nextChange(
  store: ApprovalStore,
  match: (c: StateChange) => boolean,
  ms: number = EVENT_WAIT_MS,
): Promise<StateChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching approval change within ${ms} ms`));
    }, ms);
    const off = store.subscribe((c) => {
      if (!match(c)) return;
      clearTimeout(timer);
      off();
      resolve(c);
    });
  });
}

export function approvalStoreContract(name: string, makeStores: () => Promise<StorePair>): void {
  async function withStores(fn: (a: ApprovalStore, b: ApprovalStore) => Promise<void>): Promise<void> {
    const pair = await makeStores();
    try {
      await fn(pair.a, pair.b);
    } finally {
      await pair.close();
    }
  }

  async function approved(store: ApprovalStore, rec: ApprovalRecord, now: number): Promise<ApprovalRecord> {
    await store.createOrJoin(rec, now);
    const r = await store.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
    assert.ok(r.ok);
    assert.equal(r.record.state, 'approved');
    return r.record;
  }

  describe(`ApprovalStore contract: ${name}`, () => {
    describe('createOrJoin / get', () => {
      it('stores a new pending record and reads every field back', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          const res = await a.createOrJoin(rec, now);
          assert.equal(res.created, true);
          assert.deepEqual(res.record, rec);
          assert.deepEqual(await b.get(rec.id, now + 1), rec);
          assert.deepEqual(await a.get(rec.id, now + 1), rec);
        }));

      it('normalizes what it stores to a fresh pending record', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now, { state: 'approved', approvals: [{ approver: 'x', at: 1 }], decidedAt: 5, decidedBy: 'x' });
          const res = await a.createOrJoin(rec, now);
          assert.equal(res.record.state, 'pending');
          assert.deepEqual(res.record.approvals, []);
          assert.equal(res.record.decidedAt, null);
          assert.equal((await a.get(rec.id, now))?.state, 'pending');
        }));

      it('keeps empty lists and null fields intact', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now, {
            identity: null,
            owner: null,
            ruleDescription: null,
            reason: null,
            channel: null,
            holder: null,
            eligible: { api: [], slack: [] },
          });
          rec.request.headers = [];
          rec.request.body = '';
          rec.request.classification = null;
          await a.createOrJoin(rec, now);
          assert.deepEqual(await a.get(rec.id, now), rec);
        }));

      it('returns null for an unknown id', () =>
        withStores(async (a) => {
          assert.equal(await a.get('apr_nope', Date.now()), null);
        }));

      it('returns copies: changing a returned record changes nothing stored', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          const { record } = await a.createOrJoin(rec, now);
          record.state = 'executed';
          record.request.headers.push('x', 'y');
          rec.eligible.api.push('mallory');
          const got = await a.get(rec.id, now);
          assert.equal(got?.state, 'pending');
          assert.equal(got?.request.headers.length, 4);
          assert.deepEqual(got?.eligible.api, ['bob@example.com', 'carol@example.com']);
        }));

      it('refuses a second record with an id that is already used', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          await assert.rejects(a.createOrJoin(makeRecord(now, { id: rec.id }), now), /already exists/);
        }));

      it('a retried create of the same record (its first reply lost) reports it created and leaves it intact', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const again = await b.createOrJoin(rec, now + 1);
          assert.equal(again.created, true, 'the caller learns its record exists, and announces it');
          assert.equal(again.record.id, rec.id);
          assert.deepEqual(await a.get(rec.id, now + 2), rec);
          assert.equal((await b.list({}, now + 2)).length, 1);
        }));

      it('joins an identical request (same identity and digest) while pending', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const first = makeRecord(now);
          await a.createOrJoin(first, now);
          const second = makeRecord(now + 5, { digest: first.digest });
          const res = await b.createOrJoin(second, now + 5);
          assert.equal(res.created, false);
          assert.equal(res.record.id, first.id);
          assert.equal(await a.get(second.id, now + 5), null, 'the joining record is not stored');
          const all = await a.list({}, now + 5);
          assert.deepEqual(
            all.map((r) => r.id),
            [first.id],
          );
        }));

      it('joins while approved and not yet spent', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const first = makeRecord(now);
          await approved(a, first, now);
          const res = await b.createOrJoin(makeRecord(now + 5, { digest: first.digest }), now + 5);
          assert.equal(res.created, false);
          assert.equal(res.record.id, first.id);
          assert.equal(res.record.state, 'approved');
        }));

      it('does not join across identities (same digest, other identity, or none)', () =>
        withStores(async (a) => {
          const now = Date.now();
          const first = makeRecord(now);
          await a.createOrJoin(first, now);
          const other = await a.createOrJoin(makeRecord(now, { digest: first.digest, identity: 'other-bot' }), now);
          assert.equal(other.created, true);
          const anon = await a.createOrJoin(makeRecord(now, { digest: first.digest, identity: null }), now);
          assert.equal(anon.created, true);
          const anonAgain = await a.createOrJoin(makeRecord(now, { digest: first.digest, identity: null }), now);
          assert.equal(anonAgain.created, false);
          assert.equal(anonAgain.record.id, anon.record.id);
        }));

      it('does not join a different digest', () =>
        withStores(async (a) => {
          const now = Date.now();
          await a.createOrJoin(makeRecord(now), now);
          assert.equal((await a.createOrJoin(makeRecord(now), now)).created, true);
        }));

      for (const [finish, how] of [
        ['executed', async (s: ApprovalStore, r: ApprovalRecord, now: number) => {
          await approved(s, r, now);
          assert.ok((await s.claim(r.id, 'replica-a', now + 2)).ok);
        }],
        ['cancelled', async (s: ApprovalStore, r: ApprovalRecord, now: number) => {
          await s.createOrJoin(r, now);
          assert.ok((await s.cancel(r.id, 'billing-bot', 'client went away', now + 1)).ok);
        }],
      ] as const) {
        it(`creates a new record after the previous one was ${finish}`, () =>
          withStores(async (a, b) => {
            const now = Date.now();
            const first = makeRecord(now);
            await how(a, first, now);
            const second = makeRecord(now + 10, { digest: first.digest });
            const res = await b.createOrJoin(second, now + 10);
            assert.equal(res.created, true);
            assert.equal(res.record.id, second.id);
            assert.equal((await a.get(first.id, now + 10))?.state, finish);
          }));
      }

      it('a denial answers identical requests until its expiresAt; after that a new record is created', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const first = makeRecord(now);
          await a.createOrJoin(first, now);
          assert.ok((await a.decide(first.id, { approver: 'bob@example.com', verdict: 'deny', reason: 'no' }, now + 1)).ok);
          const retry = await b.createOrJoin(makeRecord(now + 10, { digest: first.digest }), now + 10);
          assert.equal(retry.created, false);
          assert.equal(retry.record.id, first.id);
          assert.equal(retry.record.state, 'denied');
          assert.equal((await b.findActive(first.identity, first.digest, now + 10))?.state, 'denied');
          const later = makeRecord(first.expiresAt, { digest: first.digest });
          const fresh = await b.createOrJoin(later, first.expiresAt);
          assert.equal(fresh.created, true);
          assert.equal((await a.get(first.id, first.expiresAt))?.state, 'denied');
        }));

      it('creates a new record once the previous one expired', () =>
        withStores(async (a) => {
          const now = Date.now();
          const first = makeRecord(now);
          await a.createOrJoin(first, now);
          const later = first.expiresAt + 1;
          const res = await a.createOrJoin(makeRecord(later, { digest: first.digest }), later);
          assert.equal(res.created, true);
          assert.equal((await a.get(first.id, later))?.state, 'expired');
        }));

      it('lets exactly one of many concurrent identical requests create, the rest join it', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const digest = digestOf(randomUUID());
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).createOrJoin(makeRecord(now, { digest }), now)),
          );
          const created = results.filter((r) => r.created);
          assert.equal(created.length, 1);
          const winner = created[0]?.record.id;
          assert.ok(results.every((r) => r.record.id === winner));
          assert.equal((await a.list({}, now)).length, 1);
        }));
    });

    describe('edit', () => {
      const editOf = (rec: ApprovalRecord, required: number): ApprovalEdit => ({
        request: { ...rec.request, query: 'limit=10' },
        digest: digestOf(`${rec.id}-edited`),
        changes: { query: { limit: '10' } },
        by: 'bob@example.com',
        at: rec.createdAt + 1,
        rule: 'small-export',
        required,
        eligible: { api: ['bob@example.com', 'carol@example.com'], slack: [] },
        seal: 'sealed',
      });

      it('replaces what a pending approval decides, restarts the votes with the editor\'s, and approves when that is enough', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const two = makeRecord(now, { required: 2 });
          await a.createOrJoin(two, now);
          assert.ok((await a.decide(two.id, { approver: 'carol@example.com', verdict: 'approve' }, now + 1)).ok);
          const res = await b.edit(two.id, editOf(two, 2), { approver: 'bob@example.com', verdict: 'approve', seal: 's' }, now + 2);
          assert.ok(res.ok);
          assert.equal(res.record.state, 'pending');
          assert.deepEqual(res.record.approvals, [{ approver: 'bob@example.com', at: now + 2, seal: 's' }]);
          assert.deepEqual((await a.get(two.id, now + 3))?.edit, editOf(two, 2));
          const carol = await a.decide(two.id, { approver: 'carol@example.com', verdict: 'approve' }, now + 4);
          assert.ok(carol.ok);
          assert.equal(carol.record.state, 'approved', 'the edited version counts its own approvals');

          const one = makeRecord(now);
          await a.createOrJoin(one, now);
          const approved = await b.edit(one.id, editOf(one, 1), { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          assert.ok(approved.ok);
          assert.deepEqual([approved.record.state, approved.record.decidedBy], ['approved', 'bob@example.com']);
          const moved = makeRecord(now);
          await a.createOrJoin(moved, now);
          const waiting = await a.edit(moved.id, editOf(moved, 1), null, now + 1);
          assert.ok(waiting.ok);
          assert.deepEqual([waiting.record.state, waiting.record.approvals], ['pending', []]);
        }));

      it('changes nothing once decided, or for an unknown id', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'deny', reason: 'no' }, now + 1);
          const res = await a.edit(rec.id, editOf(rec, 1), null, now + 2);
          assert.deepEqual([res.ok, !res.ok && res.reason], [false, 'not_pending']);
          assert.equal((await a.get(rec.id, now + 2))?.edit, null);
          const unknown = await a.edit('apr_nope', editOf(rec, 1), null, now);
          assert.deepEqual([unknown.ok, !unknown.ok && unknown.reason], [false, 'not_found']);
        }));
    });

    describe('grants', () => {
      const grantOf = (now: number, over: Partial<Grant> = {}): Grant => ({
        id: `grant-${randomUUID()}`,
        approvalId: 'apr_1',
        identity: 'billing-bot',
        rule: 'queries',
        method: 'POST',
        scheme: 'https',
        host: 'db.internal',
        port: 443,
        pins: [{ field: '/table', value: '"orders"' }],
        by: 'bob@example.com',
        createdAt: now,
        expiresAt: now + 60_000,
        uses: 3,
        seal: 'sealed',
        ...over,
      });

      it('hands out exactly the uses granted, across store instances at once; then none', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const g = grantOf(now);
          await a.createGrant(g);
          assert.deepEqual((await b.grantsFor('billing-bot', 'queries', now)).map((x) => [x.id, x.usesLeft, x.pins]), [[g.id, 3, g.pins]]);
          assert.deepEqual(await b.grantsFor('billing-bot', 'other', now), []);
          assert.deepEqual(await b.grantsFor('other-bot', 'queries', now), []);
          const tries = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).useGrant(g.id, now + 1)));
          assert.deepEqual(tries.filter((t) => t !== null).map((t) => t!.usesLeft).sort(), [0, 1, 2]);
          assert.deepEqual(await a.grantsFor('billing-bot', 'queries', now + 2), []);
          assert.deepEqual(await a.listGrants(now + 2), []);
        }));

      it('ends at expiry and when revoked; a revoked grant is not revoked twice', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const expiring = grantOf(now);
          const revoked = grantOf(now);
          await a.createGrant(expiring);
          await a.createGrant(revoked);
          assert.equal(await b.useGrant(expiring.id, now + 60_000), null);
          const r = await b.revokeGrant(revoked.id, 'dana@example.com', now + 1);
          assert.deepEqual([r?.revokedAt, r?.revokedBy], [now + 1, 'dana@example.com']);
          assert.equal(await a.useGrant(revoked.id, now + 2), null);
          assert.equal(await a.revokeGrant(revoked.id, 'dana@example.com', now + 3), null);
          assert.deepEqual((await a.listGrants(now + 2)).map((g) => g.id), [expiring.id]);
          assert.equal(await a.useGrant('no-such-grant', now), null);
        }));
    });

    describe('escalateDue', () => {
      it('escalates each pending record once its time has come, once across store instances; decided ones never', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const escalation = { at: now + 1000, groups: ['oncall'], eligible: { api: ['erin@example.com'], slack: [], teams: ['2f6a1b1e-8c3d-4e5f-9a0b-1c2d3e4f5a6b'] }, channel: '#oncall', teamsConversation: '19:oncall@thread.tacv2' };
          const due = makeRecord(now, { escalation });
          const decided = makeRecord(now, { escalation });
          const plain = makeRecord(now);
          for (const r of [due, decided, plain]) await a.createOrJoin(r, now);
          await a.decide(decided.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          assert.deepEqual(await a.escalateDue(now + 999), []);
          const [x, y] = await Promise.all([a.escalateDue(now + 1000), b.escalateDue(now + 1000)]);
          const escalated = [...x, ...y];
          assert.deepEqual(escalated.map((r) => r.id), [due.id]);
          assert.equal(escalated[0]!.escalatedAt, now + 1000);
          assert.deepEqual(escalated[0]!.escalation, escalation);
          assert.equal((await b.get(due.id, now + 1001))?.escalatedAt, now + 1000);
          assert.deepEqual(await a.escalateDue(now + 5000), []);
        }));
    });

    describe('noteOutcome / history', () => {
      it('counts the outcomes of one identity under one rule within 30 days, each approval once', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const day = 24 * 60 * 60 * 1000;
          const who = `bot-${randomUUID()}`;
          assert.deepEqual(await a.history(who, 'exports', now), { approved: 0, denied: 0, expired: 0 });
          await a.noteOutcome(who, 'exports', 'approved', 'id1', now - 31 * day);
          await a.noteOutcome(who, 'exports', 'approved', 'id2', now - 2 * day);
          await b.noteOutcome(who, 'exports', 'approved', 'id2', now - 2 * day);
          await b.noteOutcome(who, 'exports', 'denied', 'id3', now - day);
          await a.noteOutcome(who, 'exports', 'expired', 'id4', now - 1);
          await a.noteOutcome(who, 'other-rule', 'denied', 'id5', now - 1);
          await a.noteOutcome(null, 'exports', 'denied', 'id6', now - 1);
          assert.deepEqual(await b.history(who, 'exports', now), { approved: 1, denied: 1, expired: 1 });
          assert.deepEqual(await b.history(null, 'exports', now), { approved: 0, denied: 1, expired: 0 });
        }));
    });

    describe('setMessage', () => {
      it('records where each channel posted the approval, visible from every store instance', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now, { teamsConversation: '19:approvals@thread.tacv2' });
          await a.createOrJoin(rec, now);
          assert.equal((await b.get(rec.id, now))?.slack, null);
          assert.equal((await b.get(rec.id, now))?.teams, null);
          assert.equal((await b.get(rec.id, now))?.teamsConversation, '19:approvals@thread.tacv2');
          await a.setMessage(rec.id, 'slack', { channel: 'C123', ts: '1700000000.000100' });
          const teams = { serviceUrl: 'https://smba.trafficmanager.net/emea/', conversationId: '19:approvals@thread.tacv2', activityId: '1700000000123' };
          await b.setMessage(rec.id, 'teams', { ...teams, extra: 'not kept' } as typeof teams);
          assert.deepEqual((await b.get(rec.id, now))?.slack, { channel: 'C123', ts: '1700000000.000100' });
          assert.ok((await b.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1)).ok);
          assert.deepEqual((await a.get(rec.id, now + 1))?.slack, { channel: 'C123', ts: '1700000000.000100' });
          assert.deepEqual((await a.get(rec.id, now + 1))?.teams, teams);
          await a.setMessage('no-such-id', 'slack', { channel: 'C1', ts: '1' });
        }));
    });

    describe('settled', () => {
      it('names the ids that are no longer pending: decided, expired by now, or unknown', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const pending = makeRecord(now);
          const approvedOne = makeRecord(now);
          const denied = makeRecord(now);
          const short = makeRecord(now, { expiresAt: now + 50 });
          for (const r of [pending, approvedOne, denied, short]) await a.createOrJoin(r, now);
          assert.ok((await a.decide(approvedOne.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1)).ok);
          assert.ok((await a.decide(denied.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 1)).ok);
          const ids = [pending.id, approvedOne.id, denied.id, short.id, 'no-such-id'];
          assert.deepEqual((await b.settled(ids, now + 10)).sort(), [approvedOne.id, denied.id, 'no-such-id'].sort());
          assert.deepEqual((await b.settled(ids, now + 50)).sort(), [approvedOne.id, denied.id, short.id, 'no-such-id'].sort());
          assert.equal((await a.get(short.id, now + 10))?.state, 'pending', 'settled() changes nothing');
          assert.deepEqual(await b.settled([], now), []);
        }));
    });

    describe('findActive', () => {
      it('finds the pending or approved-unspent record, and nothing once it is finished', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          assert.equal(await a.findActive(rec.identity, rec.digest, now), null);
          await a.createOrJoin(rec, now);
          assert.equal((await b.findActive(rec.identity, rec.digest, now))?.id, rec.id);
          assert.equal(await b.findActive('other-bot', rec.digest, now), null);
          assert.equal(await b.findActive(rec.identity, digestOf('other'), now), null);
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          assert.equal((await b.findActive(rec.identity, rec.digest, now + 2))?.state, 'approved');
          await a.claim(rec.id, 'replica-a', now + 3);
          assert.equal(await b.findActive(rec.identity, rec.digest, now + 4), null);
        }));

      it('does not return a record past its expiry (and expires it)', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          assert.equal(await a.findActive(rec.identity, rec.digest, rec.expiresAt), null);
          assert.equal((await a.get(rec.id, now))?.state, 'expired');
        }));
    });

    describe('countPending', () => {
      it('counts what one identity has pending, on any replica, and stops counting what is decided or expired', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const bot = `counted-${randomUUID()}`;
          const recs = [1, 2, 3].map((i) => makeRecord(now, { identity: bot, expiresAt: now + 60_000 * i }));
          for (const r of recs) await a.createOrJoin(r, now);
          await a.createOrJoin(makeRecord(now, { identity: `other-${randomUUID()}` }), now);
          assert.equal(await b.countPending(bot, now), 3);
          await b.createOrJoin({ ...recs[0]!, id: `apr_${randomUUID()}` }, now + 1);
          assert.equal(await a.countPending(bot, now + 1), 3, 'joining an existing request adds nothing');
          await b.decide(recs[0]!.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 2);
          await b.cancel(recs[1]!.id, bot, null, now + 2);
          assert.equal(await a.countPending(bot, now + 3), 1);
          // With a cap, only the comparison with it is exact: 1 pending is below 2, and at 1.
          assert.ok((await a.countPending(bot, now + 3, 2)) < 2);
          assert.ok((await b.countPending(bot, now + 3, 1)) >= 1);
          assert.equal(await b.countPending(bot, now + 3, 1), 1, 'at the cap: exact');
          assert.equal(await a.countPending(bot, recs[2]!.expiresAt), 0, 'expired');
          assert.equal(await a.countPending(null, now), 0);
        }));
    });

    describe('expireDue / claimExpiryRecord', () => {
      it('expires what is overdue, pending or approved and unspent, whoever held it; one caller claims recording each', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const due = makeRecord(now - 120_000, { expiresAt: now - 1 });
          const lapsing = makeRecord(now - 120_000, { expiresAt: now - 1 });
          const later = makeRecord(now);
          for (const r of [due, lapsing, later]) await a.createOrJoin(r, now - 120_000);
          await a.decide(lapsing.id, { approver: 'bob@example.com', verdict: 'approve' }, now - 60_000);
          const expired = await b.expireDue(now);
          assert.deepEqual([...expired].sort(), [due.id, lapsing.id].sort());
          assert.equal((await a.get(due.id, now))?.state, 'expired');
          assert.equal((await a.get(later.id, now))?.state, 'pending');
          assert.deepEqual(await a.expireDue(now + 1), [], 'each is expired once');
          const claims = await Promise.all([a.claimExpiryRecord(due.id), b.claimExpiryRecord(due.id), a.claimExpiryRecord(due.id)]);
          assert.deepEqual(claims.filter(Boolean).length, 1);
        }));
    });

    describe('list', () => {
      async function three(a: ApprovalStore, now: number): Promise<ApprovalRecord[]> {
        const recs = [makeRecord(now), makeRecord(now + 1), makeRecord(now + 2)];
        for (const r of recs) await a.createOrJoin(r, now + 2);
        return recs;
      }

      it('returns records newest first', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const [r0, r1, r2] = await three(a, now);
          assert.deepEqual(
            (await b.list({}, now + 3)).map((r) => r.id),
            [r2?.id, r1?.id, r0?.id],
          );
        }));

      it('filters by state and honours the limit', () =>
        withStores(async (a) => {
          const now = Date.now();
          const [r0, r1, r2] = await three(a, now);
          assert.ok(r0 && r1 && r2);
          await a.decide(r0.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 3);
          await a.decide(r2.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 3);
          assert.deepEqual(
            (await a.list({ state: 'approved' }, now + 4)).map((r) => r.id),
            [r2.id, r0.id],
          );
          assert.deepEqual(
            (await a.list({ state: 'pending' }, now + 4)).map((r) => r.id),
            [r1.id],
          );
          assert.deepEqual(
            (await a.list({ limit: 2 }, now + 4)).map((r) => r.id),
            [r2.id, r1.id],
          );
          assert.deepEqual(
            (await a.list({ state: 'approved', limit: 1 }, now + 4)).map((r) => r.id),
            [r2.id],
          );
          assert.deepEqual(await a.list({ state: 'denied' }, now + 4), []);
        }));

      it('applies expiry to what it lists', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const later = rec.expiresAt + 1;
          assert.deepEqual(await a.list({ state: 'pending' }, later), []);
          assert.deepEqual(
            (await a.list({ state: 'expired' }, later)).map((r) => r.id),
            [rec.id],
          );
        }));
    });

    describe('expiry on read', () => {
      it('reports and stores a pending record past expiresAt as expired, and announces it', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const seen = nextChange(b, (c) => c.id === rec.id && c.state === 'expired');
          const got = await a.get(rec.id, rec.expiresAt + 1);
          assert.equal(got?.state, 'expired');
          assert.equal(got?.decidedAt, rec.expiresAt);
          assert.deepEqual(await seen, { id: rec.id, state: 'expired', holder: 'replica-a', notice: { what: 'changed', version: 2 } });
          // Stored: even a reader with an older clock sees it expired now.
          assert.equal((await b.get(rec.id, now))?.state, 'expired');
        }));

      it('is not due before expiresAt', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          assert.equal((await a.get(rec.id, rec.expiresAt - 1))?.state, 'pending');
          assert.equal((await a.get(rec.id, rec.expiresAt))?.state, 'expired');
        }));

      it('expires an approval that was not spent in time', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          const appr = await approved(a, rec, now);
          const got = await a.get(rec.id, rec.expiresAt);
          assert.equal(got?.state, 'expired');
          assert.equal(got?.decidedAt, appr.decidedAt, 'keeps when it was approved');
          assert.deepEqual(got?.approvals, appr.approvals);
        }));
    });

    describe('decide', () => {
      it('one approval approves when one is required', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const res = await b.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve', reason: 'fine' }, now + 7);
          assert.ok(res.ok);
          assert.equal(res.record.state, 'approved');
          assert.deepEqual(res.record.approvals, [{ approver: 'bob@example.com', at: now + 7 }]);
          assert.equal(res.record.decidedAt, now + 7);
          assert.equal(res.record.decidedBy, 'bob@example.com', 'the approver whose vote approved it');
          assert.deepEqual(await a.get(rec.id, now + 8), res.record);
        }));

      it('two required: pending after the first, approved after a second distinct approver', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now, { required: 2 });
          await a.createOrJoin(rec, now);
          const first = await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          assert.ok(first.ok);
          assert.equal(first.record.state, 'pending');
          assert.equal(first.record.decidedAt, null);
          assert.deepEqual(first.record.approvals, [{ approver: 'bob@example.com', at: now + 1 }]);
          const second = await b.decide(rec.id, { approver: 'carol@example.com', verdict: 'approve' }, now + 2);
          assert.ok(second.ok);
          assert.equal(second.record.state, 'approved');
          assert.equal(second.record.decidedAt, now + 2);
          assert.deepEqual(second.record.approvals, [
            { approver: 'bob@example.com', at: now + 1 },
            { approver: 'carol@example.com', at: now + 2 },
          ]);
        }));

      it('the same approver twice is already_voted and changes nothing', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now, { required: 2 });
          await a.createOrJoin(rec, now);
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          const again = await b.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 2);
          assert.equal(again.ok, false);
          assert.equal(!again.ok && again.reason, 'already_voted');
          assert.equal(again.record?.state, 'pending');
          assert.equal(again.record?.approvals.length, 1);
        }));

      it('a deny is final, even after an approval, and later votes are not_pending', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now, { required: 2 });
          await a.createOrJoin(rec, now);
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          const deny = await b.decide(rec.id, { approver: 'carol@example.com', verdict: 'deny', reason: 'not this month' }, now + 2);
          assert.ok(deny.ok);
          assert.equal(deny.record.state, 'denied');
          assert.equal(deny.record.decidedAt, now + 2);
          assert.equal(deny.record.decidedBy, 'carol@example.com');
          assert.equal(deny.record.decisionReason, 'not this month');
          for (const verdict of ['approve', 'deny'] as const) {
            const later = await a.decide(rec.id, { approver: 'dave@example.com', verdict }, now + 3);
            assert.equal(later.ok, false);
            assert.equal(!later.ok && later.reason, 'not_pending');
            assert.equal(later.record?.state, 'denied');
          }
        }));

      it('a deny without a reason stores null', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const deny = await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 1);
          assert.ok(deny.ok);
          assert.equal(deny.record.decisionReason, null);
        }));

      it('approving an approved record is not_pending', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await approved(a, rec, now);
          const again = await a.decide(rec.id, { approver: 'carol@example.com', verdict: 'approve' }, now + 2);
          assert.equal(!again.ok && again.reason, 'not_pending');
          assert.equal(again.record?.approvals.length, 1);
        }));

      it('deciding after expiresAt is not_pending (the record expired)', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const res = await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, rec.expiresAt + 1);
          assert.equal(!res.ok && res.reason, 'not_pending');
          assert.equal(res.record?.state, 'expired');
        }));

      it('an unknown id is not_found for decide, cancel and claim', () =>
        withStores(async (a) => {
          const now = Date.now();
          assert.deepEqual(await a.decide('apr_nope', { approver: 'bob@example.com', verdict: 'approve' }, now), {
            ok: false,
            reason: 'not_found',
            record: null,
          });
          assert.deepEqual(await a.cancel('apr_nope', 'x', null, now), { ok: false, reason: 'not_found', record: null });
          assert.deepEqual(await a.claim('apr_nope', 'replica-a', now), { ok: false, reason: 'not_found', record: null });
        }));

      it('50 concurrent approvals by 5 approvers on 2 instances end approved with exactly 2 votes', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now, { required: 2 });
          await a.createOrJoin(rec, now);
          const approvers = ['u1', 'u2', 'u3', 'u4', 'u5'];
          const results = await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
              (i % 2 ? a : b).decide(rec.id, { approver: approvers[i % 5] as string, verdict: 'approve' }, now + 1 + i),
            ),
          );
          const ok = results.filter((r) => r.ok);
          assert.equal(ok.length, 2, 'exactly two votes counted');
          assert.equal(ok.filter((r) => r.record.state === 'approved').length, 1, 'exactly one vote approved it');
          for (const r of results) if (!r.ok) assert.ok(r.reason === 'already_voted' || r.reason === 'not_pending', r.reason);
          const final = await a.get(rec.id, now + 100);
          assert.equal(final?.state, 'approved');
          assert.equal(final?.approvals.length, 2);
          assert.notEqual(final?.approvals[0]?.approver, final?.approvals[1]?.approver);
        }));
    });

    describe('cancel', () => {
      it('cancels a pending record once', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const res = await b.cancel(rec.id, 'billing-bot', 'client disconnected', now + 3);
          assert.ok(res.ok);
          assert.equal(res.record.state, 'cancelled');
          assert.equal(res.record.decidedBy, 'billing-bot');
          assert.equal(res.record.decisionReason, 'client disconnected');
          assert.equal(res.record.decidedAt, now + 3);
          const again = await a.cancel(rec.id, 'billing-bot', null, now + 4);
          assert.equal(!again.ok && again.reason, 'not_pending');
        }));

      it('cancels an approved record not yet executed (the policy in force now denies it), never an executed one', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await approved(a, rec, now);
          const res = await b.cancel(rec.id, '(policy in force)', 'denied by rule freeze', now + 2);
          assert.ok(res.ok);
          assert.equal(res.record.state, 'cancelled');
          assert.equal((await a.claim(rec.id, 'r1', now + 3)).ok, false, 'a cancelled approval is never claimed');
          const spent = makeRecord(now);
          await approved(a, spent, now);
          assert.ok((await a.claim(spent.id, 'r1', now + 2)).ok);
          const late = await b.cancel(spent.id, '(policy in force)', null, now + 3);
          assert.equal(!late.ok && late.reason, 'not_pending');
          assert.equal(late.record?.state, 'executed');
        }));
    });

    describe('claim', () => {
      it('only an approved record can be claimed, and only once', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const early = await a.claim(rec.id, 'replica-a', now + 1);
          assert.equal(!early.ok && early.reason, 'not_approved');
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 2);
          const won = await b.claim(rec.id, 'replica-b', now + 3);
          assert.ok(won.ok);
          assert.equal(won.record.state, 'executed');
          assert.equal(won.record.executedAt, now + 3);
          assert.equal(won.record.executedBy, 'replica-b');
          const again = await a.claim(rec.id, 'replica-a', now + 4);
          assert.equal(!again.ok && again.reason, 'not_approved');
          assert.equal(again.record?.state, 'executed');
        }));

      it('a denied record cannot be claimed', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 1);
          const res = await a.claim(rec.id, 'replica-a', now + 2);
          assert.equal(!res.ok && res.reason, 'not_approved');
        }));

      it('a claim after expiresAt is lapsed (and the record expired)', () =>
        withStores(async (a) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await approved(a, rec, now);
          const res = await a.claim(rec.id, 'replica-a', rec.expiresAt + 1);
          assert.equal(!res.ok && res.reason, 'lapsed');
          assert.equal(res.record?.state, 'expired');
          assert.equal((await a.get(rec.id, now))?.state, 'expired');
        }));

      it('50 concurrent claims from 2 instances: exactly one wins', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await approved(a, rec, now);
          const results = await Promise.all(
            Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).claim(rec.id, `replica-${i}`, now + 2)),
          );
          const wins = results.filter((r) => r.ok);
          assert.equal(wins.length, 1);
          for (const r of results) if (!r.ok) assert.equal(r.reason, 'not_approved');
          const final = await a.get(rec.id, now + 3);
          assert.equal(final?.state, 'executed');
          assert.equal(final?.executedBy, wins[0]?.record.executedBy);
        }));
    });

    describe('subscribe / setHolder', () => {
      it('sees changes made through the other instance, numbered for telling people once; a new holder is quiet', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          const created = nextChange(b, (c) => c.id === rec.id && c.state === 'pending');
          await a.createOrJoin(rec, now);
          assert.deepEqual(await created, { id: rec.id, state: 'pending', holder: 'replica-a', notice: { what: 'requested', version: 1 } });
          const held = nextChange(b, (c) => c.id === rec.id && c.holder === 'replica-b');
          await a.setHolder(rec.id, 'replica-b');
          assert.deepEqual(await held, { id: rec.id, state: 'pending', holder: 'replica-b' });
          const decided = nextChange(b, (c) => c.id === rec.id && c.state === 'approved');
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          assert.deepEqual(await decided, { id: rec.id, state: 'approved', holder: 'replica-b', notice: { what: 'changed', version: 2 } });
          const executed = nextChange(a, (c) => c.id === rec.id && c.state === 'executed');
          await b.claim(rec.id, 'replica-b', now + 2);
          assert.deepEqual((await executed).notice, { what: 'changed', version: 3 });
          // Each version is told by one caller only.
          const claims = await Promise.all([a.claimNotice(rec.id, 3), b.claimNotice(rec.id, 3), a.claimNotice(rec.id, 3)]);
          assert.deepEqual(claims.filter(Boolean).length, 1);
          assert.equal(await a.claimNotice('no-such-id', 1), false);
        }));

      it('an unsubscribed listener hears nothing more', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          let count = 0;
          const off = b.subscribe(() => count++);
          const first = nextChange(b, (c) => c.id === rec.id && c.state === 'pending');
          await a.createOrJoin(rec, now);
          await first;
          assert.equal(count, 1);
          off();
          const second = nextChange(b, (c) => c.id === rec.id && c.state === 'approved');
          await a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, now + 1);
          await second;
          assert.equal(count, 1);
        }));

      it('a throwing listener does not break the store or other listeners', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          b.subscribe(() => {
            throw new Error('listener bug');
          });
          const seen = nextChange(b, (c) => c.id === rec.id);
          await a.createOrJoin(rec, now);
          assert.equal((await seen).state, 'pending');
          assert.equal((await a.get(rec.id, now))?.state, 'pending');
        }));

      it('setHolder round-trips and is announced', () =>
        withStores(async (a, b) => {
          const now = Date.now();
          const rec = makeRecord(now);
          await a.createOrJoin(rec, now);
          const moved = nextChange(a, (c) => c.id === rec.id && c.holder === 'replica-b');
          await b.setHolder(rec.id, 'replica-b');
          assert.deepEqual(await moved, { id: rec.id, state: 'pending', holder: 'replica-b' });
          assert.equal((await a.get(rec.id, now))?.holder, 'replica-b');
          const cleared = nextChange(a, (c) => c.id === rec.id && c.holder === null);
          await a.setHolder(rec.id, null);
          await cleared;
          assert.equal((await b.get(rec.id, now))?.holder, null);
          await a.setHolder('apr_nope', 'replica-a'); // unknown id: nothing happens
        }));

      it('is ready while open', () =>
        withStores(async (a, b) => {
          assert.equal(a.ready(), true);
          assert.equal(b.ready(), true);
        }));
    });
  });
}
