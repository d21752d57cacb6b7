import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, run } from '../helpers/harness.js';

test('npm run demo: allowed, denied, held → approved with the CLI → forwarded once; audit chain intact', { timeout: 60_000 }, async () => {
  const env = { ...process.env };
  delete env.REDIS_URL;
  const r = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'demo/run.ts')], env);
  const out = r.stdout;
  assert.equal(r.code, 0, `demo exited ${r.code}\n${out}\n${r.stderr}`);
  assert.doesNotMatch(out, /UNEXPECTED/);

  const agent = out.split('\n').filter((l) => l.startsWith('  agent    │'));
  // The allowed read: 200 with the upstream's body.
  assert.ok(agent.some((l) => l.includes('← 200 {"customers":')), out);
  // The denied delete: 403 with Airlock's JSON naming the rule and its reason.
  const denied = agent.find((l) => l.includes('← 403 '));
  assert.ok(denied, out);
  const body = JSON.parse(denied.slice(denied.indexOf('{'))) as Record<string, unknown>;
  assert.equal(body.error, 'denied');
  assert.equal(body.rule, 'no-customer-deletes');
  assert.equal(body.message, 'Agents may not delete customer records');
  // The held export: listed and approved with the CLI, then completed with the upstream's answer.
  assert.match(out, /\$ airlock approvals list --state pending\n.*ID\s+STATE\s+VOTES.*\n\s+[0-9a-f-]{36}\s+pending\s+0\/1\s+exports-need-approval\s+demo-agent\s+POST http:\/\/127\.0\.0\.1:\d+\/v1\/exports/);
  assert.match(out, /\$ airlock approvals approve [0-9a-f-]{36}/);
  assert.match(out, /approved: [0-9a-f-]{36} \(1 of 1 approval\)/);
  assert.ok(agent.some((l) => l.includes('← 200 {"export":"started"}')), out);

  // The upstream saw exactly the allowed GET and the approved POST, never the DELETE.
  const received = out.split('\n').filter((l) => l.startsWith('  upstream │ received'));
  assert.deepEqual(
    received.map((l) => l.replace(/.*received (\S+ \S+).*/, '$1')),
    ['GET /v1/customers', 'POST /v1/exports'],
  );
  assert.match(out, /upstream received: GET \/v1\/customers, POST \/v1\/exports\n/);

  // The audit trail: allow, deny, approve (held, voted, decided, executed), and a verified chain.
  assert.match(out, /request\s+allow\s+customer-reads\s+GET \/v1\/customers/);
  assert.match(out, /request\s+deny\s+no-customer-deletes\s+DELETE \/v1\/customers\/42/);
  assert.match(out, /request\s+approve\s+exports-need-approval\s+POST \/v1\/exports/);
  assert.match(out, /approval_decided\s+approved\s+exports-need-approval\s+-\s+demo-approver@example\.com/);
  assert.match(out, /approval_executed\s+executed/);
  assert.match(out, /\$ airlock audit verify \S+\n\s+ok: \d+ events, chain intact/);
  assert.match(out, /All steps behaved as expected/);
});
