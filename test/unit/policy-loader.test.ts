import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { evaluate } from '../../src/policy/evaluate.js';
import { PolicyFolder } from '../../src/policy/folder.js';
import { loadPolicySources } from '../../src/policy/load.js';
import { createPolicyLoader } from '../../src/policy/loader.js';
import { joinPolicy, splitPolicy } from '../../src/policy/transfer.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import { canonicalize } from '../../src/request/canonicalize.js';
import { largePolicyText } from '../../bench/policy-eval.js';

const POLICY = 'version: 1\nrules:\n  - { id: r, match: { hosts: [a.example] }, action: allow }\n';

function decide(policy: CompiledPolicy, method: string, url: string, headers: string[] = []): string {
  const c = canonicalize({ method, target: url, rawHeaders: headers }, { id: 'bot', groups: ['agents'] }, policy);
  if (!c.ok) throw new Error(c.message);
  const d = evaluate(c.request, policy);
  return `${d.action} ${d.rule} [${d.matched.join(',')}] [${d.report.map((r) => r.rule).join(',')}]`;
}

const REQUESTS: [string, string, string[]][] = [
  ['GET', 'http://svc17.internal/v2/items?x=1', []],
  ['POST', 'http://svc42.internal/exports/customers', ['X-Data-Classification', 'restricted']],
  ['DELETE', 'http://a.svc9.example.com/admin/users', []],
  ['GET', 'http://unknown.example.org/', []],
  ['PUT', 'http://svc3.internal/v1/x', ['X-Env', 'prod']],
  ['HEAD', 'http://svc0.internal/v0/a/b', []],
];

describe('a compiled policy taken apart and put back together (transfer between threads)', () => {
  it('decides every request as the original does, after crossing a structured clone in chunks', () => {
    const loaded = loadPolicySources([{ file: 'large.yaml', text: largePolicyText(1200) }]);
    assert.ok(loaded.ok);
    const original = loaded.policy;
    const { head, chunks } = structuredClone(splitPolicy(original, 500));
    assert.equal(chunks.length, 3);
    const joined = joinPolicy(head, chunks);
    for (const [m, u, h] of REQUESTS) assert.equal(decide(joined, m, u, h), decide(original, m, u, h), `${m} ${u}`);
    assert.deepEqual(joined.rules, original.rules);
    assert.equal(joined.index.exactHosts.size, original.index.exactHosts.size);
    // The index refers to the same rule objects as the rule list, as compile built it.
    const bucket = joined.index.exactHosts.get('svc17.internal')!;
    assert.equal(bucket.all[0], joined.index.rules[bucket.all[0]!.order]);
  });

  it('refuses chunks that are missing', () => {
    const loaded = loadPolicySources([{ file: 'large.yaml', text: largePolicyText(20) }]);
    assert.ok(loaded.ok);
    const { head, chunks } = splitPolicy(loaded.policy, 5);
    assert.throws(() => joinPolicy(head, chunks.slice(1)), /rules missing or out of order/);
  });
});

describe('PolicyFolder: files still being written', () => {
  it('a changed file modified within quietMs is not read into force; the caller is told when to try again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-quiet-'));
    try {
      await writeFile(join(dir, 'p.yaml'), 'version: 1\n');
      const read = await new PolicyFolder(dir, 60_000).read();
      assert.ok(read.ok && 'retryInMs' in read);
      if (read.ok && 'retryInMs' in read) assert.ok(read.retryInMs > 0 && read.retryInMs <= 60_000);
      const now = await new PolicyFolder(dir, 0).read();
      assert.ok(now.ok && !('retryInMs' in now) && now.sources.length === 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PolicyFolder: what changed since the last read', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-folder-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('tells a change from a rewrite with the same bytes, and sees files come and go', async () => {
    await writeFile(join(dir, 'a.yaml'), POLICY);
    const folder = new PolicyFolder(dir, 0);
    const first = await folder.read();
    assert.ok(first.ok && first.changed);
    assert.deepEqual(first.sources.map((s) => s.text), [POLICY]);

    const again = await folder.read();
    assert.ok(again.ok && !again.changed);

    await writeFile(join(dir, 'a.yaml'), POLICY);
    const rewritten = await folder.read();
    assert.ok(rewritten.ok && !rewritten.changed, 'the same bytes written again are no change');

    await writeFile(join(dir, 'a.yaml'), POLICY.replace('allow', 'deny'));
    const edited = await folder.read();
    assert.ok(edited.ok && edited.changed);
    assert.match(edited.sources[0]!.text, /action: deny/);

    await writeFile(join(dir, 'b.yaml'), 'version: 1\n');
    const added = await folder.read();
    assert.ok(added.ok && added.changed);
    assert.equal(added.sources.length, 2);

    await unlink(join(dir, 'b.yaml'));
    const removed = await folder.read();
    assert.ok(removed.ok && removed.changed);
    assert.equal(removed.sources.length, 1);
  });
});

describe('the policy loader thread', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-loader-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('loads on its thread, answers unchanged when nothing changed, and reports a broken edit once', async () => {
    await writeFile(join(dir, 'large.yaml'), largePolicyText(1200));
    const loader = createPolicyLoader(dir, 0);
    try {
      const first = await loader.load();
      assert.ok(first.changed && first.result.ok);
      const direct = loadPolicySources([{ file: join(dir, 'large.yaml'), text: largePolicyText(1200) }]);
      assert.ok(direct.ok);
      assert.equal(first.result.policy.version, direct.policy.version);
      for (const [m, u, h] of REQUESTS) assert.equal(decide(first.result.policy, m, u, h), decide(direct.policy, m, u, h), `${m} ${u}`);

      assert.deepEqual(await loader.load(), { changed: false });

      await writeFile(join(dir, 'large.yaml'), 'version: 1\nrules:\n  - id: x\n    match: { methds: [GET] }\n    action: deny\n');
      const broken = await loader.load();
      assert.ok(broken.changed && !broken.result.ok);
      assert.equal(broken.result.errors[0]!.line, 4);
      assert.match(broken.result.errors[0]!.message, /methds/);
      assert.deepEqual(await loader.load(), { changed: false }, 'the same broken files are not reported again');

      assert.deepEqual(await loader.load(true), { changed: false }, 'reading every file again finds the same bytes');
    } finally {
      await loader.close();
    }
  });

  it('carries compiled conditions (globs included) across the thread boundary', async () => {
    await writeFile(join(dir, 'large.yaml'), 'version: 1\ndefaults: { action: allow }\nrules:\n  - { id: q, match: { hosts: [a.example], query: { Action: { glob: "Create*" }, n: { gt: 5 } } }, action: deny }\n');
    const loader = createPolicyLoader(dir, 0);
    try {
      const r = await loader.load();
      assert.ok(r.changed && r.result.ok);
      const policy = r.result.policy;
      const at = (url: string): string => {
        const c = canonicalize({ method: 'GET', target: url, rawHeaders: [] }, null, policy);
        if (!c.ok) throw new Error(c.message);
        return evaluate(c.request, policy).action;
      };
      assert.equal(at('http://a.example/?Action=CreateUser&n=6'), 'deny');
      assert.equal(at('http://a.example/?Action=ListUsers&n=6'), 'allow');
      assert.equal(at('http://a.example/?Action=CreateUser&n=5'), 'allow');
    } finally {
      await loader.close();
    }
  });

  it('keeps identity token digests usable across the thread boundary', async () => {
    const digest = 'a'.repeat(64);
    await writeFile(join(dir, 'large.yaml'), `version: 1\nidentities:\n  bot: { tokens: ["sha256:${digest}"] }\nrules: []\n`);
    const loader = createPolicyLoader(dir, 0);
    try {
      const r = await loader.load();
      assert.ok(r.changed && r.result.ok);
      assert.equal(Buffer.from(r.result.policy.identities.get('bot')!.tokenSha256[0]!).toString('hex'), digest);
    } finally {
      await loader.close();
    }
  });
});
