/**
 * Tracing on the OpenTelemetry SDK, exported over OTLP/HTTP (JSON). Imported only by openTracing
 * (tracing.ts) when an endpoint is configured. Contexts are passed explicitly, span to span: no
 * global context manager (AsyncLocalStorage) is installed, so nothing else in the process changes.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, resourceAttributesEnvDetector, resourceFromAttributes, serviceNameEnvDetector } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import type { VoteOutcome } from '../approvals/service.js';
import { HeaderList } from '../request/headers.js';
import type { Logger } from '../log.js';
import type { CanonicalRequest, Decision } from '../policy/types.js';
import { AIRLOCK_VERSION } from '../version.js';
import { pathTemplate } from './path-template.js';
import type { RequestTrace, Tracing, VoteAttempt } from './tracing.js';

/** Airlock's own span attributes (the HTTP ones are OpenTelemetry's semantic conventions). */
const ATTR = {
  requestId: 'airlock.request_id',
  via: 'airlock.via',
  rule: 'airlock.rule',
  action: 'airlock.action',
  identity: 'airlock.identity',
  error: 'airlock.error',
  approvalId: 'airlock.approval.id',
  grantId: 'airlock.grant.id',
  holdOutcome: 'airlock.hold.outcome',
  approver: 'airlock.approver',
  verdict: 'airlock.vote.verdict',
  edited: 'airlock.vote.edited',
  voteResult: 'airlock.vote.result',
  voteRefusal: 'airlock.vote.refusal',
  approvalState: 'airlock.approval.state',
} as const;

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);

/** What a held request's refusal code says about its approval. */
const HOLD_OUTCOMES: Readonly<Record<string, string>> = {
  approval_denied: 'denied',
  approval_expired: 'expired',
  approval_pending: 'pending',
  approval_unavailable: 'unavailable',
  too_many_requests: 'limited',
  // Approved, then the policy in force denies it (or its edited form).
  denied: 'revoked',
};

const UPSTREAM_ERRORS: Readonly<Record<number, string>> = { 403: 'destination_refused', 504: 'timeout' };

/** At shutdown, buffered spans get this long to reach the collector: a dead collector must not hold up the exit. */
const SHUTDOWN_FLUSH_MS = 5000;

function methodAttributes(method: string): Attributes {
  return KNOWN_METHODS.has(method) ? { [ATTR_HTTP_REQUEST_METHOD]: method } : { [ATTR_HTTP_REQUEST_METHOD]: '_OTHER', [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: method };
}

function targetAttributes(canon: CanonicalRequest): Attributes {
  return { [ATTR_URL_SCHEME]: canon.scheme, [ATTR_SERVER_ADDRESS]: canon.host, [ATTR_SERVER_PORT]: canon.port, [ATTR_HTTP_ROUTE]: pathTemplate(canon.path) };
}

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG as the specification names them; parent-based, always on, by default. */
function samplerFromEnv(env: NodeJS.ProcessEnv, log: Logger): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || 'parentbased_always_on';
  const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? 1);
  const ratio = (): Sampler => new TraceIdRatioBasedSampler(Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1);
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    default:
      if (name !== 'parentbased_always_on') log.warn({ sampler: name }, 'tracing: unknown OTEL_TRACES_SAMPLER; sampling as parentbased_always_on');
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

function numberFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const n = Number(env[name]);
  return env[name]?.trim() && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Where spans go, without credentials or query, for the log line. */
function endpointOf(env: NodeJS.ProcessEnv): string {
  const raw = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || `${env.OTEL_EXPORTER_OTLP_ENDPOINT!.trim().replace(/\/+$/, '')}/v1/traces`;
  try {
    const u = new URL(raw);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

export class OtelTracing implements Tracing {
  readonly tracer: Tracer;
  readonly propagator = new W3CTraceContextPropagator();
  /** The hold spans of requests held here, by approval id: a vote cast in this process links to them. */
  readonly held = new Map<string, SpanContext>();
  private readonly provider: TracerProvider;

  /** `env` is process.env: the exporter reads its OTEL_EXPORTER_OTLP_* settings (endpoint, headers, timeout, TLS) from there itself. */
  constructor(
    env: NodeJS.ProcessEnv,
    replica: string,
    private readonly log: Logger,
  ) {
    const warn = (message: string, ...args: unknown[]): void => log.warn({ detail: args.length > 0 ? args.map(String) : undefined }, `tracing: ${message}`);
    const quiet = (): void => {};
    diag.setLogger({ error: warn, warn, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
    const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim();
    if (protocol && protocol !== 'http/json') log.warn({ protocol }, 'tracing: Airlock exports OTLP over HTTP with JSON (http/json), which collectors accept on the same /v1/traces endpoint');
    const resource = defaultResource()
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'airlock', [ATTR_SERVICE_VERSION]: AIRLOCK_VERSION, 'service.instance.id': replica }))
      // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the above.
      .merge(detectResources({ detectors: [resourceAttributesEnvDetector, serviceNameEnvDetector] }));
    const batch = {
      scheduledDelayMillis: numberFromEnv(env, 'OTEL_BSP_SCHEDULE_DELAY'),
      exportTimeoutMillis: numberFromEnv(env, 'OTEL_BSP_EXPORT_TIMEOUT'),
      maxQueueSize: numberFromEnv(env, 'OTEL_BSP_MAX_QUEUE_SIZE'),
      maxExportBatchSize: numberFromEnv(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    };
    this.provider = new TracerProvider({
      resource,
      sampler: samplerFromEnv(env, log),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), ...batch })],
    });
    this.tracer = this.provider.getTracer('airlock', AIRLOCK_VERSION);
    log.info({ endpoint: endpointOf(env), service_name: resource.attributes[ATTR_SERVICE_NAME] }, 'tracing: exporting spans over OTLP/HTTP');
  }

  request(req: IncomingMessage, answer: ServerResponse | Duplex, requestId: string, via: string): RequestTrace {
    return new OtelRequestTrace(this, req, answer, requestId, via);
  }

  async vote(what: VoteAttempt, cast: () => Promise<VoteOutcome>): Promise<VoteOutcome> {
    // A vote comes in its own request (API, Slack, Teams, inbox): its own trace, linked to the held
    // request's when that is held here. Elsewhere the approval id finds both.
    const held = this.held.get(what.approvalId);
    const span = this.tracer.startSpan(
      'airlock.vote',
      {
        attributes: { [ATTR.approvalId]: what.approvalId, [ATTR.approver]: what.approver, [ATTR.verdict]: what.verdict, ...(what.edited ? { [ATTR.edited]: true } : {}) },
        links: held ? [{ context: held }] : [],
      },
      ROOT_CONTEXT,
    );
    try {
      const outcome = await cast();
      span.setAttribute(ATTR.voteResult, outcome.ok ? 'counted' : 'refused');
      if (!outcome.ok) span.setAttribute(ATTR.voteRefusal, outcome.status);
      if (outcome.record) span.setAttribute(ATTR.approvalState, outcome.record.state);
      return outcome;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  }

  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({}, `tracing: spans not exported within ${SHUTDOWN_FLUSH_MS} ms of shutdown were dropped`);
        resolve();
      }, SHUTDOWN_FLUSH_MS);
    });
    try {
      await Promise.race([this.provider.shutdown().catch((err: unknown) => this.log.warn({ err }, 'tracing: shutdown failed')), late]);
    } finally {
      clearTimeout(timer);
    }
  }
}

class OtelRequestTrace implements RequestTrace {
  private readonly started = performance.now();
  private readonly span: Span;
  /** The request span's context: every other span of the request is its child. */
  private readonly context: Context;
  /** Sampled out: spans are not recorded, only the trace context is passed on (marked unsampled). */
  private readonly sampled: boolean;
  /** The answer is closed: the request span has ended (a late refusal or forward result only ends its own span). */
  private ended = false;
  private holdSpan: Span | null = null;
  private forwardSpan: Span | null = null;
  private approvalId: string | null = null;
  private grantId: string | null = null;
  /** The status of a refusal written on a raw socket (an upgrade), which has no ServerResponse to read it from. */
  private refusedStatus = 0;
  /** The target's attributes, for the request span and again for the forward span. */
  private target: { canon: CanonicalRequest; attributes: Attributes } | null = null;

  constructor(
    private readonly t: OtelTracing,
    req: IncomingMessage,
    private readonly answer: ServerResponse | Duplex,
    requestId: string,
    via: string,
  ) {
    const parent = t.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    this.span = t.tracer.startSpan('airlock.request', { kind: SpanKind.SERVER, attributes: { ...methodAttributes(req.method ?? ''), [ATTR.requestId]: requestId, [ATTR.via]: via } }, parent);
    this.sampled = (this.span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
    this.context = trace.setSpan(parent, this.span);
    answer.once('close', () => this.end());
  }

  decided(canon: CanonicalRequest, decision: Decision): void {
    if (!this.sampled || this.ended) return;
    const attributes = { [ATTR.rule]: decision.rule ?? '(default)', [ATTR.action]: decision.action };
    this.span.setAttributes({ ...this.targetOf(canon), ...attributes, ...(canon.identity ? { [ATTR.identity]: canon.identity.id } : {}) });
    // From the request's arrival: reading, identifying and (when rules need it) inspecting the body are part of deciding.
    this.t.tracer.startSpan('airlock.decide', { startTime: this.started, attributes }, this.context).end(performance.now());
  }

  refused(status: number, code: string, canon?: CanonicalRequest): void {
    this.refusedStatus = status;
    if (this.sampled && !this.ended) this.span.setAttributes({ [ATTR.error]: code, ...(canon ? this.targetOf(canon) : {}) });
    this.endHold(HOLD_OUTCOMES[code] ?? 'refused');
  }

  hold(): void {
    if (!this.ended) this.holdSpan = this.t.tracer.startSpan('airlock.hold', {}, this.context);
  }

  approval(approvalId: string, grantId?: string): void {
    this.approvalId = approvalId;
    if (grantId !== undefined) this.grantId = grantId;
    if (!this.ended) this.span.setAttribute(ATTR.approvalId, approvalId);
    if (this.holdSpan === null) return;
    this.holdSpan.setAttributes({ [ATTR.approvalId]: approvalId, ...(grantId === undefined ? {} : { [ATTR.grantId]: grantId }) });
    this.t.held.set(approvalId, this.holdSpan.spanContext());
  }

  forwarding(canon: CanonicalRequest): CanonicalRequest {
    this.endHold(this.grantId === null ? 'approved' : 'granted');
    const attributes = this.sampled ? { ...methodAttributes(canon.method), ...this.targetOf(canon), ...(this.approvalId === null ? {} : { [ATTR.approvalId]: this.approvalId }) } : {};
    const span = this.t.tracer.startSpan('airlock.forward', { kind: SpanKind.CLIENT, attributes }, this.context);
    this.forwardSpan = span;
    // The upstream continues this trace from the forward span; the caller's own trace headers are replaced, nothing else is added.
    const carrier: Record<string, string> = {};
    this.t.propagator.inject(trace.setSpan(this.context, span), carrier, defaultTextMapSetter);
    const flat: string[] = [];
    const f = canon.headers.flat;
    for (let i = 0; i < f.length; i += 2) if (f[i] !== 'traceparent' && f[i] !== 'tracestate') flat.push(f[i]!, f[i + 1]!);
    for (const [name, value] of Object.entries(carrier)) flat.push(name, value);
    return { ...canon, headers: new HeaderList(flat) };
  }

  private targetOf(canon: CanonicalRequest): Attributes {
    const t = this.target;
    // An approved edit is a new request object for the same target.
    if (t !== null && (t.canon === canon || (t.canon.path === canon.path && t.canon.host === canon.host && t.canon.port === canon.port && t.canon.scheme === canon.scheme))) return t.attributes;
    this.target = { canon, attributes: targetAttributes(canon) };
    return this.target.attributes;
  }

  forwarded(status: number, failed = false): void {
    const span = this.forwardSpan;
    if (span === null) return;
    this.forwardSpan = null;
    if (failed) {
      span.setAttribute(ATTR_ERROR_TYPE, UPSTREAM_ERRORS[status] ?? 'upstream_error');
      span.setStatus({ code: SpanStatusCode.ERROR });
    } else {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }

  private endHold(outcome: string): void {
    const span = this.holdSpan;
    if (span === null) return;
    this.holdSpan = null;
    span.setAttribute(ATTR.holdOutcome, outcome);
    span.end();
    if (this.approvalId !== null && this.t.held.get(this.approvalId) === span.spanContext()) this.t.held.delete(this.approvalId);
  }

  private end(): void {
    this.ended = true;
    const answer = this.answer;
    const http = answer instanceof ServerResponse;
    // The client went away before its answer was complete (an upgrade's socket just closes when done).
    const cut = http && !answer.writableFinished;
    // Still holding at the end: a 202 (Prefer: respond-async) left the approval pending, or the agent left.
    this.endHold(cut ? 'abandoned' : 'pending');
    if (this.forwardSpan !== null) {
      // The answer can be complete before forward() hears of it: the upstream's status is the agent's.
      if (http && !cut) this.forwarded(answer.statusCode);
      else {
        if (cut) this.forwardSpan.setAttribute(ATTR_ERROR_TYPE, 'client_closed');
        this.forwardSpan.end();
        this.forwardSpan = null;
      }
    }
    const status = http ? (answer.headersSent ? answer.statusCode : 0) : this.refusedStatus;
    if (status > 0) this.span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    else if (cut) this.span.setAttribute(ATTR_ERROR_TYPE, 'client_closed');
    if (status >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR });
    this.span.end();
  }
}
