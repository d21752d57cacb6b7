/**
 * An approval whose replica is gone still has its expiry on record: the surviving replicas sweep the
 * overdue approvals (nobody reads them any more), and exactly one of them writes the expiry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RedisStore } from '../../src/approvals/redis-store.js';
import { ApprovalService } from '../../src/approvals/service.js';
import { StateSealer } from '../../src/approvals/state-seal.js';
import { createAuditSink, type AuditSink } from '../../src/audit/sink.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { loadPolicySources } from '../../src/policy/load.js';
import type { CompiledPolicy, Decision } from '../../src/policy/types.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const POLICY = `
version: 1
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: exports
    match: { methods: [POST], hosts: [data.example.com] }
    action: approve
    approval: { approvers: [owners], wait: 1s, expires: 1m }
`;

const sealer = StateSealer.fromKeys(['a-key-every-replica-of-this-test-shares'], 'test');
/** A clock the test moves: expiry without waiting for it. */
let clock = Date.parse('2026-11-30T12:00:00Z');
const now = (): number => clock;

interface Replica {
  service: ApprovalService;
  audit: AuditSink;
  file: string;
  close(): Promise<void>;
}

describe('expiry of an approval whose replica is gone', () => {
  let redis: RedisServer;
  let dir: string;
  let policy: CompiledPolicy;
  const replicas: Replica[] = [];

  async function replica(name: string, recheckMs: number): Promise<Replica> {
    const store = await RedisStore.connect(redis.url, { replica: name });
    const file = join(dir, `${name}.jsonl`);
    const audit = await createAuditSink({ destination: file });
    const service = new ApprovalService({ store, replica: name, audit, metrics: createMetrics(), log: createLogger('silent'), sealer, now, recheckMs });
    const r = { service, audit, file, close: () => store.close() };
    replicas.push(r);
    return r;
  }

  async function expiries(r: Replica, id: string): Promise<number> {
    await r.audit.flush();
    const lines = (await readFile(r.file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    return lines.filter((e) => e.event === 'approval_decided' && e.state === 'expired' && e.approval_id === id).length;
  }

  before(async () => {
    redis = await startRedisServer();
    dir = await mkdtemp(join(tmpdir(), 'airlock-expiry-'));
    const loaded = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
    assert.ok(loaded.ok);
    policy = loaded.policy;
  });
  after(async () => {
    for (const r of replicas) {
      await r.service.close();
      await r.close();
      await r.audit.close();
    }
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is swept and recorded once, by one of the survivors', async () => {
    const rule = policy.rules.find((r) => r.id === 'exports')!;
    const decision: Decision = { action: 'approve', rule: 'exports', matched: ['exports'], report: [], reason: 'exports', approval: rule.approval! };
    const gone = await replica('replica-gone', 60_000);
    const body = Buffer.from('{"rows":"all"}');
    const { record } = await gone.service.findOrCreate({
      requestId: 'r1',
      request: { method: 'POST', scheme: 'https', host: 'data.example.com', port: 443, path: '/export', encodedPath: '/export', query: '', classification: null, headers: [], body: body.toString('base64') },
      digest: 'd'.repeat(64),
      identity: null,
      decision,
      policy,
      reason: null,
    });
    await gone.service.close();

    // Two survivors that never saw the request; time passes beyond its expiry.
    const [b, c] = [await replica('replica-b', 10), await replica('replica-c', 10)];
    clock += 61_000;
    const deadline = Date.now() + 10_000;
    while ((await expiries(b, record.id)) + (await expiries(c, record.id)) === 0) {
      assert.ok(Date.now() < deadline, 'a survivor recorded the expiry');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal((await expiries(b, record.id)) + (await expiries(c, record.id)), 1, 'recorded exactly once');
    assert.equal((await b.service.get(record.id))?.state, 'expired');
  });
});
