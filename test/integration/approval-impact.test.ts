/**
 * The facts in front of the approver: size, records, destination, classification and why, and this
 * identity's history under the rule — in the API, the CLI and Slack's message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { approvalRequestMessage } from '../../src/approvals/slack/message.js';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const TOKEN = 'bob-token';

function policy(up: Upstream): string {
  return `
version: 1
classification: { header: X-Data-Classification, levels: [public, internal, confidential], missing: confidential }
approvers:
  owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(TOKEN)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s, expires: 10m }
`;
}

interface Impact {
  body_bytes: number;
  arrays: { path: string; count: number }[];
  destination: string;
  classification: string | null;
  classification_why: string | null;
  history: { approved: number; denied: number; expired: number; first_time: boolean };
}

describe('impact facts for approvers', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot' });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  async function hold(path: string, body: string, headers: string[] = []): Promise<{ id: string; impact: Impact }> {
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'prefer: respond-async', '-H', 'content-type: application/json', ...headers, '-d', body, `${up.origin}${path}`]);
    const id = (JSON.parse(r.stdout) as { approval_id: string }).approval_id;
    const view = (await (await fetch(`${al.adminUrl}/v1/approvals/${id}`, { headers: auth })).json()) as { approval: { impact: Impact } };
    return { id, impact: view.approval.impact };
  }

  async function decide(id: string, verdict: 'approve' | 'deny'): Promise<void> {
    const res = await fetch(`${al.adminUrl}/v1/approvals/${id}/${verdict}`, { method: 'POST', headers: auth, body: JSON.stringify({ reason: 'because' }) });
    assert.equal(res.status, 200);
  }

  it('shows size, record counts, destination, classification and why; the first request is marked first; later ones count earlier decisions', async () => {
    const body = JSON.stringify({ rows: [{ id: 1 }, { id: 2 }, { id: 3 }], columns: ['id'], note: 'x' });
    const first = await hold('/exports/a', body);
    assert.deepEqual(first.impact, {
      body_bytes: Buffer.byteLength(body),
      arrays: [
        { path: '/rows', count: 3 },
        { path: '/columns', count: 1 },
      ],
      destination: `http://127.0.0.1:${up.port}`,
      classification: 'confidential',
      classification_why: 'no x-data-classification header (counts as confidential)',
      history: { approved: 0, denied: 0, expired: 0, first_time: true, window_days: 30 },
    });
    await decide(first.id, 'approve');

    const second = await hold('/exports/b', '[1,2]', ['-H', 'x-data-classification: internal']);
    assert.deepEqual(second.impact.arrays, [{ path: '', count: 2 }]);
    assert.equal(second.impact.classification_why, 'x-data-classification: internal');
    assert.deepEqual(second.impact.history, { approved: 1, denied: 0, expired: 0, first_time: false, window_days: 30 });
    await decide(second.id, 'deny');

    const third = await hold('/exports/c', '{}');
    assert.deepEqual(third.impact.history, { approved: 1, denied: 1, expired: 0, first_time: false, window_days: 30 });

    const show = await airlockCli(['approvals', 'show', third.id, '--admin', al.adminUrl], { ...process.env, AIRLOCK_APPROVER_TOKEN: TOKEN });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /history\s+in 30 days: 1 approved, 1 denied, 0 expired/);
    assert.match(show.stdout, /destination\s+http:\/\/127\.0\.0\.1:\d+/);

    const record = (await al.airlock.approvals.get(first.id))!;
    const text = JSON.stringify(approvalRequestMessage(record, { now: Date.now() }).blocks);
    assert.match(text, /\*Impact\*/);
    assert.match(text, /3 records in `\/rows`/);
    assert.match(text, /first request of this identity under this rule in 30 days/);
  });
});
