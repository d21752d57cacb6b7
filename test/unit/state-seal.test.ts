import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadStateSealer, StateSealer } from '../../src/approvals/state-seal.js';
import type { ApprovalRecord } from '../../src/approvals/types.js';
import { makeRecord } from './approval-store-contract.js';

const OLD = 'old-key-old-key-old-key-old-key-old-key';
const NEW = 'new-key-new-key-new-key-new-key-new-key';

function approvedBy(sealer: StateSealer, r: ApprovalRecord, ...approvers: string[]): ApprovalRecord {
  const approvals = approvers.map((approver, i) => ({ approver, at: r.createdAt + i + 1, seal: sealer.sealVote(r, approver, r.createdAt + i + 1) }));
  return { ...r, state: 'executed', approvals };
}

function sealed(sealer: StateSealer, over: Partial<ApprovalRecord> = {}): ApprovalRecord {
  const r = makeRecord(Date.now(), over);
  return { ...r, seal: sealer.sealRecord(r) };
}

describe('state seals', () => {
  const sealer = StateSealer.fromKeys([NEW], 'test');
  const expect = (r: ApprovalRecord) => ({ identity: r.identity, digest: r.digest });

  it('a record sealed at creation with enough sealed approvals holds', () => {
    const r = approvedBy(sealer, sealed(sealer, { required: 2 }), 'bob@example.com', 'carol@example.com');
    assert.equal(sealer.forgery(r, expect(r)), null);
  });

  it('names what is wrong: no seal, an altered field, another request, votes without valid seals, the requester voting', () => {
    const base = sealed(sealer, { required: 2 });
    assert.match(sealer.forgery(approvedBy(sealer, { ...base, seal: null }, 'bob@example.com', 'carol@example.com'), expect(base))!, /no seal/);
    for (const change of [{ required: 1 }, { expiresAt: base.expiresAt + 3_600_000 }, { identity: 'other-bot' }, { eligible: { api: ['mallory@example.com'], slack: [] } }]) {
      const r = approvedBy(sealer, { ...base, ...change }, 'bob@example.com', 'carol@example.com');
      assert.match(sealer.forgery(r, expect(r))!, /altered/, JSON.stringify(change));
    }
    const body = { ...base, request: { ...base.request, body: Buffer.from('{"rows":"everything"}').toString('base64') } };
    assert.match(sealer.forgery(approvedBy(sealer, body, 'bob@example.com', 'carol@example.com'), expect(body))!, /altered/);
    const ok = approvedBy(sealer, base, 'bob@example.com', 'carol@example.com');
    assert.match(sealer.forgery(ok, { identity: base.identity, digest: 'f'.repeat(64) })!, /different request/);
    const copied = { ...ok, approvals: [ok.approvals[0]!, { ...ok.approvals[0]! }] };
    assert.match(sealer.forgery(copied, expect(ok))!, /only 1 of the 2/);
    const unsealed = { ...ok, approvals: ok.approvals.map(({ approver, at }) => ({ approver, at })) };
    assert.match(sealer.forgery(unsealed, expect(ok))!, /only 0 of the 2/);
    const retimed = { ...ok, approvals: ok.approvals.map((v) => ({ ...v, at: v.at + 1 })) };
    assert.match(sealer.forgery(retimed, expect(ok))!, /only 0 of the 2/);
    const fromOtherRecord = approvedBy(sealer, sealed(sealer, { required: 2 }), 'bob@example.com', 'carol@example.com');
    assert.match(sealer.forgery({ ...ok, approvals: fromOtherRecord.approvals }, expect(ok))!, /only 0 of the 2/);
    const self = approvedBy(sealer, base, 'billing-bot', 'alice@example.com');
    assert.match(sealer.forgery(self, expect(self))!, /only 0 of the 2/, 'the requester and its owner never count');
  });

  it('another key does not verify; a rotated key list verifies the old seals and seals with the first', () => {
    const old = StateSealer.fromKeys([OLD], 'test');
    const r = approvedBy(old, sealed(old), 'bob@example.com');
    assert.match(sealer.forgery(r, expect(r))!, /altered/);
    const rotated = StateSealer.fromKeys([NEW, OLD], 'test');
    assert.equal(rotated.forgery(r, expect(r)), null);
    const fresh = approvedBy(rotated, sealed(rotated), 'bob@example.com');
    assert.equal(sealer.forgery(fresh, expect(fresh)), null);
  });

  it('keys come from AIRLOCK_STATE_KEY or a file; short keys, empty files and shared state without a key are refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-key-'));
    const file = join(dir, 'state-key');
    await writeFile(file, `${NEW}\n${OLD}\n`);
    const fromFile = await loadStateSealer({ file }, true);
    const r = approvedBy(StateSealer.fromKeys([OLD], 't'), sealed(StateSealer.fromKeys([OLD], 't')), 'bob@example.com');
    assert.equal(fromFile.forgery(r, expect(r)), null, 'every key in the file verifies');
    await writeFile(file, '\n');
    await assert.rejects(loadStateSealer({ file }, true), /state key file .* holds no key/);
    await assert.rejects(loadStateSealer({ file: join(dir, 'missing') }, true), /ENOENT/);
    await assert.rejects(loadStateSealer({ value: 'too-short' }, true), /key 1 is 9 bytes; use at least 32/);
    await assert.rejects(loadStateSealer({}, true), /AIRLOCK_STATE_KEY or --state-key-file/);
    assert.ok(await loadStateSealer({}, false), 'in memory: a key of its own');
    assert.ok(await loadStateSealer({ value: `${NEW}, ${OLD}` }, true));
  });
});
