/**
 * Why a request gets its decision: for every rule, each criterion checked in turn up to the first
 * one that fails. For `airlock policy explain`; slow on purpose (no index), so it can't disagree
 * with evaluate() by sharing a bug in the index.
 */
import { hostMatches } from './host-pattern.js';
import { conditionHolds, quantifierFor } from '../inspect/conditions.js';
import { valuesAt } from '../inspect/json.js';
import { bodyMatches, evaluate, evaluateTunnel, graphqlValues, headerMatches, identityMatches, isPassthrough, rpcValues, valuesOf } from './evaluate.js';
import type { Action, CanonicalRequest, CompiledPolicy, CompiledRule, Decision, HostPattern, Identity, RuleMode, SourcePosition } from './types.js';

export type Criterion = 'method' | 'host' | 'port' | 'path' | 'header' | 'query' | 'body' | 'classification' | 'identity';

export interface CriterionResult {
  criterion: Criterion;
  ok: boolean;
  /** e.g. `method POST in [POST]`, `host a.data.internal matches *.data.internal`. */
  detail: string;
}

export interface RuleExplanation {
  id: string;
  action: Action;
  mode: RuleMode;
  source: SourcePosition;
  matched: boolean;
  /** The criteria the rule has, in order, up to and including the first that failed. */
  criteria: CriterionResult[];
}

export interface Explanation {
  decision: Decision;
  rules: RuleExplanation[];
}

export function explain(req: CanonicalRequest, policy: CompiledPolicy): Explanation {
  return {
    decision: evaluate(req, policy),
    rules: policy.index.rules.map((rule) => explainRule(rule, req)),
  };
}

/** What the proxy does with `CONNECT host:port`, as connect.ts decides it. */
export type TunnelExplanation =
  | { outcome: 'tunnel' | 'refuse'; status: 200 | 403 | 503; decision: Decision; passthrough: boolean; why: string }
  | { outcome: 'intercept'; status: 200 | 403; rules: readonly string[]; passthrough: false; why: string };

/**
 * A CONNECT decided before any byte is tunnelled: host-level rules decide it (open, refuse), or rules
 * that need the request make Airlock look inside (plain HTTP request by request; TLS only with the
 * interception CA). `intercepting`: whether an interception CA is configured.
 */
export function explainTunnel(identity: Identity | null, host: string, port: number, policy: CompiledPolicy, intercepting: boolean): TunnelExplanation {
  const passthrough = isPassthrough(host, policy);
  const verdict = evaluateTunnel(identity, host, port, policy, passthrough);
  if (verdict.kind === 'decided') {
    const d = verdict.decision;
    if (d.action === 'deny') return { outcome: 'refuse', status: 403, decision: d, passthrough, why: d.reason };
    if (d.action === 'approve') return { outcome: 'refuse', status: 503, decision: d, passthrough, why: 'tunnels cannot be held for approval; send the request as plain HTTP or through TLS interception' };
    return { outcome: 'tunnel', status: 200, decision: d, passthrough, why: 'opened; what goes through it is not looked at (every rule for this host decides on host, port and identity alone)' };
  }
  const rules = verdict.rules;
  if (port === 443 && !intercepting) {
    return { outcome: 'intercept', status: 403, rules, passthrough: false, why: `rules ${rules.join(', ')} inspect requests to ${host}; HTTPS to it is refused without TLS interception (airlock ca init)` };
  }
  return { outcome: 'intercept', status: 200, rules, passthrough: false, why: `opened, and each request inside is decided on its own (rules ${rules.join(', ')} look at method, path, headers or body)${intercepting ? '; TLS is intercepted with the Airlock CA' : '; TLS inside it is refused (no interception CA)'}` };
}

const list = (items: Iterable<string | number>): string => `[${[...items].join(', ')}]`;

function formatHostPattern(h: HostPattern): string {
  return h.kind === 'any' ? '*' : h.kind === 'suffix' ? `*.${h.suffix}` : h.host;
}

function explainRule(rule: CompiledRule, req: CanonicalRequest): RuleExplanation {
  const criteria: CriterionResult[] = [];
  const check = (criterion: Criterion, ok: boolean, detail: string): boolean => {
    criteria.push({ criterion, ok, detail });
    return ok;
  };
  const matched = checkAll(rule, req, check);
  return { id: rule.info.id, action: rule.info.action, mode: rule.info.mode, source: rule.info.source, matched, criteria };
}

function checkBody(rule: CompiledRule, req: CanonicalRequest, check: (c: Criterion, ok: boolean, detail: string) => boolean): boolean {
  const body = req.body;
  if (body === undefined) return check('body', false, 'the rule inspects the body, and none was given');
  if (body.unreadable !== null) {
    const ok = bodyMatches(rule, body);
    return check('body', ok, `${body.unreadable}: a ${rule.info.action} rule ${ok ? 'counts as matched' : 'does not match'} (the most restrictive outcome)`);
  }
  for (const j of rule.body!.json) {
    const values = body.json ? valuesAt(body.json.value, j.segments) : [];
    const shown = body.json === null ? 'the body is not JSON' : values.length === 0 ? `${j.path || '(the document)'} is absent` : `${j.path || '(the document)'} is ${values.map((v) => JSON.stringify(v)).join(', ').slice(0, 200)}`;
    if (!check('body', conditionHolds(j.condition, values, quantifierFor(rule.info.action)), `JSON ${shown}; rule wants ${j.condition.text}`)) return false;
  }
  for (const f of rule.body!.form) {
    const values = body.form ? valuesOf(body.form, f.name) : [];
    const shown = body.form === null ? 'the body is not a form' : values.length === 0 ? `field ${f.name} is absent` : `field ${f.name} is ${JSON.stringify(values[0])}`;
    if (!check('body', conditionHolds(f.condition, values, quantifierFor(rule.info.action)), `form ${shown}; rule wants ${f.condition.text}`)) return false;
  }
  const rpc = rule.body!.rpc;
  if (rpc) {
    for (const [c, values, what] of rpcValues(rpc, body.rpc)) {
      if (!c) continue;
      const shown = body.rpc === null ? 'the body holds no JSON-RPC call' : `${what} ${values.map((v) => JSON.stringify(v)).join(', ').slice(0, 200) || '(none)'}`;
      if (!check('body', conditionHolds(c, values, quantifierFor(rule.info.action)), `JSON-RPC ${shown}; rule wants ${c.text}`)) return false;
    }
  }
  const graphql = rule.body!.graphql;
  if (graphql) {
    const view = body.graphql;
    if (view !== null && 'unreadable' in view) {
      const ok = rule.info.action !== 'allow';
      return check('body', ok, `GraphQL: ${view.unreadable}: a ${rule.info.action} rule ${ok ? 'counts as matched' : 'does not match'} (the most restrictive outcome)`);
    }
    for (const [key, values] of graphqlValues(view)) {
      const c = graphql[key];
      if (!c) continue;
      const shown = view === null ? 'the request carries no GraphQL' : `${key} ${values.map((v) => JSON.stringify(v)).join(', ') || '(none)'}`;
      if (!check('body', conditionHolds(c, values, quantifierFor(rule.info.action)), `GraphQL ${shown}; rule wants ${c.text}`)) return false;
    }
  }
  return true;
}

function checkAll(rule: CompiledRule, req: CanonicalRequest, check: (c: Criterion, ok: boolean, detail: string) => boolean): boolean {
  if (rule.methods) {
    const ok = rule.methods.has(req.method);
    if (!check('method', ok, `method ${req.method} ${ok ? 'in' : 'not in'} ${list(rule.methods)}`)) return false;
  }
  if (rule.hosts) {
    const hit = rule.hosts.find((h) => hostMatches(h, req.host));
    const detail = hit ? `host ${req.host} matches ${formatHostPattern(hit)}` : `host ${req.host} matches none of ${list(rule.hosts.map(formatHostPattern))}`;
    if (!check('host', hit !== undefined, detail)) return false;
  }
  if (rule.ports) {
    const ok = rule.ports.has(req.port);
    if (!check('port', ok, `port ${req.port} ${ok ? 'in' : 'not in'} ${list(rule.ports)}`)) return false;
  }
  if (rule.paths) {
    const hit = rule.paths.find((p) => p.regex.test(req.path));
    const anyCase = rule.paths[0]!.regex.flags.includes('i') ? ' (any case)' : '';
    const detail = hit ? `path ${req.path} matches ${hit.glob}${anyCase}` : `path ${req.path} matches none of ${list(rule.paths.map((p) => p.glob))}${anyCase}`;
    if (!check('path', hit !== undefined, detail)) return false;
  }
  for (const h of rule.headers) {
    const value = req.headers.get(h.name);
    const ok = headerMatches(h, value);
    const shown = value === undefined ? 'is absent' : Array.isArray(value) ? `is sent ${value.length} times` : `is ${JSON.stringify(value)}`;
    const wanted =
      h.kind === 'present' ? (h.present ? 'present' : 'absent') : h.kind === 'equals' ? `equals ${JSON.stringify(h.value)}` : `one of ${list([...h.values].map((v) => JSON.stringify(v)))}`;
    if (!check('header', ok, `header ${h.name} ${shown}; rule wants ${wanted}`)) return false;
  }
  for (const q of rule.query) {
    const values = valuesOf(req.params, q.name);
    const ok = conditionHolds(q.condition, values, 'any');
    const shown = values.length === 0 ? 'is absent' : `is ${JSON.stringify(values[0])}`;
    if (!check('query', ok, `query parameter ${q.name} ${shown}; rule wants ${q.condition.text}`)) return false;
  }
  if (rule.body && !checkBody(rule, req, check)) return false;
  if (rule.classification) {
    const level = req.classification;
    const ok = level !== null && rule.classification.levels.has(level);
    if (!check('classification', ok, `classification ${level ?? '(none)'} ${ok ? '' : 'not '}${rule.classification.text}`)) return false;
  }
  if (rule.identities) {
    const ok = identityMatches(rule.identities, req.identity);
    const wanted = list([...rule.identities.ids, ...[...rule.identities.groups].map((g) => `group:${g}`)]);
    const who = req.identity ? `identity ${req.identity.id}${req.identity.groups.length ? ` (groups ${list(req.identity.groups)})` : ''}` : 'anonymous caller';
    if (!check('identity', ok, `${who} ${ok ? 'in' : 'not in'} ${wanted}`)) return false;
  }
  return true;
}
