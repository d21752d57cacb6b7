/**
 * Prometheus metrics. Every instance owns its registry (tests and embedded uses create many);
 * labels are bounded sets only: no hosts, paths, identities or request ids. Counters whose label sets
 * are known up front (fixed ones at creation, the policy's rules when it comes into force) are
 * exported at 0 before their first event, so rate() and increase() alerts fire on that event.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';
import type { ApprovalState } from '../approvals/types.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { ErrorCode } from '../proxy/respond.js';
import { AIRLOCK_VERSION } from '../version.js';
import { FastCounter, FastHistogram } from './labelled.js';

export interface Metrics {
  registry: Registry;
  /** airlock_build_info{version,node}: always 1; Airlock's version and the Node.js runtime. */
  buildInfo: Gauge<'version' | 'node'>;
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
  /** airlock_policy_info{version}: 1 for the version hash of the policy in force, and no other series. */
  policyInfo: Gauge<'version'>;
  /**
   * A policy came into force: its version, rule count, and the label sets its rules can count
   * (exported at 0 until they do).
   */
  policyInForce(policy: Pick<CompiledPolicy, 'version' | 'defaultAction' | 'rules'>): void;
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
  /** airlock_channel_up{channel}: 1 when an approval channel (Slack, Teams) reaches its service; read at scrape time. */
  channelUp: Gauge;
  watchChannels(health: () => ReadonlyMap<string, boolean>): void;
  /** airlock_unhandled_rejections_total: failures nothing handled, logged and counted instead of ending the process. */
  unhandledRejections: Counter;
  /** airlock_channel_errors_total{channel}: posts and updates a channel failed (after its retries); approvals are not affected. */
  channelErrors: Counter<'channel'>;
}

/** 0.5 ms doubling to ~16 s: a policy decision is sub-millisecond, a slow upstream takes seconds. */
const LATENCY_BUCKETS = exponentialBuckets(0.0005, 2, 16);

// Label values known before anything happens, exported at 0 so that the first event moves a series
// alerts already see. A Record over the union type: a code added to ErrorCode must be listed here.
const ERROR_CODES: Record<ErrorCode, null> = {
  denied: null,
  approval_denied: null,
  approval_expired: null,
  approval_pending: null,
  approval_unavailable: null,
  bad_request: null,
  proxy_auth_required: null,
  body_too_large: null,
  too_many_requests: null,
  upstream_error: null,
};
const OUTCOMES: readonly Exclude<ApprovalState, 'pending'>[] = ['approved', 'denied', 'expired', 'cancelled', 'executed'];
/** Refused tunnels count under their error code; only `denied` is common enough to start at 0. */
const TUNNEL_DECISIONS = ['allow', 'inspect', 'denied'] as const;

export function createMetrics(): Metrics {
  const registry = new Registry();
  let storeReady: () => boolean = () => false;
  let channelHealth: () => ReadonlyMap<string, boolean> = () => new Map();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'airlock_' });
  const buildInfo = new Gauge({
    name: 'airlock_build_info',
    help: 'Always 1: the Airlock version and Node.js runtime of this process, as labels.',
    labelNames: ['version', 'node'] as const,
    registers,
  });
  buildInfo.set({ version: AIRLOCK_VERSION, node: process.version }, 1);
  const decisions = new FastCounter({
    name: 'airlock_decisions_total',
    help: 'Policy decisions, by action, deciding rule ("(default)" when none matched) and mode (enforce or report).',
    labelNames: ['action', 'rule', 'mode'] as const,
    registers,
  });
  const policyRules = new Gauge({
    name: 'airlock_policy_rules',
    help: 'Number of rules in the policy in force.',
    registers,
  });
  const policyInfo = new Gauge({
    name: 'airlock_policy_info',
    help: 'Always 1, for the version (content hash) of the policy in force; the series of the previous version is removed.',
    labelNames: ['version'] as const,
    registers,
  });
  const approvalsRequested = new FastCounter({
    name: 'airlock_approvals_requested_total',
    help: 'Requests held for approval (new approvals; identical requests that join one are not counted), by rule.',
    labelNames: ['rule'] as const,
    registers,
  });
  const proxyResponses = new FastCounter({
    name: 'airlock_proxy_errors_total',
    help: 'Responses Airlock made itself instead of forwarding, by error code (denied, bad_request, ...).',
    labelNames: ['code'] as const,
    registers,
  });
  proxyResponses.expose(Object.keys(ERROR_CODES).map((code) => ({ code })));
  const policyReloads = new FastCounter({
    name: 'airlock_policy_reloads_total',
    help: 'Policy load attempts, by result (success or failure).',
    labelNames: ['result'] as const,
    registers,
  });
  policyReloads.expose([{ result: 'success' }, { result: 'failure' }]);
  const tunnels = new FastCounter({
    name: 'airlock_tunnels_total',
    help: 'CONNECT tunnels, by decision.',
    labelNames: ['decision'] as const,
    registers,
  });
  tunnels.expose(TUNNEL_DECISIONS.map((decision) => ({ decision })));
  const approvalOutcomes = new FastCounter({
    name: 'airlock_approval_outcomes_total',
    help: 'Approvals leaving pending (approved, denied, expired, cancelled) and approvals spent (executed).',
    labelNames: ['state'] as const,
    registers,
  });
  approvalOutcomes.expose(OUTCOMES.map((state) => ({ state })));
  return {
    registry,
    buildInfo,
    decisions,
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
    proxyResponses,
    policyReloads,
    policyRules,
    policyInfo,
    policyInForce(policy) {
      policyRules.set(policy.rules.length);
      // One series: the old version's is removed, so sum() and count by (version) see what is in force.
      policyInfo.reset();
      policyInfo.set({ version: policy.version }, 1);
      // A rule only ever counts under its own action (and mode).
      decisions.expose([
        { action: policy.defaultAction, rule: '(default)', mode: 'enforce' },
        ...policy.rules.map((r) => ({ action: r.action, rule: r.id, mode: r.mode })),
      ]);
      // Only enforcing approve rules hold requests.
      approvalsRequested.expose(policy.rules.filter((r) => r.action === 'approve' && r.mode === 'enforce').map((r) => ({ rule: r.id })));
    },
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
    tunnels,
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
    approvalsRequested,
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
    approvalOutcomes,
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
    channelErrors: new Counter({
      name: 'airlock_channel_errors_total',
      help: 'Posts and updates of an approval channel that failed after their retries: approvers there were not told (approvals themselves are unaffected).',
      labelNames: ['channel'] as const,
      registers,
    }),
  };
}
