/**
 * The policy decision: a pure function of a canonical request and a compiled policy. No I/O, no clock.
 *
 * Every enforcing rule that matches counts and the most restrictive action wins (deny > approve >
 * allow), so rule order can never open a hole; order only picks which of several equally
 * restrictive rules is named as the decider. Rules in `mode: report` never change the decision.
 */
import type { InspectedBody } from '../inspect/body.js';
import type { GraphqlOperation } from '../inspect/graphql.js';
import type { RpcView } from '../inspect/jsonrpc.js';
import type { ValueCondition } from '../inspect/conditions.js';
import { conditionHolds, quantifierFor } from '../inspect/conditions.js';
import { valuesAt } from '../inspect/json.js';
import { hostMatches } from './host-pattern.js';
import type { BodyCriteria, CanonicalRequest, ClassificationConfig, CompiledPolicy, CompiledRule, Decision, HeaderCondition, Identity, RuleBucket, TunnelDecision } from './types.js';

export function evaluate(req: CanonicalRequest, policy: CompiledPolicy): Decision {
  const detects = policy.classification !== null && policy.classification.detectCeiling >= 0 && detectorsCouldRaise(req, policy.classification);
  const found: Found = { matched: [], reported: [], needBody: false, detects };
  const { exactHosts, hostSuffixes, anyHost } = policy.index;
  scanBucket(exactHosts.get(req.host), req, found);
  if (hostSuffixes.size > 0) {
    // `*.data.internal` is keyed `data.internal`: look up every proper label suffix of the host.
    for (let dot = req.host.indexOf('.'); dot !== -1; dot = req.host.indexOf('.', dot + 1)) {
      scanBucket(hostSuffixes.get(req.host.slice(dot + 1)), req, found);
    }
  }
  scanBucket(anyHost, req, found);
  const decision = decide(found.matched, found.reported, policy);
  return found.needBody ? { ...decision, needsBody: true } : decision;
}

interface Found {
  matched: CompiledRule[];
  reported: CompiledRule[];
  /** Some rule matched on everything but a body the request does not carry yet. */
  needBody: boolean;
  /** Detectors could raise this request's classification: classification rules need its body too. */
  detects: boolean;
}

/** Whether what the request sends (query, body) could raise its level: it sends something, and is not at the ceiling already. */
function detectorsCouldRaise(req: CanonicalRequest, cls: ClassificationConfig): boolean {
  if (req.classification !== null && cls.levels.indexOf(req.classification) >= cls.detectCeiling) return false;
  const cl = req.headers.get('content-length');
  return req.query !== '' || req.headers.get('transfer-encoding') !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * The decision for a CONNECT to host:port, before any byte of the tunnel is seen. `host` must be
 * canonical (lower case, punycode, IPv6 without brackets). When a rule that could apply needs the
 * method, path, headers or classification, the tunnel must be inspected, unless a host-level deny
 * already decides: nothing inside the tunnel could make the outcome less restrictive than deny.
 */
/** Whether `host` is on the policy's `tls.passthrough` list (its TLS is never intercepted). */
export function isPassthrough(host: string, policy: CompiledPolicy): boolean {
  return policy.passthrough.some((h) => hostMatches(h, host));
}

/**
 * `passthrough`: the host's TLS will not be intercepted, so the decision is made on host-level rules
 * alone (rules that inspect requests cannot apply to it).
 */
export function evaluateTunnel(identity: Identity | null, host: string, port: number, policy: CompiledPolicy, passthrough = false): TunnelDecision {
  const hostLevel: CompiledRule[] = [];
  const needRequest: CompiledRule[] = [];
  const reported: CompiledRule[] = [];
  const visit = (bucket: RuleBucket | undefined): void => {
    for (const rule of bucket?.all ?? []) {
      if (rule.ports && !rule.ports.has(port)) continue;
      if (rule.identities && !identityMatches(rule.identities, identity)) continue;
      if (rule.info.mode === 'report') {
        if (!rule.needsRequest) addOnce(reported, rule);
      } else {
        addOnce(rule.needsRequest ? needRequest : hostLevel, rule);
      }
    }
  };
  const { exactHosts, hostSuffixes, anyHost } = policy.index;
  visit(exactHosts.get(host));
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) visit(hostSuffixes.get(host.slice(dot + 1)));
  visit(anyHost);

  const decision = decide(hostLevel, reported, policy);
  if (passthrough || needRequest.length === 0 || (decision.action === 'deny' && decision.rule !== null)) return { kind: 'decided', decision };
  return { kind: 'inspect', rules: needRequest.sort(byOrder).map((r) => r.info.id) };
}

function scanBucket(bucket: RuleBucket | undefined, req: CanonicalRequest, found: Found): void {
  if (!bucket) return;
  const byMethod = bucket.byMethod.get(req.method);
  if (byMethod) scanList(byMethod, req, found);
  scanList(bucket.anyMethod, req, found);
}

function scanList(rules: readonly CompiledRule[], req: CanonicalRequest, found: Found): void {
  for (const rule of rules) {
    if (!matchesBesidesHost(rule, req)) continue;
    if (req.body === undefined && (rule.body || (rule.classification && found.detects))) {
      found.needBody = true;
      continue;
    }
    if (rule.classification && !classificationMatches(rule.classification, req.classification)) continue;
    if (rule.body && !bodyMatches(rule, req.body!)) continue;
    addOnce(rule.info.mode === 'report' ? found.reported : found.matched, rule);
  }
}

/**
 * A body that could not be read faithfully gets the most restrictive outcome the rule could give:
 * a deny or approve rule counts as matched, an allow rule does not.
 */
export function bodyMatches(rule: CompiledRule, body: InspectedBody): boolean {
  if (body.unreadable !== null) return rule.info.action !== 'allow';
  const criteria = rule.body!;
  const q = quantifierFor(rule.info.action);
  for (const j of criteria.json) {
    if (!conditionHolds(j.condition, body.json ? valuesAt(body.json.value, j.segments) : [], q)) return false;
  }
  for (const f of criteria.form) {
    if (!conditionHolds(f.condition, body.form ? valuesOf(body.form, f.name) : [], q)) return false;
  }
  if (criteria.rpc) {
    const assumed = body.rpc?.assumeArguments;
    if (assumed !== undefined && criteria.rpc.arguments.length > 0 && (assumed === 'restrictive') !== (rule.info.action !== 'allow')) return false;
    for (const [c, values] of rpcValues(assumed === undefined ? criteria.rpc : { ...criteria.rpc, arguments: [] }, body.rpc)) {
      if (c && !conditionHolds(c, values, q)) return false;
    }
  }
  if (criteria.graphql) {
    const view = body.graphql;
    // Operations Airlock cannot see (a persisted query, a document that does not parse) get the most
    // restrictive outcome this rule could give, as an unreadable body does.
    if (view !== null && 'unreadable' in view) return rule.info.action !== 'allow';
    for (const [key, values] of graphqlValues(view)) {
      const c = criteria.graphql[key];
      if (c && !conditionHolds(c, values, q)) return false;
    }
  }
  return true;
}

/**
 * Each JSON-RPC condition with the values it reads, over every call of the body (none: no JSON-RPC).
 * A call that is not `tools/call` has the tool null, so an allow rule on tools covers no other call
 * riding in the same batch.
 */
export function rpcValues(criteria: NonNullable<BodyCriteria['rpc']>, view: RpcView | null): [ValueCondition | undefined, unknown[], string][] {
  const calls = view?.calls ?? [];
  const toolCalls = calls.filter((c) => c.method === 'tools/call');
  return [
    [criteria.method, calls.map((c) => c.method), 'method'],
    [criteria.tool, calls.map((c) => c.tool), 'tool'],
    ...criteria.arguments.map((a): [ValueCondition, unknown[], string] => [a.condition, toolCalls.flatMap((c) => valuesAt(c.arguments, a.segments)), `argument ${a.path}`]),
  ];
}

/** The values each GraphQL condition reads, over every operation of the request (none: not GraphQL). */
export function graphqlValues(view: { readonly operations: readonly GraphqlOperation[] } | null): [keyof NonNullable<BodyCriteria['graphql']>, unknown[]][] {
  const ops = view?.operations ?? [];
  return [
    ['operation', ops.map((o) => o.type)],
    ['name', ops.map((o) => o.name)],
    ['field', ops.flatMap((o) => o.fields)],
  ];
}

/** A rule listing several host patterns can be reached through more than one bucket. */
function addOnce(list: CompiledRule[], rule: CompiledRule): void {
  if (!list.includes(rule)) list.push(rule);
}

/** Every criterion except the host (the index established it), classification and body (content may change them). */
function matchesBesidesHost(rule: CompiledRule, req: CanonicalRequest): boolean {
  if (rule.ports && !rule.ports.has(req.port)) return false;
  if (rule.methods && !rule.methods.has(req.method)) return false;
  if (rule.paths) {
    let any = false;
    for (const p of rule.paths) {
      if (p.regex.test(req.path)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  for (const h of rule.headers) {
    if (!headerMatches(h, req.headers.get(h.name))) return false;
  }
  for (const q of rule.query) {
    if (!conditionHolds(q.condition, valuesOf(req.params, q.name), 'any')) return false;
  }
  if (rule.identities && !identityMatches(rule.identities, req.identity)) return false;
  return true;
}

export function classificationMatches(c: NonNullable<CompiledRule['classification']>, level: string | null): boolean {
  return level !== null && c.levels.has(level);
}

/** The value of a parameter as a list: none when absent (canonicalize refused duplicates). */
export function valuesOf(params: ReadonlyMap<string, string>, name: string): string[] {
  const v = params.get(name);
  return v === undefined ? [] : [v];
}

/** A header sent more than once (an array) never equals anything: which copy counts would be a guess. */
export function headerMatches(cond: HeaderCondition, value: string | string[] | undefined): boolean {
  switch (cond.kind) {
    case 'present':
      return (value !== undefined) === cond.present;
    case 'equals':
      return typeof value === 'string' && value === cond.value;
    case 'oneOf':
      return typeof value === 'string' && cond.values.has(value);
  }
}

/** Anonymous callers never satisfy an identities constraint. */
export function identityMatches(constraint: NonNullable<CompiledRule['identities']>, identity: Identity | null): boolean {
  if (!identity) return false;
  if (constraint.ids.has(identity.id)) return true;
  for (const g of identity.groups) if (constraint.groups.has(g)) return true;
  return false;
}

const byOrder = (a: CompiledRule, b: CompiledRule): number => a.order - b.order;
/** Most restrictive first; among equals, load order. */
const byRestrictiveness = (a: CompiledRule, b: CompiledRule): number => b.rank - a.rank || a.order - b.order;

function decide(matched: CompiledRule[], reported: CompiledRule[], policy: CompiledPolicy): Decision {
  const report = reported.length === 0 ? [] : reported.sort(byOrder).map((r) => ({ rule: r.info.id, action: r.info.action }));
  const decider = matched.sort(byRestrictiveness)[0];
  if (!decider) {
    return { action: policy.defaultAction, rule: null, matched: [], report, reason: `no rule matched; default is ${policy.defaultAction}` };
  }
  const { id, action, reason, description, approval } = decider.info;
  return {
    action,
    rule: id,
    matched: matched.map((r) => r.info.id),
    report,
    reason: reason ?? description ?? `rule ${id} (${action})`,
    ...(approval && action === 'approve' ? { approval } : {}),
  };
}
