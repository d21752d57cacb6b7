import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { eventsFor, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

/**
 * Wherever the rules and what acts on the request (the dialler, the upstream framework) could read
 * the same input differently, Airlock decides on what will act: each test sends a spelling an agent
 * could use to slip past a deny, and checks the upstream received nothing.
 */
describe('one reading of a request for the rules and for what acts on it', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({
      'policy.yaml': `
version: 1
defaults: { action: deny }
rules:
  - id: api
    match: { hosts: ["*"], paths: ["/v1/**"] }
    action: allow
  - id: no-admin
    match: { hosts: [127.0.0.1], paths: ["/v1/admin/**"] }
    action: deny
  - id: no-secret-reads
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v1/secret/**"] }
    action: deny
`,
    });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  /** curl through the proxy: status, Airlock's request id, and whether the upstream saw anything. */
  const send = async (url: string, args: string[] = []): Promise<{ code: string; id: string; reached: boolean }> => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', '--path-as-is', '-x', al.proxyUrl, ...args, url]);
    return { code: /^HTTP\/1\.1 (\d{3})/.exec(r.stdout)?.[1] ?? r.stderr, id: /airlock-request-id: (\S+)/i.exec(r.stdout)?.[1] ?? '', reached: up.requests.length > before };
  };

  for (const spelling of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[::127.0.0.1]', '[64:ff9b::7f00:1]', '[0:0:0:0:0:ffff:7f00:0001]']) {
    it(`a deny on 127.0.0.1 holds for ${spelling}`, async () => {
      const r = await send(`http://${spelling}:${up.port}/v1/admin/keys`);
      assert.equal(r.code, '403');
      assert.equal(r.reached, false);
      const [ev] = eventsFor(await al.audit(), r.id);
      assert.equal(ev!.host, '127.0.0.1');
      assert.equal(ev!.rule, 'no-admin');
    });
  }

  for (const path of ['/v1/ADMIN/keys', '/v1/Admin/keys', '/V1/admin/keys']) {
    it(`a deny on /v1/admin/** holds for ${path} (many upstreams route it to the same handler)`, async () => {
      const r = await send(`http://127.0.0.1:${up.port}${path}`);
      assert.equal(r.code, '403');
      assert.equal(r.reached, false);
    });
  }

  it('an allow rule matches paths as written', async () => {
    assert.equal((await send(`http://127.0.0.1:${up.port}/V1/items`)).code, '403');
    assert.equal((await send(`http://127.0.0.1:${up.port}/v1/items`)).code, '200');
  });

  it('a deny on GET holds for HEAD, which frameworks answer with the GET handler', async () => {
    const r = await send(`http://127.0.0.1:${up.port}/v1/secret/x`, ['-I']);
    assert.equal(r.code, '403');
    assert.equal(r.reached, false);
  });

  it('TRACE is never forwarded', async () => {
    const r = await send(`http://127.0.0.1:${up.port}/v1/items`, ['-X', 'TRACE']);
    assert.equal(r.code, '405');
    assert.equal(r.reached, false);
  });

  for (const [what, args] of [
    ['an X-HTTP-Method-Override header', ['-X', 'POST', '-H', 'X-HTTP-Method-Override: DELETE']],
    ['a _method query parameter', ['-X', 'POST', '--url-query', '_method=DELETE']],
    ['a _method form field', ['--data', 'name=x&_method=DELETE']],
    ['a _method multipart part', ['-F', 'name=x', '-F', '_method=DELETE']],
  ] as const) {
    it(`a POST carrying ${what} is refused with a JSON 400 and never reaches the upstream`, async () => {
      const r = await send(`http://127.0.0.1:${up.port}/v1/items`, [...args]);
      assert.equal(r.code, '400');
      assert.equal(r.reached, false);
      const [ev] = eventsFor(await al.audit(), r.id);
      assert.match(String(ev!.reason), /act on another method/);
    });
  }

  it('a form without an override is forwarded byte for byte', async () => {
    const r = await send(`http://127.0.0.1:${up.port}/v1/items`, ['--data', 'name=x&method=y']);
    assert.equal(r.code, '200');
    assert.equal(up.requests.at(-1)!.body.toString(), 'name=x&method=y');
  });

  it('headers that re-route or vouch for the sender do not reach the upstream', async () => {
    const headers = ['X-Forwarded-For: 10.0.0.1', 'X-Original-URL: /v1/admin/keys', 'X-Rewrite-URL: /v1/admin/keys', 'Forwarded: for=10.0.0.1', 'X-Real-IP: 10.0.0.1', 'X-Remote-User: admin', 'X-Forwarded-User: admin', 'X-Kept: yes'];
    const r = await send(`http://127.0.0.1:${up.port}/v1/items`, headers.flatMap((h) => ['-H', h]));
    assert.equal(r.code, '200');
    const got = up.requests.at(-1)!.headers;
    for (const name of ['x-forwarded-for', 'x-original-url', 'x-rewrite-url', 'forwarded', 'x-real-ip', 'x-remote-user', 'x-forwarded-user']) assert.equal(got[name], undefined, name);
    assert.equal(got['x-kept'], 'yes');
  });

  it('an encoded ";", "?" or "#" in a path, or a fullwidth letter, is a 400 naming the exception that would allow it', async () => {
    for (const path of ['/v1/admin%3Bx/keys', '/v1/admin%3F/keys', '/v1/admin%23/keys', '/v1/%EF%BD%81dmin/keys']) {
      const r = await send(`http://127.0.0.1:${up.port}${path}`);
      assert.equal(r.code, '400', path);
      assert.equal(r.reached, false);
    }
  });

  it('the same spelling of an allowed path is forwarded to the IPv4 address', async () => {
    const r = await send(`http://[::ffff:127.0.0.1]:${up.port}/v1/items`);
    assert.equal(r.code, '200');
    assert.equal(r.reached, true);
  });
});

describe('the audit trail of refused requests', () => {
  let al: TestAirlock;
  before(async () => {
    al = await startTestAirlock(
      { 'policy.yaml': 'version: 1\nidentities:\n  sidecar-bot: { owner: ops@example.com }\nrules:\n  - { id: all, match: { hosts: ["*"] }, action: allow }\n' },
      { identity: 'sidecar-bot' },
    );
  });
  after(() => al.close());

  it('a malformed request records who sent it and what it sent, escaped, decision first', async () => {
    const r = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '--path-as-is', '-x', al.proxyUrl, 'http://h.example/a%2Fb/%E2%80%AE?token=s3cr3t']);
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.decision, 'refused');
    assert.equal(ev!.identity, 'sidecar-bot');
    assert.equal(ev!.status, 400);
    assert.equal(ev!.target, 'http://h.example/a%2Fb/%E2%80%AE?token=REDACTED');
    const line = (await readFile(al.auditFile, 'utf8')).split('\n').find((l) => l.includes(id))!;
    assert.ok(line.indexOf('"decision"') < line.indexOf('"target"'), 'short facts come before long fields');
  });
});
