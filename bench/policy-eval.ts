import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAuditSink } from '../src/audit/sink.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { evaluate } from '../src/policy/evaluate.js';
import { loadPolicySources } from '../src/policy/load.js';
import type { CompiledPolicy } from '../src/policy/types.js';
import { decideGiven } from '../src/policy/given.js';
import { createPolicyHolder } from '../src/policy/watch.js';
import { canonicalize } from '../src/request/canonicalize.js';
import { median } from './lib/stats.js';

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

function compileLarge(n: number): CompiledPolicy {
  const r = loadPolicySources([{ file: 'large.yaml', text: largePolicyText(n) }]);
  if (!r.ok) throw new Error(`benchmark policy does not load: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.policy;
}

/** Median and p99 time per `evaluate` call over batches of canonical requests with `n` rules loaded. */
export function benchPolicyEvaluation(n = RULES): { rules: number; medianNs: number; p99Ns: number } {
  const policy = compileLarge(n);
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
  return { rules: n, medianNs: measured[Math.floor(measured.length / 2)]!, p99Ns: measured[Math.floor(measured.length * 0.99)]! };
}

/**
 * A policy folder of `n` rules held as `airlock serve` holds it: how long an edit takes to come into
 * force after it is written (the folder watch, its 100 ms settling time, reading, parsing, compiling),
 * the longest the event loop stalled meanwhile (what requests in flight would wait), and what a poll
 * costs when nothing changed.
 */
export async function benchPolicyLoad(n: number): Promise<{ loadMs: number; stallMs: number; unchangedMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-policy-bench-'));
  const file = join(dir, 'large.yaml');
  await writeFile(file, largePolicyText(n));
  const audit = await createAuditSink({ destination: join(dir, 'audit.jsonl') });
  const holder = await createPolicyHolder(dir, 3_600_000, { log: createLogger('silent'), metrics: createMetrics(), audit });
  if ('errors' in holder) throw new Error('benchmark policy does not load');
  try {
    const loads: number[] = [];
    const stalls: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `edit${i}`;
      const inForce = new Promise<void>((resolve) => {
        const onLoaded = (p: CompiledPolicy): void => {
          if (!p.rules.some((r) => r.id === id)) return;
          holder.events.off('loaded', onLoaded);
          resolve();
        };
        holder.events.on('loaded', onLoaded);
      });
      const stall = stallMeter();
      const t0 = performance.now();
      await appendFile(file, `  - { id: ${id}, match: { hosts: [${id}.internal] }, action: deny }\n`);
      await inForce;
      loads.push(performance.now() - t0);
      stalls.push(await stall.stop());
    }
    // Files modified in the last 2 s are read again on every poll (timestamps may be too coarse to show a rewrite).
    await sleep(2100);
    const t0 = performance.now();
    const r = await holder.reload();
    const unchangedMs = performance.now() - t0;
    if (!r.ok || r.changed) throw new Error('an unchanged benchmark policy was reloaded');
    return { loadMs: median(loads), stallMs: Math.max(...stalls), unchangedMs };
  } finally {
    await holder.close();
    await audit.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The longest gap between 1 ms timer ticks from now until stop(): how long the event loop was blocked. */
function stallMeter(): { stop(): Promise<number> } {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 1);
  return {
    async stop() {
      await sleep(5);
      clearInterval(timer);
      return max;
    },
  };
}

/**
 * Deciding a request on a 4 KiB JSON body, as the proxy does once the body is read: the body
 * inspected (UTF-8 decode, parse, duplicate-key check) and the policy evaluated with it. Median per
 * decision over batches.
 */
export async function benchBodyDecision(): Promise<{ bodyBytes: number; medianUs: number }> {
  const policy = compileLarge(RULES);
  const items = Array.from({ length: 40 }, (_, i) => ({ id: i, op: i % 7 === 0 ? 'update' : 'read', note: `item ${i} of the batch`, tags: ['a', 'b'] }));
  const text = JSON.stringify({ rows: 250, format: 'csv', items, pad: 'x'.repeat(Math.max(0, 4096 - JSON.stringify({ items }).length - 60)) });
  const body = Buffer.from(text);
  const extra = loadPolicySources([
    { file: 'large.yaml', text: largePolicyText(RULES) },
    { file: 'body.yaml', text: 'version: 1\nrules:\n  - { id: b1, match: { methods: [POST], hosts: [svc1.internal], body: { json: { /rows: { gt: 1000 }, "/items/*/op": { equals: delete } } } }, action: deny }\n' },
  ]);
  if (!extra.ok) throw new Error('benchmark body policy does not load');
  const raw = { method: 'POST', target: 'http://svc1.internal/exports/x', rawHeaders: ['Content-Type', 'application/json', 'Content-Length', String(body.length)] };
  const batches: number[] = [];
  let sink = 0;
  for (let b = 0; b < 200; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) {
      const d = await decideGiven(raw, null, body, extra.policy);
      if (d.ok) sink += d.decision.matched.length;
    }
    batches.push(Number(process.hrtime.bigint() - t0) / 50 / 1000);
  }
  if (sink < 0 || policy.rules.length === 0) console.log(sink);
  const measured = batches.slice(20).sort((a, b) => a - b);
  return { bodyBytes: body.length, medianUs: measured[Math.floor(measured.length / 2)]! };
}
