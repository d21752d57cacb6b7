import type { SecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import type { LeafCache } from '../tls/leaf-cache.js';
import type { Guard } from './destination-guard.js';
import type { PassThrough } from './pass-through.js';
import type { TunnelLimits } from './tunnel-limits.js';
import type { ApprovalService } from '../approvals/service.js';
import type { AuditSink } from '../audit/sink.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { Tracing } from '../tracing/tracing.js';

/** Everything the proxy listeners share. The policy is read through `policy()` so a reload swaps it atomically. */
export interface ProxyContext {
  policy(): CompiledPolicy;
  /** The identity of every caller without credentials, for one-agent sidecars; null = anonymous. */
  staticIdentity: string | null;
  agent: Dispatcher;
  /** http-proxy-3 for reverse routes and WebSockets, dialling through the guard too. */
  passThrough: PassThrough;
  /** Upstream TLS trust for dials outside the agent (WebSockets), built once; undefined = Node's defaults. */
  upstreamTls: SecureContext | undefined;
  /** Connect timeout for raw tunnels (forwarded requests use the agent's own). */
  connectTimeoutMs: number;
  /** A client must have sent a request's headers within this long. */
  clientHeadersTimeoutMs: number;
  /** A body Airlock reads (held or inspected) must have arrived within this long. */
  clientBodyTimeoutMs: number;
  /** Open tunnels per caller, and how long one may sit idle. */
  tunnelLimits: TunnelLimits;
  audit: AuditSink;
  metrics: Metrics;
  log: Logger;
  approvals: ApprovalService;
  /** Spans for each request when an OTLP endpoint is configured; null (no tracing code runs) otherwise. */
  tracing: Tracing | null;
  /** Largest body a request held for approval may carry (it is buffered and stored with the approval). */
  maxHeldBodyBytes: number;
  /** Most of a body read for rules that inspect it; a larger body gets the most restrictive outcome they could give. */
  maxInspectedBodyBytes: number;
  /** TLS interception, when a CA is configured: CONNECTs to hosts whose rules inspect requests are terminated with its leaves. */
  interception: Interception | null;
  /** The destination guard for the policy in force: which resolved addresses may be dialled. */
  guard(): Guard;
  /** True when host:port is one of Airlock's own listeners: the proxy never forwards to itself. */
  isOwnListener(host: string, port: number): boolean;
}

export interface Interception {
  leaves: LeafCache;
}
