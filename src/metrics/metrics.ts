/**
 * Prometheus metrics. Every instance owns its registry (tests and embedded uses create many);
 * labels are bounded sets only: no hosts, paths, identities or request ids.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import { FastCounter, FastHistogram } from './labelled.js';

export interface Metrics {
  registry: Registry;
  /** airlock_decisions_total{action,rule,mode}: rule is the deciding rule id or "(default)"; mode enforce|report. */
  decisions: FastCounter<'action' | 'rule' | 'mode'>;
  /** airlock_request_duration_seconds{action}: from receipt of the request to the end of the response. */
  requestDuration: FastHistogram<'action'>;
  /** airlock_upstream_duration_seconds{status_class}: to the upstream's response headers; 1xx..5xx or error. */
  upstreamDuration: FastHistogram<'status_class'>;
  /** airlock_proxy_errors_total{code}: responses Airlock made itself, by their `error` code. */
  proxyResponses: FastCounter<'code'>;
  /** airlock_policy_reloads_total{result}: success|failure. */
  policyReloads: FastCounter<'result'>;
  /** airlock_policy_rules: rules in the policy in force. */
  policyRules: Gauge;
  /** airlock_policy_last_reload_success_timestamp_seconds. */
  policyLastReloadSuccess: Gauge;
  /** airlock_policy_loaded_ok: 1 when the last load attempt succeeded (on failure the old policy stays in force). */
  policyLoaded: Gauge;
  /** airlock_tunnels_total{decision}: CONNECT tunnels by outcome. */
  tunnels: FastCounter<'decision'>;
  /** airlock_audit_events_total{event}: events handed to the audit sink. */
  auditEvents: FastCounter<'event'>;
  /** airlock_audit_errors_total: audit writes that failed (the trail has a gap). */
  auditErrors: Counter;
  /** airlock_approvals_requested_total{rule}: new approvals (identical requests joining one are not counted). */
  approvalsRequested: FastCounter<'rule'>;
  /** airlock_approvals_held: client connections held waiting for a decision on this replica. */
  approvalsHeld: Gauge;
  /** airlock_approval_outcomes_total{state}: approved, denied, expired, cancelled, executed. */
  approvalOutcomes: FastCounter<'state'>;
  /** airlock_approvals_forged_total: approvals refused at forwarding because their seals did not hold (state written by someone else). */
  approvalsForged: Counter;
  /** airlock_approval_decision_seconds{state}: from the request being held to the decision. */
  approvalDecisionSeconds: FastHistogram<'state'>;
  /** airlock_approval_store_up: 1 when the approval store answers; read at scrape time from what `watchApprovalStore` was given. */
  approvalStoreUp: Gauge;
  watchApprovalStore(ready: () => boolean): void;
  /** airlock_channel_up{channel}: 1 when an approval channel (Slack) reaches its service; read at scrape time. */
  channelUp: Gauge;
  watchChannels(health: () => ReadonlyMap<string, boolean>): void;
  /** airlock_unhandled_rejections_total: failures nothing handled, logged and counted instead of ending the process. */
  unhandledRejections: Counter;
}

/** 0.5 ms doubling to ~16 s: a policy decision is sub-millisecond, a slow upstream takes seconds. */
const LATENCY_BUCKETS = exponentialBuckets(0.0005, 2, 16);

export function createMetrics(): Metrics {
  const registry = new Registry();
  let storeReady: () => boolean = () => false;
  let channelHealth: () => ReadonlyMap<string, boolean> = () => new Map();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'airlock_' });
  return {
    registry,
    decisions: new FastCounter({
      name: 'airlock_decisions_total',
      help: 'Policy decisions, by action, deciding rule ("(default)" when none matched) and mode (enforce or report).',
      labelNames: ['action', 'rule', 'mode'] as const,
      registers,
    }),
    requestDuration: new FastHistogram({
      name: 'airlock_request_duration_seconds',
      help: 'Time from receiving a proxied request to the end of its response, by decided action.',
      labelNames: ['action'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    upstreamDuration: new FastHistogram({
      name: 'airlock_upstream_duration_seconds',
      help: 'Time from sending a request upstream to its response headers, by status class (or "error").',
      labelNames: ['status_class'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    proxyResponses: new FastCounter({
      name: 'airlock_proxy_errors_total',
      help: 'Responses Airlock made itself instead of forwarding, by error code (denied, bad_request, ...).',
      labelNames: ['code'] as const,
      registers,
    }),
    policyReloads: new FastCounter({
      name: 'airlock_policy_reloads_total',
      help: 'Policy load attempts, by result (success or failure).',
      labelNames: ['result'] as const,
      registers,
    }),
    policyRules: new Gauge({
      name: 'airlock_policy_rules',
      help: 'Number of rules in the policy in force.',
      registers,
    }),
    policyLastReloadSuccess: new Gauge({
      name: 'airlock_policy_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful policy load.',
      registers,
    }),
    policyLoaded: new Gauge({
      name: 'airlock_policy_loaded_ok',
      help: '1 if the last policy load attempt succeeded, 0 if it failed (the previous policy stays in force).',
      registers,
    }),
    tunnels: new FastCounter({
      name: 'airlock_tunnels_total',
      help: 'CONNECT tunnels, by decision.',
      labelNames: ['decision'] as const,
      registers,
    }),
    auditEvents: new FastCounter({
      name: 'airlock_audit_events_total',
      help: 'Events written to the audit trail, by event type.',
      labelNames: ['event'] as const,
      registers,
    }),
    auditErrors: new Counter({
      name: 'airlock_audit_errors_total',
      help: 'Audit writes that failed: the audit trail is missing events.',
      registers,
    }),
    approvalsRequested: new FastCounter({
      name: 'airlock_approvals_requested_total',
      help: 'Requests held for approval (new approvals; identical requests that join one are not counted), by rule.',
      labelNames: ['rule'] as const,
      registers,
    }),
    approvalsHeld: new Gauge({
      name: 'airlock_approvals_held',
      help: 'Client connections this replica holds open while a human decides.',
      registers,
    }),
    approvalsForged: new Counter({
      name: 'airlock_approvals_forged_total',
      help: 'Approved requests not forwarded because their record or votes lacked a valid seal: approval state written by something other than Airlock.',
      registers,
    }),
    approvalOutcomes: new FastCounter({
      name: 'airlock_approval_outcomes_total',
      help: 'Approvals leaving pending (approved, denied, expired, cancelled) and approvals spent (executed).',
      labelNames: ['state'] as const,
      registers,
    }),
    approvalDecisionSeconds: new FastHistogram({
      name: 'airlock_approval_decision_seconds',
      help: 'Time from a request being held to the decision, by outcome.',
      labelNames: ['state'] as const,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    }),
    approvalStoreUp: new Gauge({
      name: 'airlock_approval_store_up',
      help: 'Whether the approval store (memory or Redis) answers: 0 means requests needing approval fail closed with 503.',
      registers,
      collect() {
        this.set(storeReady() ? 1 : 0);
      },
    }),
    watchApprovalStore(ready) {
      storeReady = ready;
    },
    channelUp: new Gauge({
      name: 'airlock_channel_up',
      help: 'Whether an approval channel reaches its service (0: approvers there are not told; the approvals API still works).',
      labelNames: ['channel'] as const,
      registers,
      collect() {
        for (const [channel, up] of channelHealth()) this.set({ channel }, up ? 1 : 0);
      },
    }),
    watchChannels(health) {
      channelHealth = health;
    },
    unhandledRejections: new Counter({
      name: 'airlock_unhandled_rejections_total',
      help: 'Failures that nothing handled: logged and counted; the proxy goes on.',
      registers,
    }),
  };
}
