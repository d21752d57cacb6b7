/**
 * The shape of ONE policy file: the single source of truth for validation, the TypeScript types of
 * parsed files (z.infer) and the JSON Schema editors use (policies/schema.json).
 *
 * Only what can be checked inside one value lives here; cross-references (approver groups,
 * identities, classification levels, duplicate ids) are checked in compile.ts, which knows every file.
 * Every object is strict: a typo such as `methds` must be an error, never a silently wider rule.
 */
import { z } from 'zod';
import { DETECTORS } from '../inspect/detector-ids.js';
import { DURATION_PATTERN } from './duration.js';

/** Ids of rules, identities, groups and approver groups: no `:` (reserved for `group:` references). */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** RFC 9110 token: what a header name or method may be made of. */
const TOKEN_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const name = (what: string) =>
  z.string().regex(NAME_PATTERN, `${what} must be letters, digits, '.', '_' or '-' (at most 128), starting with a letter or digit`);
const duration = (what: string) =>
  z.string().regex(DURATION_PATTERN, `${what} must be a positive duration such as 30s, 2m, 1m30s, 1h or 1d`);
const nonEmptyStrings = (what: string) => z.array(z.string().min(1, `${what} must not be empty`)).min(1, `${what} must list at least one entry`);

const ActionSchema = z.enum(['allow', 'deny', 'approve']);

const HeaderMatchSchema = z
  .strictObject({
    equals: z.string().optional().describe('The header must be present once with exactly this value.'),
    oneOf: z.array(z.string()).min(1).optional().describe('The header must be present once with one of these exact values.'),
    present: z.boolean().optional().describe('true: the header must be present (any value); false: it must be absent.'),
  })
  .describe('Exactly one of equals, oneOf, present.');

const ScalarSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const ValueConditionSchema = z
  .strictObject({
    equals: ScalarSchema.optional().describe('The value is exactly this (a number also matches the same number written as a string).'),
    oneOf: z.array(ScalarSchema).min(1).optional().describe('The value is one of these.'),
    glob: z.string().optional().describe('A string matching this pattern: * any run of characters, ? one character.'),
    contains: ScalarSchema.optional().describe('A string containing this text, or an array with this element.'),
    present: z.boolean().optional().describe('true: the value is there (any value); false: it is absent. Not combined with other operators.'),
    gt: z.number().optional().describe('A number (or a string spelling one) greater than this.'),
    gte: z.number().optional().describe('A number (or a string spelling one) at least this.'),
    lt: z.number().optional().describe('A number (or a string spelling one) less than this.'),
    lte: z.number().optional().describe('A number (or a string spelling one) at most this.'),
  })
  .describe('Every operator given must hold. Where several values are addressed (repeated fields, * in a path), any one may satisfy it.');

const ClassificationMatchSchema = z
  .strictObject({
    atLeast: z.string().min(1).optional().describe('The request level is this level or a higher one.'),
    in: z.array(z.string().min(1)).min(1).optional().describe('The request level is one of these.'),
  })
  .describe('Exactly one of atLeast, in. Needs a top-level `classification:` in some policy file.');

const MatchSchema = z
  .strictObject({
    methods: z.array(z.string().regex(TOKEN_PATTERN, 'a method must be an HTTP token such as GET')).min(1).optional()
      .describe('HTTP methods (upper-cased at load). Absent: any method.'),
    hosts: nonEmptyStrings('host pattern').optional()
      .describe('Exact host names, "*.suffix" (any subdomain, not the apex) or "*" (any host). Absent: any host.'),
    ports: z.array(z.int().min(1).max(65535)).min(1).optional().describe('Destination ports. Absent: any port.'),
    paths: z.array(z.string().startsWith('/', 'a path glob must start with "/"')).min(1).optional()
      .describe('Path globs on the decoded path: * within one segment, ** any number of segments, ? one character.'),
    caseSensitivePaths: z.boolean().optional()
      .describe('Whether paths match only as written. Default: false for deny and approve rules (any case matches), true for allow rules.'),
    headers: z.record(z.string().regex(TOKEN_PATTERN, 'a header name must be an HTTP token'), HeaderMatchSchema).optional()
      .describe('Header conditions (names case-insensitive); all must hold.'),
    query: z.record(z.string().min(1, 'a query parameter name must not be empty'), ValueConditionSchema).optional()
      .describe('Conditions on decoded query parameters (names case-insensitive); all must hold. A parameter a rule inspects may appear only once.'),
    body: z
      .strictObject({
        json: z.record(z.string(), ValueConditionSchema).optional()
          .describe('JSON path (a JSON Pointer such as /rows or /items/0/id; a * segment is every element) to a condition on the value(s) there.'),
        form: z.record(z.string().min(1, 'a form field name must not be empty'), ValueConditionSchema).optional()
          .describe('Form field (application/x-www-form-urlencoded; names case-insensitive) to a condition on its decoded value.'),
        graphql: z
          .strictObject({
            operation: ValueConditionSchema.optional().describe('The operation type: query, mutation or subscription.'),
            name: ValueConditionSchema.optional().describe('The operation name (null for an anonymous operation).'),
            field: ValueConditionSchema.optional().describe('The fields selected at the root (field names, not aliases; fragments followed).'),
          })
          .optional()
          .describe('Conditions on the GraphQL operations a request carries (JSON body, batch, application/graphql body, or ?query=), read with a GraphQL parser; every operation in the document counts.'),
        jsonrpc: z
          .strictObject({
            method: ValueConditionSchema.optional().describe('The JSON-RPC method, e.g. tools/call, tools/list, resources/read.'),
            tool: ValueConditionSchema.optional().describe('For tools/call (MCP): the name of the tool called.'),
            arguments: z.record(z.string(), ValueConditionSchema).optional()
              .describe('For tools/call: JSON path into the tool\'s arguments (a JSON Pointer such as /table) to a condition.'),
          })
          .optional()
          .describe('Conditions on the JSON-RPC 2.0 calls in the body (MCP over streamable HTTP), one call or a batch; every call counts.'),
      })
      .optional()
      .describe('Conditions on the request body; all must hold. Only requests some body rule could apply to are buffered (up to --max-inspected-body); a body that cannot be read faithfully gets the most restrictive outcome a body rule could give.'),
    classification: ClassificationMatchSchema.optional(),
    identities: nonEmptyStrings('identity').optional()
      .describe('Identity ids, or "group:NAME" for every identity in that group. Anonymous callers never match.'),
  })
  .describe('All given criteria must hold (AND); within a list any entry may match (OR). Empty: every request.');

const ProbeSchema = z
  .strictObject({
    name: z.string().min(1).max(60).describe('Shown to approvers.'),
    method: z.string().regex(/^[A-Z]+$/, 'an upper-case method').default('GET'),
    url: z.string().min(1).describe('http(s) URL template: {scheme} {host} {port} {path} {query} {query.NAME} {json:/pointer} take values from the held request.'),
    headers: z.record(z.string(), z.union([z.string(), z.strictObject({ env: z.string().min(1) })])).optional()
      .describe('Headers to send; `{ env: NAME }` reads a credential from Airlock\'s environment (never the agent\'s).'),
    body: z.string().optional().describe('Body template, same placeholders ({json:/pointer} inserts JSON).'),
    show: z.array(z.string().startsWith('/')).max(10).default([]).describe('JSON Pointers into the answer shown to approvers.'),
    timeout: duration('timeout').default('5s'),
    maxBytes: z.int().min(1).max(1024 * 1024).default(64 * 1024).describe('Most of the answer read.'),
  })
  .describe('A request Airlock sends before asking (a dry run, a preview): its result is shown to approvers and never decides anything.');

const ApprovalSchema = z
  .strictObject({
    approvers: z.array(name('an approver group')).min(1).describe('Approver groups (top-level `approvers:`) who may decide.'),
    required: z.int().min(1).default(1).describe('Distinct approvals needed.'),
    wait: duration('wait').default('55s').describe('How long the client connection is held waiting for a decision (at most 60s keeps clients such as the MCP SDK waiting: see docs/approvals.md#client-timeouts).'),
    expires: duration('expires').default('1h').describe('How long the pending request and its approval stay valid; at least `wait`.'),
    channel: z.string().min(1).optional().describe('Slack channel the approval request is posted to.'),
    teams: z.string().min(1).optional().describe('Microsoft Teams conversation (a channel or chat id, 19:…) the approval card is posted to.'),
    escalate: z
      .strictObject({
        after: duration('escalate.after').describe('How long nobody may have decided before the further group is asked; shorter than `expires`.'),
        approvers: z.array(name('an approver group')).min(1).describe('Approver groups asked (and allowed to decide) from then on, besides the rule\'s.'),
        channel: z.string().min(1).optional().describe('Slack channel the escalation is posted to (default: the rule\'s channel).'),
        teams: z.string().min(1).optional().describe('Teams conversation the escalation is posted to (default: the rule\'s).'),
      })
      .optional()
      .describe('Ask a further group when nobody has decided after a delay. The request still fails closed at `expires`.'),
    grants: z
      .strictObject({
        maxDuration: duration('grants.maxDuration').describe('Longest grant an approver may give with an approval.'),
        maxUses: z.int().min(1).describe('Most uses one grant may allow.'),
      })
      .optional()
      .describe('Let approvers grant the same identity the same action for a while or a number of uses (same rule, method, host and the fields they pin). Absent: no grants.'),
    probes: z.array(ProbeSchema).max(5).optional().describe('Impact probes run when the request is held; their results are shown to approvers.'),
    editableHeaders: z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'a header name')).optional()
      .describe('Request headers an approver may change when approving with edits (the JSON body and query parameters are always editable). Names are case-insensitive; hop-by-hop, host and credential headers never are.'),
  })
  .describe('Required when action is approve, not allowed otherwise.');

const RuleSchema = z.strictObject({
  id: name('a rule id').describe('Unique across all policy files; named in decisions and audit events.'),
  description: z.string().optional(),
  match: MatchSchema,
  action: ActionSchema.describe('What a matching request gets. When several rules match, deny beats approve beats allow.'),
  mode: z.enum(['enforce', 'report']).default('enforce')
    .describe('report: the rule never changes a decision; decisions only list what it would have done.'),
  reason: z.string().optional().describe('Shown to the agent and in the audit trail.'),
  approval: ApprovalSchema.optional(),
});

const tokenDigests = (what: string) =>
  z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, `a token must be written as sha256:<64 lower-case hex digits> (the SHA-256 of the ${what})`));

const IdentitySchema = z.strictObject({
  owner: z.string().min(1).optional().describe('The person responsible for this agent; they may not approve its requests.'),
  groups: z.array(name('a group')).default([]),
  tokens: tokenDigests('proxy token').optional().describe('SHA-256 digests of the proxy tokens this identity authenticates with.'),
  pendingApprovals: z.int().min(1).optional().describe('Most requests this identity may have waiting for approval at once (overrides limits.pendingApprovals).'),
});

const ApproverGroupSchema = z.strictObject({
  slack: z.array(z.string().min(1)).optional().describe('Who may decide in Slack: user ids (U…, W…), user groups (S…), or emails matched to Slack profiles.'),
  teams: z.array(z.string().min(1)).optional()
    .describe('Who may decide in Microsoft Teams: Entra ID object ids, or user principal names (matched to the clicker\'s Teams account).'),
  api: z.array(z.string().min(1)).optional().describe('Names approvers use with the approvals API.'),
  idpGroups: z.array(z.string().min(1)).optional()
    .describe("Identity-provider groups whose members may decide in the web inbox (the OpenID Connect groups claim, or the authenticating proxy's groups header)."),
});

const ClassificationSchema = z.strictObject({
  header: z.string().regex(TOKEN_PATTERN, 'the classification header must be an HTTP token'),
  levels: z.array(name('a level')).min(1).describe('Lowest first.'),
  missing: name('a level').optional().describe('Level of a request without the header. Default: the highest level.'),
  detect: z.partialRecord(z.enum(DETECTORS), name('a level')).optional()
    .describe('Detectors of sensitive data in request bodies, each to the level a finding raises the request to (never lowers it).'),
});

const RouteSchema = z.strictObject({
  prefix: z.string().describe('Origin-form path prefix, starting and ending with "/".'),
  upstream: z.string().describe('http(s) URL the prefix is replaced with, e.g. https://api.openai.com/v1/.'),
});

const TestCaseSchema = z.strictObject({
  request: z.strictObject({
    method: z.string().regex(TOKEN_PATTERN, 'a method must be an HTTP token such as GET').default('GET'),
    url: z.string().min(1).describe('Absolute URL, as an agent would send it to the proxy.'),
    identity: name('an identity').nullable().optional().describe('Identity id (absent or null: anonymous).'),
    headers: z.record(z.string().regex(TOKEN_PATTERN, 'a header name must be an HTTP token'), z.string()).optional(),
    body: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional()
      .describe('The body: text as it is sent, or a map or list sent as JSON (with Content-Type: application/json unless headers name one).'),
  }),
  expect: ActionSchema,
  rule: name('a rule id').nullable().optional().describe('The rule that must decide (null: the default action).'),
});

/** Encoded path characters some upstreams decode before routing, refused unless an exception allows them. */
export const PATH_CHARACTERS = [';', '?', '#', 'non-ascii'] as const;

const ExceptionSchema = z.strictObject({
  hosts: nonEmptyStrings('host pattern').describe('The upstream hosts this exception is for.'),
  description: z.string().optional(),
  pathCharacters: z.array(z.enum(PATH_CHARACTERS)).min(1).optional()
    .describe('Encoded characters allowed in paths to these hosts: %3B (;), %3F (?), %23 (#), and non-ASCII characters. Refused by default: some upstreams decode them before routing.'),
  methodOverride: z.boolean().optional()
    .describe('Forward X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override and a _method query parameter or form field to these hosts. Refused by default: the upstream would act on another method than the rules decided on.'),
  forwardHeaders: z.array(z.string().regex(TOKEN_PATTERN, 'a header name must be an HTTP token')).min(1).optional()
    .describe('Headers forwarded to these hosts although Airlock strips them by default (X-Forwarded-*, Forwarded, X-Real-IP, X-Original-URL, X-Remote-User, …).'),
  rawTunnels: z.boolean().optional()
    .describe('Let tunnels allowed on host-level rules carry any protocol to these hosts (SSH, SMTP, …), not only TLS naming the host or plain HTTP. Airlock sees nothing inside them.'),
});

export const PolicyFileSchema = z
  .strictObject({
    version: z.literal(1).describe('Policy format version; always 1.'),
    defaults: z.strictObject({
      action: z.enum(['allow', 'deny']).describe('Action when no enforcing rule matches. Files that disagree: deny wins.'),
    }).optional(),
    classification: ClassificationSchema.optional().describe('Data-classification scheme; identical in every file that declares it.'),
    identities: z.record(name('an identity id'), IdentitySchema).optional(),
    approvers: z.record(name('an approver group'), ApproverGroupSchema).optional(),
    approverTokens: z.record(z.string().min(1), tokenDigests('approver token').min(1)).optional()
      .describe('Approver name (as listed under approvers.*.api) to the SHA-256 digests of the bearer tokens they use with the approvals API.'),
    routes: z.array(RouteSchema).optional().describe('Reverse-proxy routes.'),
    tls: z.strictObject({
      passthrough: nonEmptyStrings('host pattern').describe(
        'Hosts whose TLS is never intercepted (certificate-pinning clients): their CONNECTs are decided on host-level rules only, and rules that inspect requests cannot apply to them.',
      ),
    }).optional().describe('TLS interception settings.'),
    destinations: z.strictObject({
      allow: z.array(z.string().min(1)).min(1)
        .describe('CIDRs or addresses Airlock may dial although their class is refused by default (private ranges, loopback); metadata addresses only when named exactly.'),
    }).optional().describe('The destination guard: which resolved addresses may be dialled.'),
    limits: z.strictObject({
      pendingApprovals: z.int().min(1).optional()
        .describe('Most requests one identity (anonymous callers together) may have waiting for approval at once; the next is refused with 429. Default 20. Files that disagree: the lowest wins.'),
    }).optional().describe('Bounds on what one agent can ask of people.'),
    exceptions: z.array(ExceptionSchema).optional()
      .describe('Safe defaults relaxed for named upstreams. Each is a way around a check Airlock makes: keep them narrow.'),
    rules: z.array(RuleSchema).optional(),
    tests: z.array(TestCaseSchema).optional().describe('Cases run by `airlock policy test`.'),
  })
  .describe('An Airlock policy file.');

export type PolicyFile = z.infer<typeof PolicyFileSchema>;
export type PolicyRule = z.infer<typeof RuleSchema>;
export type PolicyMatch = z.infer<typeof MatchSchema>;

/** The JSON Schema of a policy file (draft-07: what editors' YAML plugins support best), as written to policies/schema.json. */
/** A stable identifier of the policy file's schema (a URN: nothing has to be served at it). */
export const POLICY_SCHEMA_ID = 'urn:airlock:schema:policy-file:1';

export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicyFileSchema, {
    target: 'draft-7',
    io: 'input',
    // zod writes `startsWith` as a `format` of its own besides the pattern; strict validators refuse
    // unknown formats, and the pattern already says it.
    override: (ctx) => {
      if (ctx.jsonSchema.format === 'starts_with') delete ctx.jsonSchema.format;
    },
  });
  const { $schema, ...rest } = schema;
  return { $schema, $id: POLICY_SCHEMA_ID, title: 'Airlock policy file', ...rest };
}

export function policyJsonSchemaText(): string {
  return JSON.stringify(policyJsonSchema(), null, 2) + '\n';
}
