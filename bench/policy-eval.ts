import { evaluate } from '../src/policy/evaluate.js';
import { loadPolicySources } from '../src/policy/load.js';
import type { CompiledPolicy } from '../src/policy/types.js';
import { canonicalize } from '../src/request/canonicalize.js';

export const RULES = 1000;

/** A policy shaped like a large organisation's: many services, wildcards, header and identity rules. */
export function largePolicyText(n = RULES): string {
  const lines = [
    'version: 1',
    'defaults: { action: deny }',
    'classification: { header: X-Data-Classification, levels: [public, internal, confidential, restricted] }',
    'identities:',
    '  bot: { owner: a@example.com, groups: [agents] }',
    'approvers:',
    '  owners: { api: [b@example.com] }',
    'rules:',
  ];
  for (let i = 0; i < n; i++) {
    const svc = `svc${i % 250}`;
    switch (i % 4) {
      case 0:
        lines.push(`  - { id: r${i}, match: { methods: [GET, HEAD], hosts: [${svc}.internal], paths: ["/v${i % 3}/**"] }, action: allow }`);
        break;
      case 1:
        lines.push(`  - { id: r${i}, match: { hosts: ["*.${svc}.example.com"], paths: ["/admin/**"] }, action: deny }`);
        break;
      case 2:
        lines.push(
          `  - { id: r${i}, match: { methods: [POST], hosts: [${svc}.internal], paths: ["/exports/*"], classification: { atLeast: confidential } }, action: approve, approval: { approvers: [owners], required: 1, wait: 1m, expires: 10m } }`,
        );
        break;
      default:
        lines.push(`  - { id: r${i}, match: { hosts: [${svc}.internal], headers: { X-Env: { equals: prod } }, identities: ["group:agents"] }, action: allow, mode: report }`);
    }
  }
  return lines.join('\n') + '\n';
}

function compileLarge(): CompiledPolicy {
  const r = loadPolicySources([{ file: 'large.yaml', text: largePolicyText() }]);
  if (!r.ok) throw new Error(`benchmark policy does not load: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.policy;
}

/** Median and p99 time per `evaluate` call over batches of canonical requests with 1,000 rules loaded. */
export function benchPolicyEvaluation(): { rules: number; medianNs: number; p99Ns: number } {
  const policy = compileLarge();
  const identity = { id: 'bot', groups: ['agents'] };
  const targets = [
    ['GET', 'http://svc17.internal/v2/items?x=1', []],
    ['POST', 'http://svc42.internal/exports/customers', ['X-Data-Classification', 'restricted']],
    ['DELETE', 'http://a.svc9.example.com/admin/users', []],
    ['GET', 'http://unknown.example.org/', []],
    ['PUT', 'http://svc3.internal/v1/x', ['X-Env', 'prod']],
  ] as const;
  const requests = targets.map(([method, target, headers]) => {
    const r = canonicalize({ method, target, rawHeaders: [...headers] }, identity, policy);
    if (!r.ok) throw new Error(r.message);
    return r.request;
  });
  const BATCH = 2000;
  const batches: number[] = [];
  let sink = 0;
  for (let b = 0; b < 400; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) sink += evaluate(requests[i % requests.length]!, policy).matched.length;
    batches.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
  if (sink < 0) console.log(sink);
  const measured = batches.slice(50).sort((a, b) => a - b);
  return { rules: RULES, medianNs: measured[Math.floor(measured.length / 2)]!, p99Ns: measured[Math.floor(measured.length * 0.99)]! };
}
