import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { hashToken } from '../../src/request/identify.js';
import { fetch as undiciFetch } from 'undici';
import { eventsFor, run, startTestAirlock, startUpstream, withEnvProxyAgent, type TestAirlock, type Upstream } from '../helpers/harness.js';

const APPROVER = 'content-approver-token';

interface ErrorBody {
  error: string;
  message: string;
  rule: string | null;
}

describe('content-aware rules through a real client', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock(
      {
      'policy.yaml': `
version: 1
defaults: { action: deny }
approvers:
  owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(APPROVER)}"]
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**", "/uploads/**", "/open/**"] }
    action: allow
  - id: huge-exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**"], body: { json: { /rows: { gt: 1000 } } } }
    action: deny
  - id: secret-uploads
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/uploads/**"], body: { json: { /kind: { equals: secret } } } }
    action: deny
  - id: tagged-open
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/open/**"], body: { json: { /tag: { present: true } } } }
    action: allow
  - id: deletions
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/batch"], body: { json: { /items/*/op: { equals: delete } } } }
    action: approve
    approval: { approvers: [owners], wait: 30s }
  - id: graphql-reads
    match: { methods: [GET, POST], hosts: [127.0.0.1], paths: ["/graphql"], body: { graphql: { operation: { equals: query } } } }
    action: allow
  - id: graphql-mutations
    match: { methods: [GET, POST], hosts: [127.0.0.1], paths: ["/graphql"], body: { graphql: { operation: { equals: mutation } } } }
    action: approve
    approval: { approvers: [owners], wait: 30s }
  - id: aws-query-api
    match: { hosts: [127.0.0.1], paths: ["/aws/**"] }
    action: allow
  - id: no-user-creation
    match: { hosts: [127.0.0.1], paths: ["/aws/**"], query: { Action: { oneOf: [CreateUser, CreateAccessKey] } } }
    action: deny
    reason: Agents may not create IAM users or keys
`,
      },
      { maxInspectedBodyBytes: 4096 },
    );
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  const curl = async (url: string): Promise<{ code: string; body: string }> => {
    const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', url]);
    const i = r.stdout.lastIndexOf('\n');
    return { body: r.stdout.slice(0, i), code: r.stdout.slice(i + 1) };
  };

  it('a query action is denied; other actions pass with the query forwarded verbatim', async () => {
    const denied = await curl(`${up.origin}/aws/?Action=CreateUser&UserName=mallory`);
    assert.equal(denied.code, '403');
    const body = JSON.parse(denied.body) as ErrorBody;
    assert.equal(body.rule, 'no-user-creation');
    assert.equal(body.message, 'Agents may not create IAM users or keys');

    const before = up.requests.length;
    const ok = await curl(`${up.origin}/aws/?Action=List%55sers&Marker=a+b`);
    assert.equal(ok.code, '200');
    assert.equal(up.requests.length, before + 1);
    assert.equal(up.requests.at(-1)!.url, '/aws/?Action=List%55sers&Marker=a+b');
  });

  it('parameter pollution on an inspected parameter is a 400 with a JSON body, written to the audit trail', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, `${up.origin}/aws/?Action=ListUsers&action=CreateUser`]);
    assert.match(r.stdout, /^HTTP\/1\.1 400/);
    const body = JSON.parse(r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4)) as ErrorBody;
    assert.equal(body.error, 'bad_request');
    assert.match(body.message, /query parameter "action" appears more than once/);
    assert.equal(up.requests.length, before);
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.decision, 'refused');
    assert.equal(ev!.status, 400);
  });

  it('a JSON body rule decides, and an allowed inspected body reaches the upstream byte for byte', async () => {
    const denied = await curlPost('/exports/q3', '{"rows":5000000}');
    assert.equal(denied.code, '403');
    assert.equal((JSON.parse(denied.body) as ErrorBody).rule, 'huge-exports');
    const sent = '{"rows":10,  "note":"x"}';
    const ok = await curlPost('/exports/q3', sent);
    assert.equal(ok.code, '200');
    assert.equal(up.requests.at(-1)!.body.toString(), sent);
    const [ev] = eventsFor(await al.audit(), ok.id);
    assert.equal(ev!.body_inspected, true);
  });

  it('a gzip-compressed body is decoded to decide, and forwarded as it was sent', async () => {
    const before = up.requests.length;
    const gz = gzipSync('{"rows":5000000}');
    const denied = await curlPost('/exports/q3', gz, ['Content-Type: application/json', 'Content-Encoding: gzip']);
    assert.equal(denied.code, '403');
    assert.equal(up.requests.length, before);
    const small = gzipSync('{"rows":1}');
    const ok = await curlPost('/exports/q3', small, ['Content-Type: application/json', 'Content-Encoding: gzip']);
    assert.equal(ok.code, '200');
    assert.deepEqual(up.requests.at(-1)!.body, small);
  });

  it('a body larger than --max-inspected-body gets the most restrictive outcome, and is forwarded whole when that allows', async () => {
    const big = JSON.stringify({ kind: 'report', data: 'x'.repeat(8000) });
    const denied = await curlPost('/uploads/a', big);
    assert.equal(denied.code, '403');
    assert.equal((JSON.parse(denied.body) as ErrorBody).rule, 'secret-uploads');
    const [ev] = eventsFor(await al.audit(), denied.id);
    assert.match(String(ev!.body_unreadable), /larger than the 4096 bytes/);
    // Only an allow rule looks at /open bodies: unread, it does not match, and the plain allow forwards.
    const ok = await curlPost('/open/a', big);
    assert.equal(ok.code, '200');
    assert.equal(up.requests.at(-1)!.body.toString(), big);
  });

  it('a request whose body a rule inspects can be held, approved and forwarded with that body', async () => {
    const sent = '{"items":[{"op":"read"},{"op":"delete","id":7}]}';
    const held = curlPost('/batch', sent);
    let id: string | undefined;
    for (let i = 0; i < 500 && id === undefined; i++) {
      const list = (await (await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${APPROVER}` } })).json()) as { approvals: { id: string }[] };
      id = list.approvals[0]?.id;
      if (id === undefined) await new Promise((r) => setImmediate(r));
    }
    assert.ok(id, 'held');
    assert.equal((await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${APPROVER}` } })).status, 200);
    const r = await held;
    assert.equal(r.code, '200');
    assert.equal(up.requests.at(-1)!.url, '/batch');
    assert.equal(up.requests.at(-1)!.body.toString(), sent);
  });

  it('a GraphQL query passes and a mutation is held (Node fetch through HTTP_PROXY)', async () => {
    await withEnvProxyAgent(al.proxyUrl, async (dispatcher) => {
      const gql = (query: string, extra: Record<string, string> = {}) =>
        undiciFetch(`${up.origin}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...extra }, body: JSON.stringify({ query }), dispatcher });
      const read = await gql('query { viewer { login } }');
      assert.equal(read.status, 200);
      assert.equal(up.requests.at(-1)!.url, '/graphql');
      const before = up.requests.length;
      const held = await gql('mutation { deleteIssue(id: 7) { ok } }', { prefer: 'respond-async' });
      assert.equal(held.status, 202);
      const body = (await held.json()) as { error: string; rule: string; approval_id: string };
      assert.equal(body.rule, 'graphql-mutations');
      assert.ok(body.approval_id);
      assert.equal(up.requests.length, before, 'the mutation waits for a human');
      const viaGet = await undiciFetch(`${up.origin}/graphql?query=${encodeURIComponent('mutation { x }')}`, { headers: { prefer: 'respond-async' }, dispatcher });
      assert.equal(viaGet.status, 202);
    });
  });

  const curlPost = async (path: string, body: string | Buffer, headers = ['Content-Type: application/json']): Promise<{ code: string; body: string; id: string }> => {
    const args = ['-sS', '-i', '-x', al.proxyUrl, '--data-binary', '@-', ...headers.flatMap((h) => ['-H', h]), `${up.origin}${path}`];
    const r = await run('curl', args, undefined, body);
    const [head, ...rest] = r.stdout.split('\r\n\r\n');
    return { code: /^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1] ?? '', body: rest.join('\r\n\r\n'), id: /airlock-request-id: (\S+)/i.exec(head!)?.[1] ?? '' };
  };
});
