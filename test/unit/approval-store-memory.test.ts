import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/approvals/memory-store.js';
import { approvalStoreContract, makeRecord } from './approval-store-contract.js';

approvalStoreContract('memory', async () => {
  const store = new MemoryStore();
  return { a: store, b: store, close: () => store.close() };
});

describe('MemoryStore', () => {
  it('keeps finished records for retentionMs after they finish, unfinished ones until expiresAt + retentionMs', async () => {
    const store = new MemoryStore({ retentionMs: 1000 });
    try {
      const now = 1_700_000_000_000;
      const denied = makeRecord(now);
      const pending = makeRecord(now + 1);
      await store.createOrJoin(denied, now);
      await store.createOrJoin(pending, now + 1);
      await store.decide(denied.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 10);

      assert.equal(store.sweep(now + 10 + 999), 0);
      assert.equal(store.sweep(now + 10 + 1000), 1);
      assert.equal(await store.get(denied.id, now + 2000), null);
      assert.equal((await store.get(pending.id, now + 2000))?.state, 'pending');

      assert.equal(store.sweep(pending.expiresAt + 999), 0);
      assert.equal(store.sweep(pending.expiresAt + 1000), 1);
      assert.deepEqual(await store.list({}, pending.expiresAt + 1000), []);
      // The identity+digest slot is free again.
      const again = await store.createOrJoin(makeRecord(pending.expiresAt + 1000, { digest: pending.digest }), pending.expiresAt + 1000);
      assert.equal(again.created, true);
    } finally {
      await store.close();
    }
  });

  it('is not ready and refuses calls once closed', async () => {
    const store = new MemoryStore();
    assert.equal(store.ready(), true);
    await store.close();
    assert.equal(store.ready(), false);
    await assert.rejects(store.get('x', Date.now()), /closed/);
  });
});
