/** A request whose announcement no channel acted on still gets its message, once. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/approvals/memory-store.js';
import { ApprovalService, type ApprovalChannel } from '../../src/approvals/service.js';
import { StateSealer } from '../../src/approvals/state-seal.js';
import { createAuditSink } from '../../src/audit/sink.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { makeRecord } from './approval-store-contract.js';

describe('missed approval messages', () => {
  it('are posted by one replica once the request has waited a while without one (each is claimed once: see the store contract)', async () => {
    let clock = Date.parse('2026-11-30T12:00:00Z');
    const store = new MemoryStore();
    const audit = await createAuditSink({ destination: 'stdout' });
    const deps = { store, audit, metrics: createMetrics(), log: createLogger('silent'), sealer: StateSealer.ephemeral(), now: () => clock, recheckMs: 5 };
    // The record exists before any channel listens: its announcement reached nobody.
    const rec = makeRecord(clock);
    await store.createOrJoin(rec, clock);
    const told: string[] = [];
    const channel: ApprovalChannel = {
      name: 'recording',
      requested: async (r) => void told.push(r.id),
      changed: async () => {},
      escalated: async () => {},
      grantChanged: async () => {},
      posted: (r) => r.slack !== null,
    };
    const replicas = [new ApprovalService({ ...deps, replica: 'a' }), new ApprovalService({ ...deps, replica: 'b' })];
    for (const s of replicas) s.addChannel(channel);
    try {
      clock += 16_000;
      const deadline = Date.now() + 5000;
      while (told.length === 0) {
        assert.ok(Date.now() < deadline, 'the missed message was posted');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.deepEqual(told, [rec.id], 'by one of the two replicas');
    } finally {
      for (const s of replicas) await s.close();
      await store.close();
    }
  });
});
