import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { eventsFor, proxyEnv, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const APPROVER = 'detector-approver-token';
const CARD = '4111 1111 1111 1111';

describe('classification from content through a real client', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({
      'policy.yaml': `
version: 1
defaults: { action: deny }
classification:
  header: X-Data-Classification
  levels: [public, internal, confidential, restricted]
  missing: internal
  detect: { payment-card: confidential, secret: restricted }
approvers:
  data-owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(APPROVER)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**"], classification: { in: [public, internal] } }
    action: allow
  - id: confidential-exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**"], classification: { atLeast: confidential } }
    action: approve
    approval: { approvers: [data-owners], wait: 30s }
`,
    });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  /** POST a JSON body with Python's urllib through HTTP_PROXY: [status, request id, body]. */
  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<[number, string, string]> => {
    const script = [
      'import json, sys, urllib.request, urllib.error',
      `req = urllib.request.Request("${up.origin}/exports/customers", data=sys.stdin.buffer.read(), method="POST", headers=json.loads(sys.argv[1]))`,
      'try:',
      '    res = urllib.request.urlopen(req)',
      'except urllib.error.HTTPError as e:',
      '    res = e',
      'print(res.status, res.headers["Airlock-Request-Id"], res.read().decode())',
    ].join('\n');
    const r = await run('python3', ['-c', script, JSON.stringify({ 'Content-Type': 'application/json', ...headers })], proxyEnv(al.proxyUrl), JSON.stringify(body));
    assert.equal(r.code, 0, r.stderr);
    const [status, id, ...rest] = r.stdout.trim().split(' ');
    return [Number(status), id!, rest.join(' ')];
  };

  it('an unlabelled export passes; with a card number in it, it is held for the data owners', async () => {
    const [ok] = await post({ rows: [{ name: 'Ada' }] });
    assert.equal(ok, 200);
    const before = up.requests.length;
    const [status, id, text] = await post({ rows: [{ name: 'Ada', card: CARD }] }, { Prefer: 'respond-async' });
    assert.equal(status, 202);
    const held = JSON.parse(text) as { rule: string; approval_id: string };
    assert.equal(held.rule, 'confidential-exports');
    assert.equal(up.requests.length, before, 'nothing reaches the upstream before a person approves');

    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.classification, 'confidential');
    assert.deepEqual(ev!.findings, [{ detector: 'payment-card', count: 1, where: ['/rows/0/card'] }]);

    const { approval: view } = (await (await fetch(`${al.adminUrl}/v1/approvals/${held.approval_id}`, { headers: { authorization: `Bearer ${APPROVER}` } })).json()) as {
      approval: { request: { classification: string; findings: unknown[]; body_preview: string } };
    };
    assert.equal(view.request.classification, 'confidential');
    assert.deepEqual(view.request.findings, [{ detector: 'payment-card', count: 1, where: ['/rows/0/card'] }]);
    assert.match(view.request.body_preview, /\[card …1111\]/);
    const all = JSON.stringify(await al.audit()) + JSON.stringify(view);
    assert.ok(!all.includes(CARD) && !all.includes(CARD.replace(/ /g, '')), 'the card number is in neither the audit trail nor the approval');
  });

  it('a header cannot label a card number down', async () => {
    const [status, , text] = await post({ card: CARD }, { 'X-Data-Classification': 'public', Prefer: 'respond-async' });
    assert.equal(status, 202);
    assert.equal((JSON.parse(text) as { rule: string }).rule, 'confidential-exports');
  });
});
