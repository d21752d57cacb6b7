import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { evaluate } from '../policy/evaluate.js';
import type { CanonicalRequest, Decision, Identity } from '../policy/types.js';
import { canonicalize, type RawRequest } from '../request/canonicalize.js';
import { credentialsRequired, identify } from '../request/identify.js';
import type { ProxyContext } from './context.js';
import { sendError, type ProxyError } from './respond.js';
import { routeRequest, ROUTE_PLACEHOLDER } from './routes.js';
import { forward } from './upstream.js';

/** How a request reached the proxy. */
export type Entry =
  /** Absolute-form request on the proxy listener (HTTP_PROXY). */
  | { via: 'proxy' }
  /** Origin-form request on the proxy listener: a reverse-proxy route. */
  | { via: 'route' }
  /** Origin-form request inside a CONNECT tunnel: destination and identity come from the CONNECT. */
  | { via: 'tunnel'; host: string; port: number; identity: Identity | null };

export const PROXY_AUTHENTICATE = { 'proxy-authenticate': 'Basic realm="airlock"' };

/** What Airlock answers itself for a decision that doesn't forward. */
function refusalFor(decision: Decision): Omit<ProxyError, 'requestId'> | null {
  switch (decision.action) {
    case 'deny':
      return { status: 403, code: 'denied', message: decision.reason };
    case 'approve':
      return { status: 503, code: 'approval_unavailable', message: 'this request needs approval, and no approval store is available: refused (fail closed)' };
    default:
      return null;
  }
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** Decide one HTTP request and act on the decision: forward, refuse, or (until approvals exist) fail closed. */
export async function handleRequest(req: IncomingMessage, res: ServerResponse, entry: Entry, ctx: ProxyContext): Promise<void> {
  const started = performance.now();
  const requestId = randomUUID();
  const policy = ctx.policy();
  const fail = (e: Omit<ProxyError, 'requestId'>, canon?: CanonicalRequest, decision?: Decision): void => {
    ctx.metrics.proxyResponses.inc({ code: e.code });
    if (!decision) {
      // Refused before a policy decision (malformed, unauthenticated): still one audit event.
      ctx.audit.write({
        event: 'request',
        request_id: requestId,
        identity: canon?.identity?.id ?? null,
        method: req.method,
        host: canon?.host,
        path: canon?.path,
        rules: [],
        decision: 'refused',
        reason: e.message,
        status: e.status,
        error: e.code,
        client: req.socket.remoteAddress,
        via: entry.via,
        policy_version: policy.version,
      });
    }
    sendError(res, { ...e, requestId });
    ctx.metrics.requestDuration.observe({ action: decision?.action ?? 'refused' }, (performance.now() - started) / 1000);
  };

  const raw: RawRequest = { method: req.method ?? '', target: req.url ?? '', rawHeaders: req.rawHeaders };
  if (entry.via === 'tunnel') raw.destination = { scheme: 'http', host: entry.host, port: entry.port };
  if (entry.via === 'route') {
    raw.destination = ROUTE_PLACEHOLDER;
    raw.hostHeader = 'ignore';
  }
  const parsed = canonicalize(raw, null, policy);
  if (!parsed.ok) return fail({ status: 400, code: 'bad_request', message: parsed.message });
  let canon = parsed.request;

  if (entry.via === 'tunnel') {
    canon.identity = entry.identity;
  } else {
    const who = identify(canon.headers['proxy-authorization'], ctx.staticIdentity, policy);
    if (!who.ok) {
      return fail({ status: 407, code: 'proxy_auth_required', message: who.message, headers: PROXY_AUTHENTICATE }, canon);
    }
    if (who.identity === null && credentialsRequired(ctx.staticIdentity, policy)) {
      const message = 'proxy credentials required: set HTTP_PROXY=http://ID:TOKEN@host:port';
      return fail({ status: 407, code: 'proxy_auth_required', message, headers: PROXY_AUTHENTICATE }, canon);
    }
    canon.identity = who.identity;
  }

  if (entry.via === 'route') {
    const routed = routeRequest(canon, policy.routes);
    if (!routed) {
      const message = `no route for ${canon.path}: send absolute-form requests (HTTP_PROXY) or use a configured route prefix`;
      return fail({ status: 400, code: 'bad_request', message }, canon);
    }
    canon = routed;
  }

  if (ctx.isOwnListener(canon.host, canon.port)) {
    return fail({ status: 403, code: 'denied', message: 'Airlock does not forward requests to its own listeners' }, canon);
  }

  const decision = evaluate(canon, policy);
  ctx.metrics.decisions.inc({ action: decision.action, rule: decision.rule ?? '(default)', mode: 'enforce' });
  for (const r of decision.report) ctx.metrics.decisions.inc({ action: r.action, rule: r.rule, mode: 'report' });
  const refusal = refusalFor(decision);
  // The decision is written before anything is forwarded: a request never reaches an upstream unrecorded.
  ctx.audit.write({
    event: 'request',
    request_id: requestId,
    identity: canon.identity?.id ?? null,
    owner: canon.identity?.owner ?? null,
    method: canon.method,
    scheme: canon.scheme,
    host: canon.host,
    port: canon.port,
    path: canon.path,
    // The audit sink redacts secret-looking parameters.
    query: canon.query || undefined,
    classification: canon.classification ?? undefined,
    rules: decision.matched,
    rule: decision.rule,
    report: decision.report.length > 0 ? decision.report : undefined,
    decision: decision.action,
    reason: decision.reason,
    status: refusal?.status,
    error: refusal?.code,
    client: req.socket.remoteAddress,
    via: entry.via,
    policy_version: policy.version,
  });
  if (refusal) return fail({ ...refusal, rule: decision.rule }, canon, decision);

  const upstreamStarted = performance.now();
  const upstreamTime = (): number => (performance.now() - upstreamStarted) / 1000;
  const result = await forward(canon, req, res, ctx.agent, requestId, (status) => {
    ctx.metrics.upstreamDuration.observe({ status_class: statusClass(status) }, upstreamTime());
  });
  if (!result.ok) {
    if (!result.headersSent) ctx.metrics.upstreamDuration.observe({ status_class: 'error' }, upstreamTime());
    ctx.log.warn({ request_id: requestId, host: canon.host, port: canon.port, status: result.status }, result.message);
    if (result.headersSent) res.destroy();
    else fail({ status: result.status, code: 'upstream_error', message: result.message, rule: decision.rule }, canon, decision);
    return;
  }
  ctx.metrics.requestDuration.observe({ action: 'allow' }, (performance.now() - started) / 1000);
}
