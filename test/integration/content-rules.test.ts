import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventsFor, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

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
    al = await startTestAirlock({
      'policy.yaml': `
version: 1
defaults: { action: deny }
rules:
  - id: aws-query-api
    match: { hosts: [127.0.0.1], paths: ["/aws/**"] }
    action: allow
  - id: no-user-creation
    match: { hosts: [127.0.0.1], paths: ["/aws/**"], query: { Action: { oneOf: [CreateUser, CreateAccessKey] } } }
    action: deny
    reason: Agents may not create IAM users or keys
`,
    });
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
});
