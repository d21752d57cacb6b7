import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuditSink } from '../../src/audit/sink.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { createPolicyHolder } from '../../src/policy/watch.js';

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const series = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

const POLICY_V1 = `version: 1
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: reads
    match: { methods: [GET], hosts: [api.example] }
    action: allow
  - id: exports
    match: { methods: [POST], hosts: [api.example] }
    action: approve
    approval: { approvers: [owners] }
  - id: watch
    match: { hosts: [other.example] }
    action: deny
    mode: report
`;
const POLICY_V2 = `version: 1
approvers:
  owners: { api: [bob@example.com] }
defaults: { action: allow }
rules:
  - id: uploads
    match: { methods: [PUT], hosts: [api.example] }
    action: approve
    approval: { approvers: [owners] }
`;

describe('metrics', () => {
  it('creates independent registries side by side', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.decisions.inc({ action: 'deny', rule: 'no-iam', mode: 'enforce' });
    assert.match(await a.registry.metrics(), /airlock_decisions_total\{action="deny",rule="no-iam",mode="enforce"\} 1/);
    assert.doesNotMatch(await b.registry.metrics(), /airlock_decisions_total\{/);
  });

  it('exposes every Airlock metric and the default process metrics with the airlock_ prefix', async () => {
    const m = createMetrics();
    m.decisions.inc({ action: 'allow', rule: '(default)', mode: 'enforce' });
    m.requestDuration.observe({ action: 'allow' }, 0.003);
    m.upstreamDuration.observe({ status_class: '2xx' }, 0.002);
    m.proxyResponses.inc({ code: 'denied' });
    m.policyReloads.inc({ result: 'success' });
    m.policyRules.set(12);
    m.policyLastReloadSuccess.set(1_700_000_000);
    m.policyLoaded.set(1);
    m.tunnels.inc({ decision: 'allow' });
    m.auditEvents.inc({ event: 'request' });
    m.auditErrors.inc();
    const text = await m.registry.metrics();
    for (const line of [
      'airlock_decisions_total{action="allow",rule="(default)",mode="enforce"} 1',
      'airlock_request_duration_seconds_bucket{le="0.004",action="allow"} 1',
      'airlock_request_duration_seconds_bucket{le="0.002",action="allow"} 0',
      'airlock_upstream_duration_seconds_count{status_class="2xx"} 1',
      'airlock_proxy_errors_total{code="denied"} 1',
      'airlock_policy_reloads_total{result="success"} 1',
      'airlock_policy_rules 12',
      'airlock_policy_last_reload_success_timestamp_seconds 1700000000',
      'airlock_policy_loaded_ok 1',
      'airlock_tunnels_total{decision="allow"} 1',
      'airlock_audit_events_total{event="request"} 1',
      'airlock_audit_errors_total 1',
    ]) {
      assert.ok(text.includes(line), `missing: ${line}`);
    }
    assert.match(text, /^airlock_process_cpu_seconds_total /m);
    assert.match(text, /^airlock_nodejs_eventloop_lag_seconds /m);
    assert.match(text, /airlock_request_duration_seconds_bucket\{le="16.384",action="allow"\}/);
  });

  it('a fresh registry exports the build info and, at 0, every counter whose labels are known before anything happens', async () => {
    const text = await createMetrics().registry.metrics();
    assert.deepEqual(series(text, 'airlock_build_info'), [`airlock_build_info{version="${PACKAGE_VERSION}",node="${process.version}"} 1`]);
    assert.deepEqual(series(text, 'airlock_approval_outcomes_total'), ['approved', 'denied', 'expired', 'cancelled', 'executed'].map((s) => `airlock_approval_outcomes_total{state="${s}"} 0`));
    assert.deepEqual(series(text, 'airlock_policy_reloads_total'), ['airlock_policy_reloads_total{result="success"} 0', 'airlock_policy_reloads_total{result="failure"} 0']);
    assert.deepEqual(series(text, 'airlock_tunnels_total'), ['allow', 'inspect', 'denied'].map((d) => `airlock_tunnels_total{decision="${d}"} 0`));
    for (const line of [
      'airlock_proxy_errors_total{code="denied"} 0',
      'airlock_proxy_errors_total{code="proxy_auth_required"} 0',
      'airlock_proxy_errors_total{code="approval_unavailable"} 0',
      'airlock_proxy_errors_total{code="upstream_error"} 0',
      'airlock_approvals_forged_total 0',
      'airlock_unhandled_rejections_total 0',
      'airlock_audit_errors_total 0',
    ]) {
      assert.ok(text.includes(`\n${line}\n`), `missing: ${line}`);
    }
    // The rules' series come with the policy; no policy, no version.
    assert.deepEqual(series(text, 'airlock_decisions_total'), []);
    assert.deepEqual(series(text, 'airlock_approvals_requested_total'), []);
    assert.deepEqual(series(text, 'airlock_policy_info'), []);
  });

  it('a policy in force sets its version and its rules\' series at 0; the next one replaces both, and what was counted stays', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-metrics-'));
    const policies = join(dir, 'policies');
    await mkdir(policies);
    await writeFile(join(policies, 'policy.yaml'), POLICY_V1);
    const metrics = createMetrics();
    const audit = await createAuditSink({ destination: join(dir, 'audit.jsonl') });
    const holder = await createPolicyHolder(policies, 60_000, { log: createLogger('silent'), metrics, audit }, 0);
    assert.ok('current' in holder);
    try {
      const v1 = holder.current().version;
      assert.deepEqual(series(await metrics.registry.metrics(), 'airlock_policy_info'), [], 'not announced before Airlock serves');
      holder.started();
      let text = await metrics.registry.metrics();
      assert.deepEqual(series(text, 'airlock_policy_info'), [`airlock_policy_info{version="${v1}"} 1`]);
      assert.deepEqual(series(text, 'airlock_policy_rules'), ['airlock_policy_rules 3']);
      assert.deepEqual(series(text, 'airlock_decisions_total'), [
        'airlock_decisions_total{action="deny",rule="(default)",mode="enforce"} 0',
        'airlock_decisions_total{action="allow",rule="reads",mode="enforce"} 0',
        'airlock_decisions_total{action="approve",rule="exports",mode="enforce"} 0',
        'airlock_decisions_total{action="deny",rule="watch",mode="report"} 0',
      ]);
      assert.deepEqual(series(text, 'airlock_approvals_requested_total'), ['airlock_approvals_requested_total{rule="exports"} 0']);
      metrics.decisions.inc({ action: 'allow', rule: 'reads', mode: 'enforce' });

      await writeFile(join(policies, 'policy.yaml'), POLICY_V2);
      const reloaded = await holder.reload(true);
      assert.ok(reloaded.ok && reloaded.changed);
      const v2 = holder.current().version;
      assert.notEqual(v2, v1);
      text = await metrics.registry.metrics();
      assert.deepEqual(series(text, 'airlock_policy_info'), [`airlock_policy_info{version="${v2}"} 1`], 'the old version is gone');
      assert.deepEqual(series(text, 'airlock_policy_rules'), ['airlock_policy_rules 1']);
      assert.deepEqual(series(text, 'airlock_decisions_total'), [
        'airlock_decisions_total{action="allow",rule="reads",mode="enforce"} 1',
        'airlock_decisions_total{action="allow",rule="(default)",mode="enforce"} 0',
        'airlock_decisions_total{action="approve",rule="uploads",mode="enforce"} 0',
      ]);
      assert.deepEqual(series(text, 'airlock_approvals_requested_total'), ['airlock_approvals_requested_total{rule="uploads"} 0']);
      assert.deepEqual(series(text, 'airlock_policy_reloads_total'), ['airlock_policy_reloads_total{result="success"} 1', 'airlock_policy_reloads_total{result="failure"} 0']);
    } finally {
      await holder.close();
      await audit.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
