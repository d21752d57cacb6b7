import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, open, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PolicyError } from '../../src/policy/types.js';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

const allowV1 = `version: 1
rules:
  - id: v1
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
`;
const allowV1V2 = `${allowV1}  - id: v2
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v2/**"] }
    action: allow
`;
const broken = `version: 1
rules:
  - id: v1
    match: { methds: [GET], hosts: [127.0.0.1] }
    action: allow
`;

async function status(al: TestAirlock, url: string): Promise<string> {
  return (await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', al.proxyUrl, url])).stdout;
}

async function metric(al: TestAirlock, name: string): Promise<string> {
  const text = await (await fetch(`${al.adminUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).join('\n');
}

describe('policy reload', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': allowV1 });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('an edit of a policy file is seen by the folder watch and takes force', async () => {
    assert.equal(await status(al, `${up.origin}/v2/x`), '403');
    const loaded = once(al.airlock.policies.events, 'loaded');
    await al.writePolicy('policy.yaml', allowV1V2);
    await loaded;
    assert.equal(await status(al, `${up.origin}/v2/x`), '200');
    const ev = (await al.audit()).filter((e) => e.event === 'policy_loaded');
    assert.equal(ev.length, 2);
  });

  it('a broken edit keeps the old policy in force, is logged with file:line:col, and counted', async () => {
    const rejected = once(al.airlock.policies.events, 'rejected');
    await al.writePolicy('policy.yaml', broken);
    const [errors] = (await rejected) as [PolicyError[]];
    assert.equal(errors[0]!.line, 4);
    assert.match(errors[0]!.message, /methds/);
    assert.equal(await status(al, `${up.origin}/v2/x`), '200');
    assert.match(await metric(al, 'airlock_policy_reloads_total'), /result="failure"} [1-9]/);
    assert.match(await metric(al, 'airlock_policy_loaded_ok'), / 0$/m);
    const ev = (await al.audit()).filter((e) => e.event === 'policy_rejected').at(-1)!;
    assert.match(String((ev.errors as string[])[0]), /policy\.yaml:4:\d+ .*methds/);
    // Polls of the same broken files change nothing and report nothing again.
    const rejections = (await al.audit()).filter((e) => e.event === 'policy_rejected').length;
    assert.deepEqual(await al.airlock.policies.reload(), { ok: true, changed: false, policy: al.airlock.policies.current() });
    assert.equal((await al.audit()).filter((e) => e.event === 'policy_rejected').length, rejections);

    const loaded = once(al.airlock.policies.events, 'loaded');
    await al.writePolicy('policy.yaml', allowV1);
    await loaded;
    assert.equal(await status(al, `${up.origin}/v2/x`), '403');
    assert.match(await metric(al, 'airlock_policy_loaded_ok'), / 1$/m);
  });
});

describe('policy reload from a Kubernetes ConfigMap mount', () => {
  it('follows the ..data symlink swap', async () => {
    const up = await startUpstream();
    const al = await startTestAirlock({ 'policy.yaml': allowV1 });
    try {
      // Lay the folder out as the kubelet does: files are symlinks into ..data, itself a symlink to a timestamped dir.
      await rm(join(al.dir, 'policy.yaml'), { force: true });
      await mkdir(join(al.dir, '..2026_11_21_v1'));
      await writeFile(join(al.dir, '..2026_11_21_v1', 'policy.yaml'), allowV1);
      await symlink('..2026_11_21_v1', join(al.dir, '..data'));
      await symlink('..data/policy.yaml', join(al.dir, 'policy.yaml'));
      await al.airlock.policies.reload();
      assert.equal(await status(al, `${up.origin}/v1/x`), '200');
      assert.equal(await status(al, `${up.origin}/v2/x`), '403');

      const loaded = once(al.airlock.policies.events, 'loaded');
      await mkdir(join(al.dir, '..2026_11_21_v2'));
      await writeFile(join(al.dir, '..2026_11_21_v2', 'policy.yaml'), allowV1V2);
      await symlink('..2026_11_21_v2', join(al.dir, '..data_tmp'));
      await rename(join(al.dir, '..data_tmp'), join(al.dir, '..data'));
      await rm(join(al.dir, '..2026_11_21_v1'), { recursive: true });
      await loaded;
      assert.equal(await status(al, `${up.origin}/v2/x`), '200');
    } finally {
      await al.close();
      await up.close();
    }
  });
});

describe('a policy file rewritten slowly in place', () => {
  let up: Upstream;
  let al: TestAirlock;
  const withDeny = `${allowV1}  - id: no-admin
    match: { hosts: [127.0.0.1], paths: ["/v1/admin/**"] }
    action: deny
`;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': withDeny }, { policySettleMs: 300 });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('is never put in force half-written: the last rule of a file still being written is not lost', { timeout: 10_000 }, async () => {
    const file = join(al.dir, 'policy.yaml');
    const text = `${withDeny}  - id: v3\n    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v3/**"] }\n    action: allow\n`;
    const cut = text.indexOf('  - id: no-admin');
    const handle = await open(file, 'w');
    // A valid prefix first: without the deny rule, it would let /v1/admin through.
    await handle.write(text.slice(0, cut));
    const reloading = al.airlock.policies.reload();
    // The writer's pace is the scenario: the rest follows 100 ms later.
    await new Promise((r) => setTimeout(r, 100));
    await handle.write(text.slice(cut));
    await handle.close();
    const result = await reloading;
    assert.ok(result.ok);
    const loadedIds = (await al.audit()).filter((e) => e.event === 'policy_loaded').length;
    assert.equal(await status(al, `${up.origin}/v1/admin/keys`), '403');
    assert.equal(await status(al, `${up.origin}/v3/x`), '200');
    assert.equal(loadedIds, 2, 'one load at start, one of the whole file: never the prefix');
  });
});
