import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/metrics/metrics.js';

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
});
