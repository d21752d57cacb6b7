import type { CanonicalRequest, Decision } from '../policy/types.js';
import { NO_BODY } from '../inspect/body.js';
import { evaluate } from '../policy/evaluate.js';
import { canonicalize, type RawRequest } from '../request/canonicalize.js';
import { credentialsRequired, identify } from '../request/identify.js';
import type { Exchange } from './exchange.js';
import { routeRequest, ROUTE_PLACEHOLDER } from './routes.js';

export const PROXY_AUTHENTICATE = { 'proxy-authenticate': 'Basic realm="airlock"' };

/**
 * Decide a request that carries no body (an upgrade): prepare, evaluate (body rules see an empty
 * body), settle. Returns the canonical request and the decision to act on, or null when the request
 * was refused here (the refusal is already answered).
 */
export function decide(x: Exchange): { canon: CanonicalRequest; decision: Decision } | null {
  const canon = prepare(x);
  if (!canon) return null;
  let decision = evaluate(canon, x.policy);
  if (decision.needsBody) {
    canon.body = NO_BODY;
    decision = evaluate(canon, x.policy);
  }
  return settle(x, canon, decision);
}

/**
 * Parse, identify and route one request: its canonical form, or null when it was refused here (the
 * refusal is already answered): malformed, unauthenticated, unroutable or aimed at Airlock itself.
 */
export function prepare(x: Exchange): CanonicalRequest | null {
  const { req, entry, ctx, policy } = x;

  const raw: RawRequest = { method: req.method ?? '', target: req.url ?? '', rawHeaders: req.rawHeaders };
  if (entry.via === 'tunnel') raw.destination = { scheme: entry.scheme, host: entry.host, port: entry.port };
  if (entry.via === 'route') {
    raw.destination = ROUTE_PLACEHOLDER;
    raw.hostHeader = 'ignore';
  }
  const parsed = canonicalize(raw, null, policy);
  if (!parsed.ok) return refused(x.refuse({ status: parsed.status ?? 400, code: 'bad_request', message: parsed.message }));
  let canon = parsed.request;

  if (entry.via === 'tunnel') {
    canon.identity = entry.identity;
  } else {
    const who = identify(canon.headers.get('proxy-authorization'), ctx.staticIdentity, policy);
    if (!who.ok) {
      return refused(x.refuse({ status: 407, code: 'proxy_auth_required', message: who.message, headers: PROXY_AUTHENTICATE }, canon));
    }
    if (who.identity === null && credentialsRequired(ctx.staticIdentity, policy)) {
      const message = 'proxy credentials required: set HTTP_PROXY=http://ID:TOKEN@host:port';
      return refused(x.refuse({ status: 407, code: 'proxy_auth_required', message, headers: PROXY_AUTHENTICATE }, canon));
    }
    canon.identity = who.identity;
  }

  if (entry.via === 'route') {
    const routed = routeRequest(canon, policy.routes);
    if (!routed) {
      const message = `no route for ${canon.path}: send absolute-form requests (HTTP_PROXY) or use a configured route prefix`;
      return refused(x.refuse({ status: 400, code: 'bad_request', message }, canon));
    }
    canon = routed.request;
    x.route = routed.route;
  }

  if (ctx.isOwnListener(canon.host, canon.port)) {
    return refused(x.refuse({ status: 403, code: 'denied', message: 'Airlock does not forward requests to its own listeners' }, canon));
  }

  return canon;
}

/**
 * Count the decision, write it to the audit trail (before anything is forwarded: a request never
 * reaches an upstream unrecorded) and answer a denial. Returns what to act on, or null when denied.
 */
export function settle(x: Exchange, canon: CanonicalRequest, decision: Decision): { canon: CanonicalRequest; decision: Decision } | null {
  const { req, entry, ctx, policy } = x;
  x.trace?.decided(canon, decision);
  ctx.metrics.decisions.inc({ action: decision.action, rule: decision.rule ?? '(default)', mode: 'enforce' });
  for (const r of decision.report) ctx.metrics.decisions.inc({ action: r.action, rule: r.rule, mode: 'report' });
  const refusal = decision.action === 'deny' ? { status: 403, code: 'denied' as const, message: decision.reason } : null;
  // Short facts first (what was decided, by which rule, for whom), long agent-supplied fields last.
  ctx.audit.write({
    event: 'request',
    request_id: x.requestId,
    decision: decision.action,
    rule: decision.rule,
    identity: canon.identity?.id ?? null,
    owner: canon.identity?.owner ?? null,
    status: refusal?.status,
    error: refusal?.code,
    method: canon.method,
    scheme: canon.scheme,
    host: canon.host,
    port: canon.port,
    classification: canon.classification ?? undefined,
    rules: decision.matched,
    report: decision.report.length > 0 ? decision.report : undefined,
    client: req.socket.remoteAddress,
    via: entry.via,
    policy_version: policy.version,
    body_inspected: canon.body ? true : undefined,
    body_unreadable: canon.body?.unreadable ?? undefined,
    findings: canon.body?.findings?.length ? canon.body.findings : undefined,
    reason: decision.reason,
    path: canon.path,
    // The audit sink redacts secret-looking parameters.
    query: canon.query || undefined,
  });
  if (refusal) return refused(x.refuse({ ...refusal, rule: decision.rule }, canon, decision));
  return { canon, decision };
}

/** Reads as what happened at a refusal: `return refused(x.refuse(…))`. */
function refused(_answered: void): null {
  return null;
}
