/**
 * `airlock policy check|explain|test`: the policy engine from the command line, without a proxy
 * running or any request sent. Each command is also exported as a function returning its exit code.
 */
import { Option, type Command } from 'commander';
import { explain, explainTunnel, type Explanation, type RuleExplanation } from '../policy/explain.js';
import { canonicalizeAuthority } from '../request/canonicalize.js';
import { readFile } from 'node:fs/promises';
import { formatPolicyError } from '../policy/errors.js';
import { describeFinding } from '../inspect/finding.js';
import { decideGiven } from '../policy/given.js';
import { loadPolicyDir, type LoadResult } from '../policy/load.js';
import { formatDuration } from '../policy/duration.js';
import { resolveIdentity, runTestCases } from '../policy/testcases.js';
import type { CanonicalRequest, CompiledPolicy, Decision, SourcePosition } from '../policy/types.js';

/** Where the commands write; tests pass their own. */
export interface PolicyCliIo {
  out(line: string): void;
  err(line: string): void;
}

const processIo: PolicyCliIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

export interface ExplainOptions {
  policies?: string;
  /** An interception CA is configured (AIRLOCK_CA_CERT): what a CONNECT to an inspected host gets. */
  ca?: boolean;
  method: string;
  url: string;
  header?: string[];
  identity?: string;
  /** The request body: text, or `@file` to read it from a file (as curl's --data). */
  data?: string;
  json?: boolean;
  all?: boolean;
}

export function registerPolicyCommands(program: Command, io: PolicyCliIo = processIo): void {
  const policy = program.command('policy').description('check, explain and test policy files');
  policy
    .command('check')
    .description('validate a policy folder; errors as file:line:col message')
    .argument('<dir>', 'policy folder')
    .action(async (dir: string) => {
      process.exitCode = await policyCheck(dir, io);
    });
  policy
    .command('explain')
    .description('the decision for a request (or a CONNECT tunnel) and every rule that matched, without sending anything')
    .argument('[dir]', 'policy folder (as for check and test)')
    .addOption(new Option('--policies <dir>', 'policy folder, instead of the argument').env('AIRLOCK_POLICIES'))
    .option('--method <method>', 'HTTP method, or CONNECT (then --url is host:port)', 'GET')
    .requiredOption('--url <url>', 'absolute URL, as an agent would send it through the proxy; host:port for CONNECT')
    .addOption(new Option('--ca', 'as if an interception CA is configured (what a CONNECT to an inspected host gets)').env('AIRLOCK_CA_CERT'))
    .option('--header <header>', "request header 'Name: value' (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option('--identity <id>', 'identity of the caller (default: anonymous)')
    .option('--data <body>', 'request body, or @file to read it from a file (rules that inspect the body see it)')
    .option('--json', 'machine-readable output, with every rule and why it did or did not match')
    .option('--all', 'also show the rules that did not match, with the first criterion that failed')
    .action(async (dir: string | undefined, opts: ExplainOptions) => {
      process.exitCode = await policyExplain({ ...opts, ...(dir !== undefined ? { policies: dir } : {}) }, io);
    });
  policy
    .command('test')
    .description('run the tests: cases written in the policy files')
    .argument('<dir>', 'policy folder')
    .action(async (dir: string) => {
      process.exitCode = await policyTest(dir, io);
    });
}

const at = (s: SourcePosition): string => `${s.file}:${s.line}:${s.col}`;

function reportLoad(result: LoadResult, io: PolicyCliIo): result is Extract<LoadResult, { ok: true }> {
  for (const w of result.warnings) io.err(formatPolicyError({ ...w, message: `warning: ${w.message}` }));
  if (result.ok) return true;
  for (const e of result.errors) io.err(formatPolicyError(e));
  io.err(`${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`);
  return false;
}

export async function policyCheck(dir: string, io: PolicyCliIo = processIo): Promise<number> {
  const result = await loadPolicyDir(dir);
  if (!reportLoad(result, io)) return 1;
  const p = result.policy;
  io.out(`ok: ${p.files.length} file${p.files.length === 1 ? '' : 's'}, ${p.rules.length} rules, ${p.tests.length} tests (version ${p.version})`);
  return 0;
}

export async function policyTest(dir: string, io: PolicyCliIo = processIo): Promise<number> {
  const result = await loadPolicyDir(dir);
  if (!reportLoad(result, io)) return 1;
  const results = await runTestCases(result.policy);
  let failed = 0;
  for (const r of results) {
    const { method, url } = r.case;
    if (r.ok) {
      const by = r.decision?.rule == null ? 'default' : `rule ${r.decision.rule}`;
      io.out(`ok   ${at(r.case.source)} ${method} ${url} -> ${r.decision?.action} (${by})`);
    } else {
      failed++;
      io.out(`FAIL ${at(r.case.source)} ${r.message} [${method} ${url}]`);
    }
  }
  if (results.length === 0) io.out('no tests: cases in the policy files');
  else io.out(`${results.length - failed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

export async function policyExplain(opts: ExplainOptions, io: PolicyCliIo = processIo): Promise<number> {
  if (!opts.policies) {
    io.err('airlock policy explain: name the policy folder (airlock policy explain policies --url …) or set --policies / AIRLOCK_POLICIES');
    return 2;
  }
  const result = await loadPolicyDir(opts.policies);
  if (!reportLoad(result, io)) return 1;
  const policy = result.policy;
  if (opts.method.toUpperCase() === 'CONNECT') return explainConnect(opts, policy, io);

  const headers: string[] = [];
  for (const h of opts.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) {
      io.err(`--header "${h}": expected 'Name: value'`);
      return 1;
    }
    headers.push(h.slice(0, colon).trim(), h.slice(colon + 1).trim());
  }
  const identity = resolveIdentity(opts.identity ?? null, policy);
  if (identity !== null && 'error' in identity) {
    io.err(`--identity: ${identity.error} (known: ${[...policy.identities.keys()].join(', ') || 'none'})`);
    return 1;
  }
  let body: Buffer | null = null;
  if (opts.data !== undefined) {
    try {
      body = opts.data.startsWith('@') ? await readFile(opts.data.slice(1)) : Buffer.from(opts.data);
    } catch (err) {
      io.err(`--data: cannot read ${opts.data.slice(1)}: ${(err as Error).message}`);
      return 1;
    }
  }
  // Methods are case-sensitive on the wire, but on a command line `post` can only mean POST.
  const given = await decideGiven({ method: opts.method.toUpperCase(), target: opts.url, rawHeaders: headers }, identity, body, policy);
  if (!given.ok) {
    io.err(`400 bad_request: ${given.message}`);
    io.err('the proxy would refuse this request before evaluating any rule');
    return 1;
  }
  const explanation = explain(given.request, policy);
  if (opts.json) io.out(JSON.stringify(explainJson(given.request, explanation), null, 2));
  else printExplanation(given.request, explanation, policy, opts.all === true, io);
  return 0;
}

function explainConnect(opts: ExplainOptions, policy: CompiledPolicy, io: PolicyCliIo): number {
  // A URL names the tunnel a client would open for it (https://h/ → h:443), as curl and others do.
  const authority = /^[a-z][a-z0-9+.-]*:\/\//i.test(opts.url) ? urlAuthority(opts.url) : opts.url;
  const target = authority === null ? { ok: false as const, message: `cannot read ${opts.url} as a URL` } : canonicalizeAuthority(authority);
  if (!target.ok) {
    io.err(`400 bad_request: ${target.message}`);
    return 1;
  }
  const identity = resolveIdentity(opts.identity ?? null, policy);
  if (identity !== null && 'error' in identity) {
    io.err(`--identity: ${identity.error} (known: ${[...policy.identities.keys()].join(', ') || 'none'})`);
    return 1;
  }
  const t = explainTunnel(identity, target.host, target.port, policy, opts.ca === true);
  if (opts.json) {
    io.out(JSON.stringify({ request: { method: 'CONNECT', host: target.host, port: target.port, identity: identity?.id ?? null }, tunnel: t }, null, 2));
    return 0;
  }
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  io.out(`request: CONNECT ${host}:${target.port} (${identity ? `identity ${identity.id}` : 'anonymous'})`);
  io.out(`tunnel: ${t.outcome} (${t.status})${t.passthrough ? ', a passthrough host: never intercepted' : ''}`);
  io.out(`reason: ${t.why}`);
  if (t.outcome === 'intercept') {
    io.out(`inspected by: ${t.rules.join(', ')} (explain each request inside with --method and a URL)`);
  } else {
    const decider = t.decision.rule === null ? null : policy.rules.find((r) => r.id === t.decision.rule);
    io.out(`decision: ${t.decision.action}${decider ? ` by rule ${decider.id} (${at(decider.source)})` : ' (policy default)'}`);
    if (t.decision.matched.length > 0) io.out(`matching rules (most restrictive first): ${t.decision.matched.join(', ')}`);
  }
  return 0;
}

function urlAuthority(url: string): string | null {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return null;
  }
}

function requestSummary(req: CanonicalRequest): Record<string, unknown> {
  return {
    method: req.method,
    scheme: req.scheme,
    host: req.host,
    port: req.port,
    path: req.path,
    query: req.query,
    identity: req.identity?.id ?? null,
    classification: req.classification,
    findings: req.body?.findings ?? [],
  };
}

function explainJson(req: CanonicalRequest, e: Explanation): Record<string, unknown> {
  return { request: requestSummary(req), decision: e.decision, rules: e.rules };
}

function describeApproval(d: Decision): string | null {
  const a = d.approval;
  if (!a) return null;
  const channel = a.channel ? `; channel ${a.channel}` : '';
  return `${a.required} of [${a.approvers.join(', ')}]; wait ${formatDuration(a.waitMs)}; expires ${formatDuration(a.expiresMs)}${channel}`;
}

function printRule(r: RuleExplanation, io: PolicyCliIo): void {
  io.out(`  ${r.id} (${r.action}${r.mode === 'report' ? ', report only' : ''}) ${at(r.source)}`);
  if (r.criteria.length === 0) io.out('    + no criteria: matches every request');
  for (const c of r.criteria) io.out(`    ${c.ok ? '+' : '-'} ${c.detail}`);
}

function printExplanation(req: CanonicalRequest, e: Explanation, policy: CompiledPolicy, all: boolean, io: PolicyCliIo): void {
  const d = e.decision;
  const who = req.identity ? `identity ${req.identity.id}` : 'anonymous';
  const level = req.classification !== null ? `, classification ${req.classification}` : '';
  const host = req.host.includes(':') ? `[${req.host}]` : req.host;
  io.out(`request: ${req.method} ${req.scheme}://${host}:${req.port}${req.encodedPath}${req.query ? `?${req.query}` : ''} (${who}${level})`);
  for (const f of req.body?.findings ?? []) io.out(`found: ${describeFinding(f)}`);
  const decider = d.rule === null ? null : policy.rules.find((r) => r.id === d.rule);
  io.out(`decision: ${d.action}${decider ? ` by rule ${decider.id} (${at(decider.source)})` : ' (policy default)'}`);
  io.out(`reason: ${d.reason}`);
  const approval = describeApproval(d);
  if (approval) io.out(`approval: ${approval}`);

  const byId = new Map(e.rules.map((r) => [r.id, r]));
  const enforcing = d.matched.map((id) => byId.get(id)).filter((r) => r !== undefined);
  io.out(enforcing.length ? 'matching rules (most restrictive first):' : 'matching rules: none');
  for (const r of enforcing) printRule(r, io);
  const reported = d.report.map((r) => byId.get(r.rule)).filter((r) => r !== undefined);
  if (reported.length) {
    io.out('report-only rules that matched (they do not change the decision):');
    for (const r of reported) printRule(r, io);
  }
  if (all) {
    const others = e.rules.filter((r) => !r.matched);
    io.out(others.length ? 'rules that did not match:' : 'rules that did not match: none');
    for (const r of others) printRule(r, io);
  }
}
