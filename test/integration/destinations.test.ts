import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

describe('destination guard', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    // The policy allows every host: only the guard stands between the agent and internal addresses.
    al = await startTestAirlock(
      { 'policy.yaml': 'version: 1\nrules:\n  - id: anything\n    match: { hosts: ["*"] }\n    action: allow\n' },
      { allowDestinations: [] },
    );
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  for (const [what, url] of [
    ['a name that resolves to loopback', () => `http://localhost:${up.port}/x`],
    ['a loopback literal', () => `http://127.0.0.1:${up.port}/x`],
    ['the cloud metadata address', () => 'http://169.254.169.254/latest/meta-data/'],
    ['an IPv4-mapped IPv6 spelling of loopback', () => `http://[::ffff:127.0.0.1]:${up.port}/x`],
  ] as const) {
    it(`refuses ${what}, even though a rule allows it; nothing is dialled`, async () => {
      const before = up.requests.length;
      const r = await run('curl', ['-sS', '-x', al.proxyUrl, '-w', '\n%{http_code}', url()]);
      const [body, code] = r.stdout.split('\n');
      assert.equal(code, '403', body);
      assert.equal((JSON.parse(body!) as { error: string }).error, 'denied');
      assert.equal(up.requests.length, before);
    });
  }

  it('refuses a CONNECT tunnel to a loopback name before any byte flows', async () => {
    const r = await run('curl', ['-sS', '-p', '-x', al.proxyUrl, `http://localhost:${up.port}/x`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /403/);
    const refused = (await al.audit()).filter((e) => e.event === 'destination_refused');
    assert.ok(refused.some((e) => e.host === 'localhost'));
  });

  it('lets loopback through when the operator allows it (--allow-destination / destinations.allow)', async () => {
    const open = await startTestAirlock(
      { 'policy.yaml': 'version: 1\ndestinations: { allow: ["127.0.0.0/8"] }\nrules:\n  - id: anything\n    match: { hosts: ["*"] }\n    action: allow\n' },
      { allowDestinations: [] },
    );
    try {
      const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', open.proxyUrl, `http://localhost:${up.port}/x`]);
      assert.equal(r.stdout, '200');
    } finally {
      await open.close();
    }
  });
});
