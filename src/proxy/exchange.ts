import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { CanonicalRequest, CompiledPolicy, Decision, Identity, ReverseRoute } from '../policy/types.js';
import type { RequestTrace } from '../tracing/tracing.js';
import { identify } from '../request/identify.js';
import type { ProxyContext } from './context.js';
import { sendError, writeSocketError, type ProxyError } from './respond.js';
import { sendRpcAnswer } from './rpc-answer.js';
import { forward, type ForwardBody, type ForwardResult, type ResponseRewriter } from './upstream.js';

/** How a request reached the proxy. */
export type Entry =
  /** Absolute-form request on the proxy listener (HTTP_PROXY). */
  | { via: 'proxy' }
  /** Origin-form request on the proxy listener: a reverse-proxy route. */
  | { via: 'route' }
  /** Origin-form request inside a CONNECT tunnel: destination and identity come from the CONNECT. */
  | { via: 'tunnel'; scheme: 'http' | 'https'; host: string; port: number; identity: Identity | null };

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** One request and its response while Airlock handles it: its id, its timing, and the two ways it can end here. */
export class Exchange {
  readonly started = performance.now();
  readonly requestId = randomUUID();
  /** The reverse route an origin-form request was mapped onto (decide.ts), which answers are rewritten for. */
  route: ReverseRoute | null = null;
  /** This request's spans, or null when tracing is off. */
  readonly trace: RequestTrace | null;

  constructor(
    readonly req: IncomingMessage,
    /** The response of an HTTP request, or the raw socket of an upgrade request. */
    readonly answer: ServerResponse | Duplex,
    readonly entry: Entry,
    readonly ctx: ProxyContext,
    /** Read once: a reload never changes the rules halfway through a request. */
    readonly policy: CompiledPolicy,
  ) {
    this.trace = ctx.tracing === null ? null : ctx.tracing.request(req, answer, this.requestId, entry.via);
  }

  /** The HTTP response (an upgrade request has none: Airlock answers on its socket). */
  get res(): ServerResponse {
    if (!(this.answer instanceof ServerResponse)) throw new Error('an upgrade request has no ServerResponse');
    return this.answer;
  }

  /**
   * Answer with Airlock's JSON error. A refusal before any policy decision (malformed, unauthenticated)
   * is written to the audit trail here; after a decision, the decision's event already says it.
   */
  refuse(e: Omit<ProxyError, 'requestId'>, canon?: CanonicalRequest, decision?: Decision): void {
    const { ctx } = this;
    this.trace?.refused(e.status, e.code, canon);
    ctx.metrics.proxyResponses.inc({ code: e.code });
    if (!decision) {
      ctx.audit.write({
        event: 'request',
        request_id: this.requestId,
        decision: 'refused',
        rule: null,
        identity: (canon ? canon.identity : this.caller())?.id ?? null,
        status: e.status,
        error: e.code,
        method: this.req.method,
        host: canon?.host,
        rules: [],
        client: this.req.socket.remoteAddress,
        via: this.entry.via,
        policy_version: this.policy.version,
        reason: e.message,
        path: canon?.path,
        // What was sent, when it could not be read as a request: the audit sink escapes and caps it.
        target: canon ? undefined : this.req.url,
      });
    }
    // A request already decided (held, or allowed) and then answered here — refused after its decision,
    // or its upstream failed: what it was told is recorded too (a denial's own event already says it).
    if (decision && decision.action !== 'deny') {
      ctx.audit.write({
        event: 'request_answered',
        request_id: this.requestId,
        rule: e.rule ?? decision.rule,
        identity: canon?.identity?.id ?? null,
        status: e.status,
        error: e.code,
        approval_id: e.approvalId ?? undefined,
        reason: e.message,
      });
    }
    // On record before the agent is answered.
    ctx.audit.commit();
    const full = { ...e, requestId: this.requestId };
    const rpc = canon?.body?.rpc;
    if (!(this.answer instanceof ServerResponse)) writeSocketError(this.answer, full);
    // A JSON-RPC caller (MCP) gets the refusal in its own protocol, for each call.
    else if (!rpc || !sendRpcAnswer(this.answer, rpc, full)) sendError(this.answer, full);
    ctx.metrics.requestDuration.observe({ action: decision?.action ?? 'refused' }, (performance.now() - this.started) / 1000);
  }

  /** 408 for a body that did not arrive in time; the connection is closed (the rest may still be coming). */
  bodyTimedOut(canon: CanonicalRequest, decision?: Decision): void {
    const message = `the request's body did not arrive within ${this.ctx.clientBodyTimeoutMs} ms`;
    this.refuse({ status: 408, code: 'bad_request', message, headers: { connection: 'close' } }, canon, decision);
    this.req.socket.destroySoon();
  }

  /** Who sent a request refused before it was identified: the tunnel's identity, its credentials, or the sidecar's. */
  private caller(): Identity | null {
    if (this.entry.via === 'tunnel') return this.entry.identity;
    const who = identify(this.req.headers['proxy-authorization'], this.ctx.staticIdentity, this.policy);
    return who.ok ? who.identity : null;
  }

  /**
   * Forward upstream and stream the answer back; upstream failures become 502/504 (or a cut connection
   * mid-body). Resolves with the status the agent was answered with.
   */
  async forward(canon: CanonicalRequest, body: ForwardBody, decision: Decision, rewriter: ResponseRewriter | null = null): Promise<number> {
    const { ctx, res } = this;
    // With tracing on, what goes out carries a traceparent naming the forward span.
    const sent = this.trace ? this.trace.forwarding(canon) : canon;
    const upstreamStarted = performance.now();
    const upstreamTime = (): number => (performance.now() - upstreamStarted) / 1000;
    const onHeaders = (status: number): void => ctx.metrics.upstreamDuration.observe({ status_class: statusClass(status) }, upstreamTime());
    const result = this.route
      ? await ctx.passThrough.route(this.req, res, sent, this.route, body, this.requestId, onHeaders)
      : await forward(sent, body, res, ctx.agent, this.requestId, onHeaders, rewriter);
    if (!result.ok) {
      if (result.status !== 403 && !result.headersSent) ctx.metrics.upstreamDuration.observe({ status_class: 'error' }, upstreamTime());
      this.upstreamFailed(result, canon, decision);
      return result.status;
    }
    this.trace?.forwarded(result.status);
    ctx.metrics.requestDuration.observe({ action: decision.action }, (performance.now() - this.started) / 1000);
    return result.status;
  }

  /**
   * The upstream could not be reached: the destination guard refused the address (403, recorded as
   * `destination_refused`), or it failed or timed out (502/504, logged); a response already under way
   * is cut off instead.
   */
  upstreamFailed(result: Extract<ForwardResult, { ok: false }>, canon: CanonicalRequest, decision: Decision): void {
    const { ctx } = this;
    this.trace?.forwarded(result.status, true);
    if (result.status === 403) {
      ctx.audit.write({ event: 'destination_refused', request_id: this.requestId, host: canon.host, port: canon.port, reason: result.message });
      this.refuse({ status: 403, code: 'denied', message: result.message, rule: decision.rule }, canon, decision);
      return;
    }
    ctx.log.warn({ request_id: this.requestId, host: canon.host, port: canon.port, status: result.status }, result.message);
    if (result.headersSent) this.answer.destroy();
    else this.refuse({ status: result.status, code: 'upstream_error', message: result.message, rule: decision.rule }, canon, decision);
  }
}
