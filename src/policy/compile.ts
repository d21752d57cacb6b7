/**
 * Semantic validation across all policy files, and compilation into the matchers and index that
 * evaluate() reads. Pure: files arrive parsed and schema-valid, each with a way to locate a node.
 */
import { METHODS } from 'node:http';
import { compileCondition, type ValueCondition } from '../inspect/conditions.js';
import { parseRange } from '../net/address.js';
import type { DetectorId } from '../inspect/detector-ids.js';
import { parseJsonPath } from '../inspect/json.js';
import { formatDuration, parseDuration } from './duration.js';
import { compileGlob } from './glob.js';
import { compileExceptions } from './exceptions.js';
import { compileHost } from './host-pattern.js';
import { probeTemplateProblem } from './probe-template.js';
import type { PolicyFile, PolicyMatch, PolicyRule } from './schema.js';
import {
  ACTION_RANK,
  type Action,
  type ApprovalSettings,
  type ApproverGroup,
  type BodyCriteria,
  type ClassificationConfig,
  type CompiledPolicy,
  type CompiledRule,
  type HeaderCondition,
  type HostPattern,
  type IdentityConfig,
  type PolicyError,
  type PolicyTestCase,
  type ProbeSpec,
  type ReverseRoute,
  type RuleIndex,
  type RuleInfo,
  type SourcePosition,
} from './types.js';

export type YamlPath = readonly (string | number)[];
/** Position of the node at `path` (or of its key), falling back to the nearest existing parent. */
export type Locate = (path: YamlPath, at?: 'key' | 'value') => SourcePosition;

export interface ParsedPolicyFile {
  file: string;
  data: PolicyFile;
  locate: Locate;
}

export type CompileResult =
  | { ok: true; policy: CompiledPolicy; warnings: PolicyError[] }
  | { ok: false; errors: PolicyError[]; warnings: PolicyError[] };

const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);

/** Requests one identity may have waiting for approval when no file sets `limits.pendingApprovals`. */
export const DEFAULT_PENDING_APPROVALS = 20;

/** `limits.pendingApprovals`: the lowest any file sets, else the default. */
function pendingApprovalsLimit(files: readonly ParsedPolicyFile[]): number {
  const set = files.flatMap((f) => (f.data.limits?.pendingApprovals === undefined ? [] : [f.data.limits.pendingApprovals]));
  return set.length > 0 ? Math.min(...set) : DEFAULT_PENDING_APPROVALS;
}

const where = (p: SourcePosition): string => `${p.file}:${p.line}:${p.col}`;

/** Collects problems with their positions while compilation goes on, so one run reports them all. */
class Problems {
  readonly errors: PolicyError[] = [];
  readonly warnings: PolicyError[] = [];
  error(at: SourcePosition, message: string): void {
    this.errors.push({ ...at, message });
  }
  warn(at: SourcePosition, message: string): void {
    this.warnings.push({ ...at, message });
  }
}

interface Defined<T> {
  value: T;
  source: SourcePosition;
}

export function compilePolicy(files: readonly ParsedPolicyFile[], version: string): CompileResult {
  const p = new Problems();
  const defaultAction = compileDefaults(files, p);
  const { config: classification, declared: classificationDeclared } = compileClassification(files, p);
  const identities = compileIdentities(files, p);
  const approverGroups = compileApprovers(files, p);
  const approverTokens = compileApproverTokens(files, identities, approverGroups, p);
  const routes = compileRoutes(files, p);
  const destinationAllow = compileDestinationAllow(files, p);
  const passthrough = compilePassthrough(files, p);
  const exceptions = compileExceptions(files, (at, message) => p.error(at, message));
  const knownGroups = new Set([...identities.values()].flatMap((i) => i.groups));

  const ctx: RuleContext = { classification, classificationDeclared, identities, approverGroups, knownGroups };
  const rules: CompiledRule[] = [];
  const ruleSources = new Map<string, SourcePosition>();
  for (const f of files) {
    for (const [i, rule] of (f.data.rules ?? []).entries()) {
      const at = (...rest: YamlPath): SourcePosition => f.locate(['rules', i, ...rest]);
      const first = ruleSources.get(rule.id);
      if (first) {
        p.error(at('id'), `duplicate rule id "${rule.id}" (first defined at ${where(first)})`);
        continue;
      }
      ruleSources.set(rule.id, at());
      const compiled = compileRule(rule, rules.length, at, ctx, p);
      if (compiled) rules.push(compiled);
    }
  }
  if (rules.length === 0 && p.errors.length === 0) {
    const first = files[0];
    if (first) p.warn(first.locate([]), `no rules in any policy file: every request gets the default (${defaultAction})`);
  }

  checkPassthroughRules(passthrough, rules, p);
  const tests = compileTests(files, ruleSources, p);
  if (p.errors.length > 0) return { ok: false, errors: p.errors, warnings: p.warnings };

  const inspectedHeaders = new Set(rules.flatMap((r) => r.headers.map((h) => h.name)));
  if (classification) inspectedHeaders.add(classification.header);
  const inspectedQuery = new Set(rules.flatMap((r) => r.query.map((q) => q.name)));
  const inspectedForm = new Set(rules.flatMap((r) => r.body?.form.map((f) => f.name) ?? []));
  const inspectsGraphql = rules.some((r) => r.body?.graphql);
  const policy: CompiledPolicy = {
    version,
    files: files.map((f) => f.file),
    defaultAction,
    rules: rules.map((r) => r.info),
    classification,
    inspectedHeaders,
    inspectedQuery,
    inspectedForm,
    inspectsGraphql,
    identities,
    approverGroups,
    approverTokens,
    routes,
    destinationAllow,
    passthrough: passthrough.map((pt) => pt.pattern),
    pendingApprovals: pendingApprovalsLimit(files),
    exceptions,
    tests,
    index: buildIndex(rules),
  };
  return { ok: true, policy, warnings: p.warnings };
}

/** Files that disagree on the default get the most restrictive one: splitting policy into files must never loosen it. */
/** The longest `wait` the docs call safe: under the MCP SDK's default request timeout (60 s). */
export const SAFE_WAIT_MS = 60_000;

function compileDefaults(files: readonly ParsedPolicyFile[], p: Problems): Action {
  const declared: Defined<Action>[] = [];
  for (const f of files) {
    const action = f.data.defaults?.action;
    if (action) declared.push({ value: action, source: f.locate(['defaults', 'action']) });
  }
  const strictest = declared.reduce<Defined<Action> | null>(
    (best, d) => (best === null || ACTION_RANK[d.value] > ACTION_RANK[best.value] ? d : best),
    null,
  );
  if (!strictest) return 'deny';
  for (const d of declared) {
    if (d.value !== strictest.value) {
      p.warn(d.source, `defaults.action ${d.value} is overridden by ${strictest.value} at ${where(strictest.source)}: files disagree and the most restrictive default applies`);
    }
  }
  return strictest.value;
}

/** `declared` is true even when the declaration had errors, so rules using it don't add a second, misleading one. */
function compileClassification(files: readonly ParsedPolicyFile[], p: Problems): { config: ClassificationConfig | null; declared: boolean } {
  let first: Defined<ClassificationConfig> | null = null;
  let declared = false;
  for (const f of files) {
    const c = f.data.classification;
    if (!c) continue;
    declared = true;
    const source = f.locate(['classification']);
    const seen = new Set<string>();
    let valid = true;
    for (const [i, level] of c.levels.entries()) {
      if (seen.has(level)) {
        p.error(f.locate(['classification', 'levels', i]), `classification level "${level}" is listed twice`);
        valid = false;
      }
      seen.add(level);
    }
    if (c.missing !== undefined && !seen.has(c.missing)) {
      p.error(f.locate(['classification', 'missing']), `classification.missing "${c.missing}" is not one of the levels [${c.levels.join(', ')}]`);
      valid = false;
    }
    const detect = new Map<DetectorId, string>();
    for (const [detector, level] of Object.entries(c.detect ?? {}) as [DetectorId, string][]) {
      if (seen.has(level)) detect.set(detector, level);
      else {
        p.error(f.locate(['classification', 'detect', detector]), `classification.detect.${detector} "${level}" is not one of the levels [${c.levels.join(', ')}]`);
        valid = false;
      }
    }
    if (!valid) continue;
    const config: ClassificationConfig = {
      header: c.header.toLowerCase(),
      levels: c.levels,
      // Unlabelled data counts as the most sensitive: a missing header must not be a way around a rule.
      missing: c.missing ?? c.levels[c.levels.length - 1] ?? '',
      detect,
      detectCeiling: Math.max(-1, ...[...detect.values()].map((l) => c.levels.indexOf(l))),
    };
    if (!first) {
      first = { value: config, source };
    } else if (!sameClassification(first.value, config)) {
      p.error(source, `classification differs from the one at ${where(first.source)}; every file that declares classification must declare the same header, levels, missing and detect`);
    }
  }
  return { config: first?.value ?? null, declared };
}

function sameClassification(a: ClassificationConfig, b: ClassificationConfig): boolean {
  const sameDetect = a.detect.size === b.detect.size && [...a.detect].every(([d, l]) => b.detect.get(d) === l);
  return a.header === b.header && a.missing === b.missing && sameDetect && a.levels.length === b.levels.length && a.levels.every((l, i) => l === b.levels[i]);
}

function compileIdentities(files: readonly ParsedPolicyFile[], p: Problems): Map<string, IdentityConfig> {
  const identities = new Map<string, IdentityConfig>();
  const sources = new Map<string, SourcePosition>();
  const tokenOwners = new Map<string, string>();
  for (const f of files) {
    for (const [id, def] of Object.entries(f.data.identities ?? {})) {
      const source = f.locate(['identities', id], 'key');
      const first = sources.get(id);
      if (first) {
        p.error(source, `identity "${id}" is already defined at ${where(first)}`);
        continue;
      }
      sources.set(id, source);
      const tokenSha256: Uint8Array[] = [];
      for (const [i, token] of (def.tokens ?? []).entries()) {
        const hex = token.slice('sha256:'.length);
        const owner = tokenOwners.get(hex);
        if (owner !== undefined) {
          p.error(f.locate(['identities', id, 'tokens', i]), `this token digest is already used by identity "${owner}"; a token must identify one caller`);
          continue;
        }
        tokenOwners.set(hex, id);
        tokenSha256.push(Buffer.from(hex, 'hex'));
      }
      identities.set(id, {
        id,
        ...(def.owner !== undefined ? { owner: def.owner } : {}),
        groups: [...new Set(def.groups)],
        tokenSha256,
        ...(def.pendingApprovals !== undefined ? { pendingApprovals: def.pendingApprovals } : {}),
      });
    }
  }
  return identities;
}

function compileApprovers(files: readonly ParsedPolicyFile[], p: Problems): Map<string, ApproverGroup> {
  const groups = new Map<string, ApproverGroup>();
  const sources = new Map<string, SourcePosition>();
  for (const f of files) {
    for (const [name, def] of Object.entries(f.data.approvers ?? {})) {
      const source = f.locate(['approvers', name], 'key');
      const first = sources.get(name);
      if (first) {
        p.error(source, `approver group "${name}" is already defined at ${where(first)}`);
        continue;
      }
      sources.set(name, source);
      const slack = [...new Set(def.slack ?? [])];
      // Object ids and principal names are case-insensitive in Entra ID.
      const teams = [...new Set((def.teams ?? []).map((t) => t.toLowerCase()))];
      const api = [...new Set(def.api ?? [])];
      const idpGroups = [...new Set(def.idpGroups ?? [])];
      if (slack.length + teams.length + api.length + idpGroups.length === 0) p.error(source, `approver group "${name}" has no members (list slack, teams and/or api approvers, or idpGroups)`);
      groups.set(name, { slack, teams, api, idpGroups });
    }
  }
  return groups;
}

/** A token must identify one caller: no digest may be shared between approvers, or with an agent identity. */
function compileApproverTokens(
  files: readonly ParsedPolicyFile[],
  identities: ReadonlyMap<string, IdentityConfig>,
  groups: ReadonlyMap<string, { api: readonly string[] }>,
  p: Problems,
): Map<string, Uint8Array[]> {
  const owners = new Map<string, string>();
  for (const identity of identities.values()) for (const d of identity.tokenSha256) owners.set(Buffer.from(d).toString('hex'), `identity "${identity.id}"`);
  const apiApprovers = new Set([...groups.values()].flatMap((g) => g.api));
  const tokens = new Map<string, Uint8Array[]>();
  const sources = new Map<string, SourcePosition>();
  for (const f of files) {
    for (const [name, digests] of Object.entries(f.data.approverTokens ?? {})) {
      const source = f.locate(['approverTokens', name], 'key');
      const first = sources.get(name);
      if (first) {
        p.error(source, `approver tokens for "${name}" are already defined at ${where(first)}`);
        continue;
      }
      sources.set(name, source);
      if (!apiApprovers.has(name)) p.warn(source, `"${name}" is in no approver group's api list: the token can list approvals but decide none`);
      const list: Uint8Array[] = [];
      for (const [i, token] of digests.entries()) {
        const hex = token.slice('sha256:'.length);
        const owner = owners.get(hex);
        if (owner !== undefined) {
          p.error(f.locate(['approverTokens', name, i]), `this token digest is already used by ${owner}; a token must identify one caller`);
          continue;
        }
        owners.set(hex, `approver "${name}"`);
        list.push(Buffer.from(hex, 'hex'));
      }
      tokens.set(name, list);
    }
  }
  return tokens;
}

function compilePassthrough(files: readonly ParsedPolicyFile[], p: Problems): { pattern: HostPattern; source: SourcePosition }[] {
  const out: { pattern: HostPattern; source: SourcePosition }[] = [];
  for (const f of files) {
    for (const [i, raw] of (f.data.tls?.passthrough ?? []).entries()) {
      const source = f.locate(['tls', 'passthrough', i]);
      const h = compileHost(raw.toLowerCase());
      if (typeof h === 'string') p.error(source, h);
      else out.push({ pattern: h, source });
    }
  }
  return out;
}

/**
 * A rule that needs the request (method, path, headers, body, …) can never be enforced on HTTPS to a
 * passthrough host, whose TLS is not intercepted: an error when the rule names such a host, a warning
 * when it applies to any host.
 */
function checkPassthroughRules(passthrough: readonly { pattern: HostPattern; source: SourcePosition }[], rules: readonly CompiledRule[], p: Problems): void {
  for (const pt of passthrough) {
    for (const r of rules) {
      if (!r.needsRequest) continue;
      const hosts = r.hosts ?? [{ kind: 'any' } as const];
      const named = hosts.some((h) => h.kind !== 'any' && patternsOverlap(pt.pattern, h));
      const any = hosts.some((h) => h.kind === 'any');
      const what = `tls.passthrough ${formatPattern(pt.pattern)} is never intercepted, so rule "${r.info.id}" (${where(r.info.source)}), which inspects requests, can never apply to HTTPS to it`;
      if (named || pt.pattern.kind === 'any') p.error(pt.source, `${what}; remove the host from passthrough or make the rule host-level`);
      else if (any) p.warn(pt.source, what);
    }
  }
}

function formatPattern(h: HostPattern): string {
  return h.kind === 'any' ? '"*"' : h.kind === 'suffix' ? `"*.${h.suffix}"` : h.host;
}

/** Whether two host patterns can match a common host. */
function patternsOverlap(a: HostPattern, b: HostPattern): boolean {
  if (a.kind === 'any' || b.kind === 'any') return true;
  const under = (host: string, suffix: string): boolean => host.endsWith(`.${suffix}`);
  if (a.kind === 'exact' && b.kind === 'exact') return a.host === b.host;
  if (a.kind === 'exact' && b.kind === 'suffix') return under(a.host, b.suffix);
  if (a.kind === 'suffix' && b.kind === 'exact') return under(b.host, a.suffix);
  if (a.kind === 'suffix' && b.kind === 'suffix') return a.suffix === b.suffix || under(a.suffix, b.suffix) || under(b.suffix, a.suffix);
  return false;
}

function compileDestinationAllow(files: readonly ParsedPolicyFile[], p: Problems): string[] {
  const allow: string[] = [];
  for (const f of files) {
    for (const [i, entry] of (f.data.destinations?.allow ?? []).entries()) {
      const parsed = parseRange(entry);
      if (!parsed.ok) p.error(f.locate(['destinations', 'allow', i]), parsed.message);
      else allow.push(entry);
    }
  }
  return allow;
}

function compileRoutes(files: readonly ParsedPolicyFile[], p: Problems): ReverseRoute[] {
  const routes: ReverseRoute[] = [];
  const sources = new Map<string, SourcePosition>();
  for (const f of files) {
    for (const [i, r] of (f.data.routes ?? []).entries()) {
      const source = f.locate(['routes', i]);
      const prefixAt = f.locate(['routes', i, 'prefix']);
      if (!/^\/(?:[^?#%\s]*\/)?$/.test(r.prefix)) {
        p.error(prefixAt, `route prefix "${r.prefix}" must start and end with "/" and contain no "?", "#", "%" or spaces`);
        continue;
      }
      if (r.prefix.startsWith('/.airlock/')) {
        p.error(prefixAt, 'route prefixes under /.airlock/ are reserved (agents poll approvals there)');
        continue;
      }
      const first = sources.get(r.prefix);
      if (first) {
        p.error(prefixAt, `route prefix "${r.prefix}" is already routed at ${where(first)}`);
        continue;
      }
      const upstream = parseUpstream(r.upstream);
      if (typeof upstream === 'string') {
        p.error(f.locate(['routes', i, 'upstream']), upstream);
        continue;
      }
      sources.set(r.prefix, source);
      routes.push({ prefix: r.prefix, ...upstream, source });
    }
  }
  // Longest prefix first, so the first route whose prefix matches is the most specific one.
  return routes.sort((a, b) => b.prefix.length - a.prefix.length);
}

function parseUpstream(raw: string): Pick<ReverseRoute, 'scheme' | 'host' | 'port' | 'upstreamPath'> | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `route upstream "${raw}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `route upstream "${raw}" must be an http or https URL`;
  if (url.username || url.password) return `route upstream "${raw}" must not contain credentials`;
  if (raw.includes('?') || raw.includes('#')) return `route upstream "${raw}" must not have a query or fragment`;
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  return {
    scheme,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : scheme === 'https' ? 443 : 80,
    upstreamPath: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`,
  };
}

interface RuleContext {
  classification: ClassificationConfig | null;
  classificationDeclared: boolean;
  identities: ReadonlyMap<string, IdentityConfig>;
  approverGroups: ReadonlyMap<string, ApproverGroup>;
  knownGroups: ReadonlySet<string>;
}

function compileRule(rule: PolicyRule, order: number, at: (...rest: YamlPath) => SourcePosition, ctx: RuleContext, p: Problems): CompiledRule | null {
  const before = p.errors.length;
  const approval = compileApproval(rule, at, ctx, p);
  const m: PolicyMatch = rule.match;
  const matchAt = (...rest: YamlPath): SourcePosition => at('match', ...rest);

  const methods = m.methods ? new Set(m.methods.map((x) => x.toUpperCase())) : null;
  // Frameworks run GET handlers for HEAD: a rule on GET decides HEAD too.
  if (methods?.has('GET')) methods.add('HEAD');
  for (const [i, method] of (m.methods ?? []).entries()) {
    if (!KNOWN_METHODS.has(method.toUpperCase())) p.warn(matchAt('methods', i), `method "${method}" is not one the proxy's HTTP parser accepts; no request will have it`);
  }

  let hosts: HostPattern[] | null = null;
  if (m.hosts) {
    hosts = [];
    for (const [i, raw] of m.hosts.entries()) {
      const host = compileHost(raw);
      if (typeof host === 'string') p.error(matchAt('hosts', i), host);
      else hosts.push(host);
    }
  }

  let paths: { glob: string; regex: RegExp }[] | null = null;
  if (m.paths) {
    paths = [];
    // Rules that restrict match any case by default: `/v1/ADMIN` reaches the admin handler of many upstreams.
    const ignoreCase = !(m.caseSensitivePaths ?? rule.action === 'allow');
    for (const [i, glob] of m.paths.entries()) {
      const compiled = compileGlob(glob, ignoreCase);
      if (compiled.ok) paths.push({ glob, regex: compiled.regex });
      else p.error(matchAt('paths', i), compiled.message);
    }
  }

  const headers: HeaderCondition[] = [];
  const headerNames = new Map<string, string>();
  for (const [written, cond] of Object.entries(m.headers ?? {})) {
    const name = written.toLowerCase();
    const here = matchAt('headers', written);
    const clash = headerNames.get(name);
    if (clash !== undefined) {
      p.error(here, `header "${written}" is already constrained as "${clash}" (header names are case-insensitive)`);
      continue;
    }
    headerNames.set(name, written);
    const given = (['equals', 'oneOf', 'present'] as const).filter((k) => cond[k] !== undefined);
    if (given.length !== 1) {
      p.error(here, `header "${written}" needs exactly one of equals, oneOf, present (got ${given.length === 0 ? 'none' : given.join(', ')})`);
      continue;
    }
    if (cond.equals !== undefined) headers.push({ name, kind: 'equals', value: cond.equals });
    else if (cond.oneOf !== undefined) headers.push({ name, kind: 'oneOf', values: new Set(cond.oneOf) });
    else headers.push({ name, kind: 'present', present: cond.present === true });
  }

  const query: { name: string; condition: ValueCondition }[] = [];
  const queryNames = new Map<string, string>();
  for (const [written, spec] of Object.entries(m.query ?? {})) {
    const name = written.toLowerCase();
    const clash = queryNames.get(name);
    if (clash !== undefined) {
      p.error(matchAt('query', written), `query parameter "${written}" is already constrained as "${clash}" (parameter names are case-insensitive)`);
      continue;
    }
    queryNames.set(name, written);
    const condition = compileCondition(spec);
    if ('error' in condition) p.error(matchAt('query', written), `query parameter "${written}": ${condition.error}`);
    else query.push({ name, condition });
  }

  const body = compileBodyMatch(m, matchAt, p);
  const classification = compileClassificationMatch(m, matchAt, ctx, p);
  const identities = compileIdentityMatch(m, matchAt, ctx, p);

  if (Object.keys(m).length === 0) p.warn(at('match'), `rule "${rule.id}" has an empty match: it matches every request`);
  if (p.errors.length > before) return null;

  const info: RuleInfo = {
    id: rule.id,
    action: rule.action,
    mode: rule.mode,
    ...(rule.description !== undefined ? { description: rule.description } : {}),
    ...(rule.reason !== undefined ? { reason: rule.reason } : {}),
    source: at(),
    ...(approval ? { approval } : {}),
  };
  return {
    info,
    order,
    rank: ACTION_RANK[rule.action],
    methods,
    hosts,
    ports: m.ports ? new Set(m.ports) : null,
    paths,
    headers,
    query,
    body,
    classification,
    identities,
    needsRequest: methods !== null || paths !== null || headers.length > 0 || query.length > 0 || body !== null || classification !== null,
  };
}

/** Headers no approver may edit: framing, routing and credentials. */
const NEVER_EDITABLE = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'authorization', 'proxy-authorization', 'cookie', 'expect']);

function compileApproval(rule: PolicyRule, at: (...rest: YamlPath) => SourcePosition, ctx: RuleContext, p: Problems): ApprovalSettings | null {
  const a = rule.approval;
  if (rule.action !== 'approve') {
    if (a) p.error(at('approval'), `approval is only allowed on rules with action: approve (this rule's action is ${rule.action})`);
    return null;
  }
  if (!a) {
    p.error(at('action'), `rule "${rule.id}" has action: approve but no approval: { approvers: [...] }`);
    return null;
  }
  const members = new Set<string>();
  let groupsOk = true;
  for (const [i, group] of a.approvers.entries()) {
    const def = ctx.approverGroups.get(group);
    if (!def) {
      const known = [...ctx.approverGroups.keys()];
      p.error(at('approval', 'approvers', i), `unknown approver group "${group}" (defined groups: ${known.length ? known.join(', ') : 'none'})`);
      groupsOk = false;
      continue;
    }
    for (const id of [...def.slack, ...def.teams, ...def.api]) members.add(id);
    // Identity-provider groups have members Airlock cannot count.
    if (def.idpGroups.length > 0) groupsOk = false;
  }
  if (groupsOk && a.required > members.size) {
    p.error(at('approval', 'required'), `approval.required is ${a.required} but the approver groups [${a.approvers.join(', ')}] have only ${members.size} distinct approver(s)`);
  }
  const waitMs = parseDuration(a.wait);
  const expiresMs = parseDuration(a.expires);
  if (waitMs === null || expiresMs === null) return null; // the schema already reported the bad duration
  if (waitMs > expiresMs) {
    p.error(at('approval', 'wait'), `approval.wait (${a.wait}) is longer than approval.expires (${a.expires}); a held request would outlive its approval`);
  } else if (waitMs > SAFE_WAIT_MS) {
    p.warn(
      at('approval', 'wait'),
      `approval.wait (${a.wait}) holds clients longer than many wait for an answer (the MCP SDK 60 s, httpx 5 s; docs/approvals.md#client-timeouts): keep it at ${formatDuration(SAFE_WAIT_MS)} or less and let agents repeat the request, or have them send Prefer: respond-async`,
    );
  }
  let escalation: ApprovalSettings['escalation'];
  if (a.escalate) {
    const afterMs = parseDuration(a.escalate.after);
    for (const [i, group] of a.escalate.approvers.entries()) {
      if (!ctx.approverGroups.has(group)) p.error(at('approval', 'escalate', 'approvers', i), `unknown approver group "${group}"`);
    }
    if (afterMs !== null && afterMs >= expiresMs) {
      p.error(at('approval', 'escalate', 'after'), `approval.escalate.after (${a.escalate.after}) is not shorter than approval.expires (${a.expires}): nobody would be asked before it expires`);
    }
    if (afterMs !== null) escalation = { afterMs, approvers: [...new Set(a.escalate.approvers)], ...(a.escalate.channel !== undefined ? { channel: a.escalate.channel } : {}), ...(a.escalate.teams !== undefined ? { teams: a.escalate.teams } : {}) };
  }
  const grantMs = a.grants ? parseDuration(a.grants.maxDuration) : null;
  const grants = a.grants && grantMs !== null ? { maxDurationMs: grantMs, maxUses: a.grants.maxUses } : undefined;
  const probes: ProbeSpec[] = [];
  for (const [i, pr] of (a.probes ?? []).entries()) {
    const problem = probeTemplateProblem(pr.url) ?? (pr.body === undefined ? null : probeTemplateProblem(pr.body, false));
    if (problem !== null) p.error(at('approval', 'probes', i, 'url'), `probe "${pr.name}": ${problem}`);
    const timeoutMs = parseDuration(pr.timeout);
    for (const name of Object.keys(pr.headers ?? {})) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) p.error(at('approval', 'probes', i, 'headers', name), `probe "${pr.name}": "${name}" is not a header name`);
    }
    probes.push({
      name: pr.name,
      method: pr.method,
      url: pr.url,
      headers: Object.entries(pr.headers ?? {}).map(([name, value]) => ({ name: name.toLowerCase(), value })),
      body: pr.body ?? null,
      show: pr.show,
      timeoutMs: timeoutMs ?? 5000,
      maxBytes: pr.maxBytes,
    });
  }
  const editableHeaders = [...new Set((a.editableHeaders ?? []).map((h) => h.toLowerCase()))];
  for (const [i, h] of editableHeaders.entries()) {
    if (NEVER_EDITABLE.has(h)) p.error(at('approval', 'editableHeaders', i), `header "${h}" cannot be made editable: it changes where or as whom the request goes, or how it is framed`);
  }
  return { approvers: [...new Set(a.approvers)], required: a.required, waitMs, expiresMs, editableHeaders, probes, ...(a.channel !== undefined ? { channel: a.channel } : {}), ...(a.teams !== undefined ? { teams: a.teams } : {}), ...(escalation ? { escalation } : {}), ...(grants ? { grants } : {}) };
}

function compileBodyMatch(m: PolicyMatch, matchAt: (...rest: YamlPath) => SourcePosition, p: Problems): BodyCriteria | null {
  if (!m.body) return null;
  const json: BodyCriteria['json'][number][] = [];
  for (const [path, spec] of Object.entries(m.body.json ?? {})) {
    const segments = parseJsonPath(path);
    const condition = compileCondition(spec);
    if ('error' in segments) p.error(matchAt('body', 'json', path), segments.error);
    else if ('error' in condition) p.error(matchAt('body', 'json', path), `JSON path "${path}": ${condition.error}`);
    else json.push({ path, segments, condition });
  }
  const form: BodyCriteria['form'][number][] = [];
  const formNames = new Map<string, string>();
  for (const [written, spec] of Object.entries(m.body.form ?? {})) {
    const name = written.toLowerCase();
    const clash = formNames.get(name);
    if (clash !== undefined) {
      p.error(matchAt('body', 'form', written), `form field "${written}" is already constrained as "${clash}" (field names are case-insensitive)`);
      continue;
    }
    formNames.set(name, written);
    const condition = compileCondition(spec);
    if ('error' in condition) p.error(matchAt('body', 'form', written), `form field "${written}": ${condition.error}`);
    else form.push({ name, condition });
  }
  let graphql: BodyCriteria['graphql'] = null;
  if (m.body.graphql) {
    const g: { -readonly [K in keyof NonNullable<BodyCriteria['graphql']>]: ValueCondition } = {};
    for (const key of ['operation', 'name', 'field'] as const) {
      const spec = m.body.graphql[key];
      if (spec === undefined) continue;
      const condition = compileCondition(spec);
      if ('error' in condition) p.error(matchAt('body', 'graphql', key), `graphql ${key}: ${condition.error}`);
      else g[key] = condition;
    }
    if (Object.keys(m.body.graphql).length === 0) p.error(matchAt('body', 'graphql'), 'match.body.graphql needs at least one of operation, name, field');
    graphql = g;
  }
  let rpc: BodyCriteria['rpc'] = null;
  if (m.body.jsonrpc) {
    const spec = m.body.jsonrpc;
    const r: { method?: ValueCondition; tool?: ValueCondition; arguments: NonNullable<BodyCriteria['rpc']>['arguments'][number][] } = { arguments: [] };
    for (const key of ['method', 'tool'] as const) {
      const s = spec[key];
      if (s === undefined) continue;
      const condition = compileCondition(s);
      if ('error' in condition) p.error(matchAt('body', 'jsonrpc', key), `jsonrpc ${key}: ${condition.error}`);
      else r[key] = condition;
    }
    for (const [path, s] of Object.entries(spec.arguments ?? {})) {
      const segments = parseJsonPath(path);
      const condition = compileCondition(s);
      if ('error' in segments) p.error(matchAt('body', 'jsonrpc', 'arguments', path), segments.error);
      else if ('error' in condition) p.error(matchAt('body', 'jsonrpc', 'arguments', path), `argument "${path}": ${condition.error}`);
      else r.arguments.push({ path, segments, condition });
    }
    if (Object.keys(spec).length === 0) p.error(matchAt('body', 'jsonrpc'), 'match.body.jsonrpc needs at least one of method, tool, arguments');
    rpc = r;
  }
  if (Object.keys(m.body.json ?? {}).length + Object.keys(m.body.form ?? {}).length === 0 && !m.body.graphql && !m.body.jsonrpc) {
    p.error(matchAt('body'), 'match.body needs at least one json, form, graphql or jsonrpc condition');
  }
  return { json, form, graphql, rpc };
}

function compileClassificationMatch(m: PolicyMatch, matchAt: (...rest: YamlPath) => SourcePosition, ctx: RuleContext, p: Problems): CompiledRule['classification'] {
  const c = m.classification;
  if (!c) return null;
  const config = ctx.classification;
  if (!config) {
    if (!ctx.classificationDeclared) p.error(matchAt('classification'), 'match.classification needs a top-level classification: { header, levels } in some policy file');
    return null;
  }
  if ((c.atLeast === undefined) === (c.in === undefined)) {
    p.error(matchAt('classification'), 'match.classification needs exactly one of atLeast, in');
    return null;
  }
  const unknown = (level: string, path: YamlPath): void =>
    p.error(matchAt('classification', ...path), `unknown classification level "${level}" (levels: ${config.levels.join(', ')})`);
  if (c.atLeast !== undefined) {
    const from = config.levels.indexOf(c.atLeast);
    if (from < 0) {
      unknown(c.atLeast, ['atLeast']);
      return null;
    }
    return { levels: new Set(config.levels.slice(from)), text: `at least ${c.atLeast}` };
  }
  const levels = c.in ?? [];
  let ok = true;
  for (const [i, level] of levels.entries()) {
    if (!config.levels.includes(level)) {
      unknown(level, ['in', i]);
      ok = false;
    }
  }
  return ok ? { levels: new Set(levels), text: `in [${levels.join(', ')}]` } : null;
}

function compileIdentityMatch(m: PolicyMatch, matchAt: (...rest: YamlPath) => SourcePosition, ctx: RuleContext, p: Problems): CompiledRule['identities'] {
  if (!m.identities) return null;
  const ids = new Set<string>();
  const groups = new Set<string>();
  for (const [i, ref] of m.identities.entries()) {
    if (ref.startsWith('group:')) {
      const group = ref.slice('group:'.length);
      if (!ctx.knownGroups.has(group)) p.warn(matchAt('identities', i), `no identity is in group "${group}": this entry matches no caller`);
      groups.add(group);
    } else if (ctx.identities.has(ref)) {
      ids.add(ref);
    } else {
      p.error(matchAt('identities', i), `unknown identity "${ref}" (write "group:${ref}" for a group)`);
    }
  }
  return { ids, groups };
}

/**
 * Host patterns: an exact name, `*.suffix` (any depth of subdomain, not the apex) or `*`.
 * Names go through the WHATWG URL parser so they compare equal to canonical request hosts
 * (lower case, IDNA as punycode, IPv4 normalised, IPv6 without brackets).
 */
function compileTests(files: readonly ParsedPolicyFile[], ruleSources: ReadonlyMap<string, SourcePosition>, p: Problems): PolicyTestCase[] {
  const tests: PolicyTestCase[] = [];
  for (const f of files) {
    for (const [i, t] of (f.data.tests ?? []).entries()) {
      if (t.rule != null && !ruleSources.has(t.rule)) {
        p.error(f.locate(['tests', i, 'rule']), `test expects rule "${t.rule}", which no policy file defines`);
        continue;
      }
      const body = t.request.body;
      const headers = t.request.headers ?? {};
      const asJson = body !== undefined && typeof body !== 'string';
      const hasType = Object.keys(headers).some((h) => h.toLowerCase() === 'content-type');
      tests.push({
        method: t.request.method.toUpperCase(),
        url: t.request.url,
        headers: asJson && !hasType ? { ...headers, 'Content-Type': 'application/json' } : headers,
        body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
        identity: t.request.identity ?? null,
        expect: t.expect,
        ...(t.rule !== undefined ? { rule: t.rule } : {}),
        source: f.locate(['tests', i]),
      });
    }
  }
  return tests;
}

interface MutableBucket {
  all: CompiledRule[];
  byMethod: Map<string, CompiledRule[]>;
  anyMethod: CompiledRule[];
}

function newBucket(): MutableBucket {
  return { all: [], byMethod: new Map(), anyMethod: [] };
}

function addToBucket(bucket: MutableBucket, rule: CompiledRule): void {
  bucket.all.push(rule);
  if (!rule.methods) {
    bucket.anyMethod.push(rule);
    return;
  }
  for (const method of rule.methods) {
    const list = bucket.byMethod.get(method);
    if (list) list.push(rule);
    else bucket.byMethod.set(method, [rule]);
  }
}

/** Index by host (exact, wildcard suffix, any) then method; rules are added in load order, so every list stays in it. */
function buildIndex(rules: readonly CompiledRule[]): RuleIndex {
  const exactHosts = new Map<string, MutableBucket>();
  const hostSuffixes = new Map<string, MutableBucket>();
  const anyHost = newBucket();
  const bucketIn = (map: Map<string, MutableBucket>, key: string): MutableBucket => {
    let b = map.get(key);
    if (!b) map.set(key, (b = newBucket()));
    return b;
  };
  for (const rule of rules) {
    // A rule listing both `a.example` and `*.example` lands in two buckets, but never twice in one.
    const buckets = new Set<MutableBucket>();
    for (const h of rule.hosts ?? [{ kind: 'any' } as const]) {
      if (h.kind === 'any') buckets.add(anyHost);
      else if (h.kind === 'exact') buckets.add(bucketIn(exactHosts, h.host));
      else buckets.add(bucketIn(hostSuffixes, h.suffix));
    }
    for (const b of buckets) addToBucket(b, rule);
  }
  return { rules, exactHosts, hostSuffixes, anyHost };
}
