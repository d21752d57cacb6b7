/**
 * Escalation: when nobody has decided after the rule's delay, a further group is asked (once, by one
 * replica) and may decide from then on; before that it may not.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RedisStore } from '../../src/approvals/redis-store.js';
import { approvalRequestMessage } from '../../src/approvals/slack/message.js';
import { ApprovalService, asVotedOn, refusalToVote, type ApprovalChannel } from '../../src/approvals/service.js';
import { StateSealer } from '../../src/approvals/state-seal.js';
import type { ApprovalRecord } from '../../src/approvals/types.js';
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
  oncall: { api: [erin@example.com] }
rules:
  - id: deletes
    match: { methods: [DELETE], hosts: [infra.example.com] }
    action: approve
    approval: { approvers: [owners], wait: 1s, expires: 1h, escalate: { after: 10m, approvers: [oncall], channel: "#oncall" } }
`;

const sealer = StateSealer.fromKeys(['a-key-every-replica-of-this-test-shares'], 'test');
let clock = Date.parse('2026-11-30T12:00:00Z');
const now = (): number => clock;

/** Records what the service tells its channels, as Slack would be told. */
class RecordingChannel implements ApprovalChannel {
  readonly name = 'recording';
  readonly escalations: ApprovalRecord[] = [];
  async requested(): Promise<void> {}
  async changed(): Promise<void> {}
  async escalated(r: ApprovalRecord): Promise<void> {
    this.escalations.push(r);
  }
  async grantChanged(): Promise<void> {}
  posted(): boolean {
    return true;
  }
}

describe('escalation', () => {
  let redis: RedisServer;
  let dir: string;
  let policy: CompiledPolicy;
  const open: { service: ApprovalService; store: RedisStore; audit: AuditSink; file: string; channel: RecordingChannel }[] = [];

  async function replica(name: string) {
    const store = await RedisStore.connect(redis.url, { replica: name });
    const file = join(dir, `${name}.jsonl`);
    const audit = await createAuditSink({ destination: file });
    const service = new ApprovalService({ store, replica: name, audit, metrics: createMetrics(), log: createLogger('silent'), sealer, now, recheckMs: 10 });
    const channel = new RecordingChannel();
    service.addChannel(channel);
    const r = { service, store, audit, file, channel };
    open.push(r);
    return r;
  }

  async function escalations(id: string): Promise<number> {
    let n = 0;
    for (const r of open) {
      await r.audit.flush();
      n += (await readFile(r.file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'approval_escalated' && e.approval_id === id).length;
    }
    return n;
  }

  before(async () => {
    redis = await startRedisServer();
    dir = await mkdtemp(join(tmpdir(), 'airlock-escalation-'));
    const loaded = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
    assert.ok(loaded.ok);
    policy = loaded.policy;
  });
  after(async () => {
    for (const r of open) {
      await r.service.close();
      await r.store.close();
      await r.audit.close();
    }
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('asks the further group once after the delay; it may decide only from then on', async () => {
    const [a, b] = [await replica('replica-a'), await replica('replica-b')];
    const rule = policy.rules.find((r) => r.id === 'deletes')!;
    const decision: Decision = { action: 'approve', rule: 'deletes', matched: ['deletes'], report: [], reason: 'deletes', approval: rule.approval! };
    const { record } = await a.service.findOrCreate({
      requestId: 'r1',
      request: { method: 'DELETE', scheme: 'https', host: 'infra.example.com', port: 443, path: '/clusters/prod', encodedPath: '/clusters/prod', query: '', classification: null, headers: [], body: '' },
      digest: 'e'.repeat(64),
      identity: null,
      decision,
      policy,
      reason: null,
    });
    assert.deepEqual(record.escalation?.groups, ['oncall']);
    assert.equal(record.escalation?.at, clock + 10 * 60_000);
    const mayVote = (r: ApprovalRecord, who: string) => refusalToVote(asVotedOn(policy, r), who);
    const early = await a.service.vote(record.id, 'erin@example.com', 'approve', null, mayVote);
    assert.deepEqual([early.ok, !early.ok && early.status], [false, 403], 'on-call may not decide before the escalation');
    assert.match(JSON.stringify(approvalRequestMessage(record, { now: clock }).blocks), /if nobody decides by .* `oncall` will be asked too/);

    clock += 10 * 60_000 + 1;
    const deadline = Date.now() + 10_000;
    while ((await escalations(record.id)) === 0) {
      assert.ok(Date.now() < deadline, 'a replica escalated it');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal(await escalations(record.id), 1, 'escalated once, by one replica');
    const told = [...a.channel.escalations, ...b.channel.escalations];
    assert.equal(told.length, 1);
    assert.equal(told[0]!.escalation?.channel, '#oncall');
    assert.match(JSON.stringify(approvalRequestMessage(told[0]!, { now: clock }).blocks), /\*Escalated\*.*`oncall` \(erin@example\.com\) are asked too and may decide/);

    const late = await b.service.vote(record.id, 'erin@example.com', 'approve', null, mayVote);
    assert.ok(late.ok, late.ok ? '' : late.message);
    assert.equal(late.record.state, 'approved');
  });

  it('the policy refuses an escalation that would come after expiry, or names an unknown group', () => {
    const bad = loadPolicySources([{ file: 'p.yaml', text: POLICY.replace('after: 10m', 'after: 2h').replace('[oncall], channel', '[nobody], channel') }]);
    assert.ok(!bad.ok);
    const messages = bad.errors.map((e) => e.message).join('\n');
    assert.match(messages, /escalate.after \(2h\) is not shorter than approval.expires \(1h\)/);
    assert.match(messages, /unknown approver group "nobody"/);
  });
});
