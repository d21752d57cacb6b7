/**
 * What the request pipeline and the approval service see of tracing. This module loads no
 * OpenTelemetry code: the SDK (otel.ts) is imported only when an OTLP endpoint is configured, and
 * without one every hook is a null check (`x.trace?.…`, `deps.tracing ? … : …`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { VoteOutcome } from '../approvals/service.js';
import type { Logger } from '../log.js';
import type { CanonicalRequest, Decision } from '../policy/types.js';

export interface Tracing {
  /**
   * The `airlock.request` span of one proxied request, continuing the caller's W3C `traceparent`. It
   * ends when `answer` closes, with the status the agent was answered with.
   */
  request(req: IncomingMessage, answer: ServerResponse | Duplex, requestId: string, via: string): RequestTrace;
  /** An approver's vote (or edit and approval) as an `airlock.vote` span around `cast`. */
  vote(what: VoteAttempt, cast: () => Promise<VoteOutcome>): Promise<VoteOutcome>;
  /** Export what is still buffered; spans ended later are dropped. */
  close(): Promise<void>;
}

export interface VoteAttempt {
  approvalId: string;
  approver: string;
  verdict: 'approve' | 'deny';
  /** Approved with edits (ApprovalService.approveWithEdit). */
  edited: boolean;
}

/** One request's spans; the pipeline reports what happens and this decides which span it belongs to. */
export interface RequestTrace {
  /** The policy's decision is settled: the `airlock.decide` span, from the request's arrival to now. */
  decided(canon: CanonicalRequest, decision: Decision): void;
  /** Airlock answers the request itself (refusal, failure); ends an open hold with the outcome the code means. */
  refused(status: number, code: string, canon?: CanonicalRequest): void;
  /** The request is held for approval: the `airlock.hold` span starts. */
  hold(): void;
  /** The approval the held request waits for (or the grant that lets it go without asking, and its approval). */
  approval(approvalId: string, grantId?: string): void;
  /**
   * The `airlock.forward` span starts (ending an open hold as approved or granted). Returns the request
   * to send: `canon` with a `traceparent` naming that span in place of the caller's.
   */
  forwarding(canon: CanonicalRequest): CanonicalRequest;
  /** The upstream answered with `status`, or could not be reached (`failed`: 403 refused address, 502, 504). */
  forwarded(status: number, failed?: boolean): void;
}

/** Whether the environment asks for traces: an OTLP endpoint, and the SDK not disabled. */
export function tracingConfigured(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}

/** Tracing as the environment configures it, or null (and no OpenTelemetry module loaded) when it does not. */
export async function openTracing(env: NodeJS.ProcessEnv, replica: string, log: Logger): Promise<Tracing | null> {
  if (!tracingConfigured(env)) return null;
  const { OtelTracing } = await import('./otel.js');
  return new OtelTracing(env, replica, log);
}
