import assert from 'node:assert/strict';
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

  it('the same spelling of an allowed path is forwarded to the IPv4 address', async () => {
    const r = await send(`http://[::ffff:127.0.0.1]:${up.port}/v1/items`);
    assert.equal(r.code, '200');
    assert.equal(r.reached, true);
  });
});
