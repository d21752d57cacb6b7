/**
 * The shapes shared by the policy engine and its callers. The engine itself (compile, evaluate)
 * is pure: everything it needs arrives in these values.
 */

import type { InspectedBody } from '../inspect/body.js';
import type { ValueCondition } from '../inspect/conditions.js';
import type { DetectorId } from '../inspect/detector-ids.js';
import type { CompiledException, HostExceptions } from './exceptions.js';
import type { JsonPath } from '../inspect/json.js';
import type { HeaderList } from '../request/headers.js';

export type Action = 'allow' | 'deny' | 'approve';

/** Restrictiveness order: a higher number wins when several rules match. */
export const ACTION_RANK: Readonly<Record<Action, number>> = { allow: 0, approve: 1, deny: 2 };

/** Who is calling. `null` identity means an anonymous caller (no credentials, no static identity). */
export interface Identity {
  id: string;
  owner?: string;
  groups: readonly string[];
}

/**
 * One request, parsed strictly and normalised once. This is what policy evaluates and what the
 * proxy forwards: the raw bytes the client sent are never used after canonicalisation.
 */
export interface CanonicalRequest {
  /** Upper-case method token as sent (HTTP methods are case-sensitive; Node's parser only admits known ones). */
  method: string;
  scheme: 'http' | 'https';
  /** Lower-case ASCII host (IDNA to punycode, no trailing dot); IPv6 without brackets. */
  host: string;
  port: number;
  /** Decoded path used for matching: dot segments resolved, slashes merged, never contains %2F/%5C/NUL. */
  path: string;
  /** The same path, percent-encoded canonically: what is sent upstream. */
  encodedPath: string;
  /** Raw query string without the leading `?` ('' when absent). Forwarded as-is. */
  query: string;
  /** Decoded values of the query parameters the policy inspects, by lower-case name (each appears once). */
  params: ReadonlyMap<string, string>;
  /** The body as rules see it, once read because some rule for this request inspects it; absent until then. */
  body?: InspectedBody;
  /** Header fields with lower-cased names, in order (duplicates of inspected headers are refused earlier). */
  headers: HeaderList;
  identity: Identity | null;
  /** The request's data-classification level, or null when the policy defines no classification. */
  classification: string | null;
  /** What the policy's `exceptions` relax for this request's host. */
  exceptions: HostExceptions;
}

/** Who an approver group names: Slack users, Teams users, API approvers, and identity-provider groups (the inbox). */
export interface ApproverGroup {
  slack: readonly string[];
  /** Entra ID object ids or user principal names (lower-case). */
  teams: readonly string[];
  api: readonly string[];
  idpGroups: readonly string[];
}

/** An impact probe: a request template sent before asking, its answer summarised for approvers. */
export interface ProbeSpec {
  name: string;
  method: string;
  url: string;
  headers: readonly { name: string; value: string | { env: string } }[];
  body: string | null;
  show: readonly string[];
  timeoutMs: number;
  maxBytes: number;
}

/** Approval settings of an `approve` rule, parsed and validated at load. Durations in milliseconds. */
export interface ApprovalSettings {
  approvers: readonly string[];
  required: number;
  waitMs: number;
  expiresMs: number;
  channel?: string;
  /** Teams conversation (channel or chat id) the approval card is posted to. */
  teams?: string;
  /** Lower-case names of headers an approver may change when approving with edits. */
  editableHeaders: readonly string[];
  /** Impact probes run when a request is held (approvals/probes.ts). */
  probes: readonly ProbeSpec[];
  /** What an approver may grant with an approval (absent: nothing). */
  grants?: { maxDurationMs: number; maxUses: number };
  /** When nobody has decided after `afterMs`, these groups are asked too (and may decide). */
  escalation?: { afterMs: number; approvers: readonly string[]; channel?: string; teams?: string };
}

export type RuleMode = 'enforce' | 'report';

/** Where a rule (or any policy element) was written, for error messages and `explain`. */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

/** The result of evaluating one request. */
export interface Decision {
  action: Action;
  /** Id of the rule that decided, or null when the default action applied. */
  rule: string | null;
  /** Ids of every enforcing rule that matched, most restrictive first. */
  matched: readonly string[];
  /** Rules in `mode: report` that matched, with what they would have done. */
  report: readonly { rule: string; action: Action }[];
  /** Human-readable reason (the deciding rule's `reason`/`description`, or the default's explanation). */
  reason: string;
  /**
   * Some rule for this request inspects the body, which the request does not carry yet: read it
   * (`InspectedBody`) and evaluate again. The rest of this decision is what it would be without them.
   */
  needsBody?: true;
  /** Present when action is `approve`: the settings of the deciding rule. */
  approval?: ApprovalSettings;
}

/** The decision for a CONNECT before any tunnel opens. */
export type TunnelDecision =
  | { kind: 'decided'; decision: Decision }
  /** Some rule for this host needs method, path, header or classification: bytes must be inspected. */
  | { kind: 'inspect'; rules: readonly string[] };

/** The data-classification scheme: one header, ordered levels (lowest first). */
export interface ClassificationConfig {
  /** Lower-case header name. */
  header: string;
  levels: readonly string[];
  /** Level assumed when the header is absent (defaults to the highest level: unlabeled data is treated as the most sensitive). */
  missing: string;
  /** `detect`: detector to the level its findings raise a request to. Empty: no detection. */
  detect: ReadonlyMap<DetectorId, string>;
  /** Index in `levels` of the highest level a detector can raise a request to (-1: none). */
  detectCeiling: number;
}

/**
 * A configured identity with the SHA-256 digests of its proxy tokens (never the tokens themselves).
 * Digests are plain bytes: a policy compiled on the loader thread arrives by structured clone, which
 * keeps bytes but not the Buffer class.
 */
export interface IdentityConfig extends Identity {
  tokenSha256: readonly Uint8Array[];
  /** Its own cap on requests waiting for approval, when it has one. */
  pendingApprovals?: number;
}

/** A reverse-proxy route: origin-form requests whose path starts with `prefix` go to `upstream`. */
export interface ReverseRoute {
  /** Path prefix, starting and ending with `/` (e.g. `/openai/`). */
  prefix: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** Path prefix on the upstream that replaces `prefix` (e.g. `/v1/`), always ending with `/`. */
  upstreamPath: string;
  source: SourcePosition;
}

/** A `tests:` case from a policy file, run by `airlock policy test`. */
export interface PolicyTestCase {
  method: string;
  url: string;
  headers: Readonly<Record<string, string>>;
  /** The body's text (a `body:` object is written as JSON, with a JSON Content-Type unless one is given); null: none. */
  body: string | null;
  identity: string | null;
  expect: Action;
  /** When given, the deciding rule must be this one (null = the default action). */
  rule?: string | null;
  source: SourcePosition;
}

/** A rule after compilation, as `explain` and the audit trail see it. */
export interface RuleInfo {
  id: string;
  action: Action;
  mode: RuleMode;
  description?: string;
  reason?: string;
  source: SourcePosition;
  approval?: ApprovalSettings;
}

/**
 * A policy folder compiled into lookup structures, built once per load and then only read.
 * Its internals (indexes, compiled matchers) belong to src/policy/compile.ts.
 */
export interface CompiledPolicy {
  /** Short content hash of the source files, written into every audit event. */
  readonly version: string;
  readonly files: readonly string[];
  readonly defaultAction: Action;
  readonly rules: readonly RuleInfo[];
  readonly classification: ClassificationConfig | null;
  /** Lower-case names of every header some rule inspects: duplicates of these are refused. */
  readonly inspectedHeaders: ReadonlySet<string>;
  /** Lower-case names of every query parameter some rule inspects: decoded per request, duplicates refused. */
  readonly inspectedQuery: ReadonlySet<string>;
  /** Lower-case names of every form field some rule inspects. */
  readonly inspectedForm: ReadonlySet<string>;
  /** Whether some rule inspects GraphQL operations (an inspected body is then read as GraphQL too). */
  readonly inspectsGraphql: boolean;
  readonly identities: ReadonlyMap<string, IdentityConfig>;
  readonly approverGroups: ReadonlyMap<string, ApproverGroup>;
  /** Approver name to the SHA-256 digests of their approvals-API bearer tokens. */
  readonly approverTokens: ReadonlyMap<string, readonly Uint8Array[]>;
  readonly routes: readonly ReverseRoute[];
  /** `tls.passthrough` of every file: hosts whose TLS is never intercepted. */
  readonly passthrough: readonly HostPattern[];
  /** `destinations.allow` of every file: addresses the destination guard lets through despite their class. */
  readonly destinationAllow: readonly string[];
  /** `limits.pendingApprovals`: requests one identity may have waiting for approval at once. */
  readonly pendingApprovals: number;
  /** `exceptions` of every file: safe defaults relaxed for named hosts. */
  readonly exceptions: readonly CompiledException[];
  readonly tests: readonly PolicyTestCase[];
  /** Compiled matchers and the host/method index evaluate() uses. Build policies with src/policy/load.ts, never by hand. */
  readonly index: RuleIndex;
}

/* ---- Engine internals: built once by compile.ts, only read by evaluate.ts and explain.ts. ---- */

/** A `match.headers` condition; `name` is lower-case. */
export type HeaderCondition =
  | { readonly name: string; readonly kind: 'equals'; readonly value: string }
  | { readonly name: string; readonly kind: 'oneOf'; readonly values: ReadonlySet<string> }
  | { readonly name: string; readonly kind: 'present'; readonly present: boolean };

/** A `match.hosts` entry after validation: lower-case, IDNA as punycode. `suffix` has no leading `*.`. */
export type HostPattern =
  | { readonly kind: 'exact'; readonly host: string }
  | { readonly kind: 'suffix'; readonly suffix: string }
  | { readonly kind: 'any' };

/** One rule compiled into matchers; a `null` criterion is absent (matches anything). */
export interface CompiledRule {
  readonly info: RuleInfo;
  /** Position in load order (file name order, then position in the file): breaks ties between equal actions. */
  readonly order: number;
  readonly rank: number;
  readonly methods: ReadonlySet<string> | null;
  readonly hosts: readonly HostPattern[] | null;
  readonly ports: ReadonlySet<number> | null;
  readonly paths: readonly { readonly glob: string; readonly regex: RegExp }[] | null;
  readonly headers: readonly HeaderCondition[];
  /** `match.query`: lower-case parameter name and its condition. */
  readonly query: readonly { readonly name: string; readonly condition: ValueCondition }[];
  /** `match.body`, or null when the rule does not look at the body. */
  readonly body: BodyCriteria | null;
  /** Admitted levels, plus the criterion as written (for explain). */
  readonly classification: { readonly levels: ReadonlySet<string>; readonly text: string } | null;
  readonly identities: { readonly ids: ReadonlySet<string>; readonly groups: ReadonlySet<string> } | null;
  /** True when the rule needs more than host, port and identity to decide (a CONNECT must then be inspected). */
  readonly needsRequest: boolean;
}

/** Conditions on a request body: JSON values by path, form fields by lower-case name. */
export interface BodyCriteria {
  readonly json: readonly { readonly path: string; readonly segments: JsonPath; readonly condition: ValueCondition }[];
  readonly form: readonly { readonly name: string; readonly condition: ValueCondition }[];
  /** GraphQL operation type, name and root-field conditions (each optional). */
  readonly graphql: { readonly operation?: ValueCondition; readonly name?: ValueCondition; readonly field?: ValueCondition } | null;
  /** JSON-RPC method and, for tools/call, tool and argument conditions. */
  readonly rpc: {
    readonly method?: ValueCondition;
    readonly tool?: ValueCondition;
    readonly arguments: readonly { readonly path: string; readonly segments: JsonPath; readonly condition: ValueCondition }[];
  } | null;
}

/** Rules sharing a host key, split by method so a request only looks at rules that can match its method. */
export interface RuleBucket {
  /** Every rule of the bucket in load order (CONNECT decisions look at all methods). */
  readonly all: readonly CompiledRule[];
  readonly byMethod: ReadonlyMap<string, readonly CompiledRule[]>;
  readonly anyMethod: readonly CompiledRule[];
}

export interface RuleIndex {
  /** Every rule, in load order. */
  readonly rules: readonly CompiledRule[];
  readonly exactHosts: ReadonlyMap<string, RuleBucket>;
  /** Keyed by the suffix without `*.` (`data.internal`); a request host is looked up by each of its label suffixes. */
  readonly hostSuffixes: ReadonlyMap<string, RuleBucket>;
  readonly anyHost: RuleBucket;
}

/** A problem in a policy file, always with its position. Formatted as `file:line:col message`. */
export interface PolicyError extends SourcePosition {
  message: string;
}
