/**
 * Impact probes: a held export makes Airlock ask a preview endpoint first, with values from the held
 * request and its own credential; the result reaches approvers. A probe that times out, or goes to a
 * refused destination, is shown as failed and decides nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { approvalRequestMessage } from '../../src/approvals/slack/message.js';
import { hashToken } from '../../src/request/identify.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const TOKEN = 'bob-token';

function policy(up: Upstream): string {
  return `
version: 1
approvers:
  owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKEN)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval:
      approvers: [owners]
      wait: 30s
      expires: 10m
      probes:
        - name: preview
          url: "http://{host}:{port}/preview{path}?table={json:/table}&limit={query.limit}"
          headers: { authorization: { env: AIRLOCK_TEST_PROBE_TOKEN } }
          show: [/count, /columns, /missing]
        - name: slow
          url: "http://{host}:{port}/slow"
          timeout: 300ms
        - name: metadata
          url: "http://169.254.169.254/latest/meta-data/"
          timeout: 1s
`;
}

interface Probe {
  name: string;
  state: string;
  status?: number;
  fields?: { pointer: string; value: string }[];
  error?: string;
}

describe('impact probes', () => {
  let up: Upstream;
  let al: TestAirlock;
  const slow: { end(): void }[] = [];
  before(async () => {
    process.env.AIRLOCK_TEST_PROBE_TOKEN = 'Bearer airlocks-own-credential';
    up = await startUpstream((req, res) => {
      if (req.url?.startsWith('/slow')) {
        // Never answers on its own; closed at the end of the test.
        slow.push(res);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url?.startsWith('/preview') ? { count: 5000, columns: ['id', 'email'], url: req.url } : { ok: true }));
    });
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot' });
  });
  after(async () => {
    for (const res of slow) res.end();
    await al.close();
    await up.close();
    delete process.env.AIRLOCK_TEST_PROBE_TOKEN;
  });

  it('shows what the preview answered, and the timed-out and refused probes as failed, without deciding anything', async () => {
    const held = await run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'prefer: respond-async', '-H', 'authorization: Bearer the-agents-secret', '-H', 'content-type: application/json', '-d', '{"table":"customers"}', `${up.origin}/exports/run?limit=100`]);
    const id = (JSON.parse(held.stdout) as { approval_id: string }).approval_id;
    let probes: Probe[] | null = null;
    const deadline = Date.now() + 10_000;
    while (probes === null) {
      assert.ok(Date.now() < deadline, 'the probes ran');
      const res = await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const view = ((await res.json()) as { approval: { state: string; probes: Probe[] | null } }).approval;
      assert.equal(view.state, 'pending', 'probes decide nothing');
      probes = view.probes;
      if (probes === null) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const [preview, timedOut, refused] = probes;
    assert.deepEqual([preview?.name, preview?.state, preview?.status], ['preview', 'ok', 200]);
    assert.deepEqual(preview?.fields, [
      { pointer: '/count', value: '5000' },
      { pointer: '/columns', value: '["id","email"]' },
      { pointer: '/missing', value: '(absent)' },
    ]);
    assert.deepEqual([timedOut?.state, timedOut?.error], ['failed', 'timed out after 300 ms']);
    assert.equal(refused?.state, 'failed');
    assert.match(refused!.error!, /169\.254\.169\.254/);

    const sent = up.requests.find((r) => r.url.startsWith('/preview'))!;
    assert.equal(sent.url, '/preview/exports/run?table=customers&limit=100', 'values from the held request');
    assert.equal(sent.headers.authorization, 'Bearer airlocks-own-credential', "Airlock's credential, never the agent's");
    assert.equal(up.requests.filter((r) => r.url.startsWith('/exports')).length, 0, 'the held request itself was not sent');

    const record = (await al.airlock.approvals.get(id))!;
    const text = JSON.stringify(approvalRequestMessage(record, { now: Date.now() }).blocks);
    assert.match(text, /Impact probes/);
    assert.match(text, /preview: 200 — `\/count` = `5000`/);
    assert.match(text, /slow: _failed_ \(timed out after 300 ms\)/);
    assert.ok((await al.audit()).some((e) => e.event === 'approval_probed' && e.approval_id === id));
  });

  it('the policy refuses a probe URL with an unknown placeholder or another scheme', async () => {
    const bad = await startTestAirlock({ 'policy.yaml': policy(up).replace('{query.limit}', '{limit}') }, {}).catch((err: Error) => err);
    assert.ok(bad instanceof Error);
    assert.match(String((bad as Error & { errors?: { message: string }[] }).errors?.map((e) => e.message) ?? bad.message), /unknown placeholder \{limit\}/);
  });
});
