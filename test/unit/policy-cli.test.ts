import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { policyCheck, policyExplain, policyTest, registerPolicyCommands, type PolicyCliIo } from '../../src/cli/policy.js';

const POLICIES = join(import.meta.dirname, '../../policies');

function capture(): PolicyCliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

describe('airlock policy commands', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'airlock-policy-cli-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  async function folder(name: string, files: Record<string, string>): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    for (const [f, text] of Object.entries(files)) await writeFile(join(dir, f), text);
    return dir;
  }

  it('registers check, explain and test under `policy`', () => {
    const program = new Command('airlock');
    registerPolicyCommands(program);
    const policy = program.commands.find((c) => c.name() === 'policy');
    assert.deepEqual(policy?.commands.map((c) => c.name()), ['check', 'explain', 'test']);
  });

  it('check prints a summary for a valid folder', async () => {
    const io = capture();
    assert.equal(await policyCheck(POLICIES, io), 0);
    assert.match(io.stdout.join('\n'), /^ok: 1 file, \d+ rules, \d+ tests/);
    assert.deepEqual(io.stderr, []);
  });

  it('check prints file:line:col message for each error and fails', async () => {
    const dir = await folder('bad', { 'p.yaml': 'version: 1\nrules:\n  - id: x\n    match: { methds: [GET] }\n    action: deny\n' });
    const io = capture();
    assert.equal(await policyCheck(dir, io), 1);
    assert.equal(io.stderr[0], `${join(dir, 'p.yaml')}:4:14 rules[0].match: unknown key "methds" (did you mean "methods"?)`);
    assert.deepEqual(io.stdout, []);
  });

  it('check prints warnings and still succeeds', async () => {
    const dir = await folder('warn', { 'p.yaml': 'version: 1\nrules:\n  - { id: all, match: {}, action: deny }\n' });
    const io = capture();
    assert.equal(await policyCheck(dir, io), 0);
    assert.match(io.stderr[0] ?? '', /p\.yaml:3:23 warning: rule "all" has an empty match/);
  });

  it('test reports each case and fails on a wrong expectation', async () => {
    const dir = await folder('failing', {
      'p.yaml': 'version: 1\nrules:\n  - id: r\n    match: { hosts: [a.example] }\n    action: deny\ntests:\n  - request: { method: GET, url: "http://a.example/" }\n    expect: allow\n  - request: { url: "http://a.example/" }\n    expect: deny\n',
    });
    const io = capture();
    assert.equal(await policyTest(dir, io), 1);
    assert.deepEqual(io.stdout, [
      `FAIL ${join(dir, 'p.yaml')}:7:5 expected allow got deny (rule r) [GET http://a.example/]`,
      `ok   ${join(dir, 'p.yaml')}:9:5 GET http://a.example/ -> deny (rule r)`,
      '1 passed, 1 failed',
    ]);
  });

  it('test passes on the example policies', async () => {
    const io = capture();
    assert.equal(await policyTest(POLICIES, io), 0, io.stdout.join('\n'));
    assert.match(io.stdout.at(-1) ?? '', /^\d+ passed, 0 failed$/);
  });

  it('explain prints the decision and why each matching rule matched', async () => {
    const io = capture();
    const code = await policyExplain(
      { policies: POLICIES, method: 'post', url: 'https://eu.data.internal/exports/q3', identity: 'billing-bot', header: ['X-Data-Classification: confidential'] },
      io,
    );
    assert.equal(code, 0, io.stderr.join('\n'));
    const out = io.stdout.join('\n');
    assert.match(out, /^decision: approve by rule confidential-export /m);
    assert.match(out, /^approval: 2 of \[data-owners\]; wait 55s; expires 30m; channel #ai-approvals$/m);
    assert.match(out, /\+ host eu\.data\.internal matches \*\.data\.internal/);
    assert.match(out, /\+ classification confidential at least confidential/);
  });

  it('explain --json gives the decision and every rule, and exits 0 for a deny', async () => {
    const io = capture();
    assert.equal(await policyExplain({ policies: POLICIES, method: 'GET', url: 'https://iam.amazonaws.com/', json: true }, io), 0);
    const out = JSON.parse(io.stdout.join('\n')) as { decision: { action: string; rule: string }; rules: { id: string; matched: boolean }[] };
    assert.equal(out.decision.action, 'deny');
    assert.equal(out.decision.rule, 'no-iam');
    assert.ok(out.rules.some((r) => r.id === 'reads' && !r.matched));
  });

  it('explain --data shows the body conditions, inline or from @file', async () => {
    const headers = ['X-Data-Classification: internal', 'Content-Type: application/json'];
    const io = capture();
    const at = { policies: POLICIES, method: 'POST', url: 'https://eu.data.internal/exports/q3', identity: 'billing-bot', header: headers };
    assert.equal(await policyExplain({ ...at, data: '{"limit":500000}' }, io), 0, io.stderr.join('\n'));
    assert.match(io.stdout.join('\n'), /^decision: deny by rule huge-exports /m);
    assert.match(io.stdout.join('\n'), /\+ JSON \/limit is 500000; rule wants gt 100000/);
    const file = join(root, 'body.json');
    await writeFile(file, '{"limit":10}');
    const io2 = capture();
    assert.equal(await policyExplain({ ...at, data: `@${file}` }, io2), 0);
    assert.match(io2.stdout.join('\n'), /^decision: allow by rule open-export /m);
    const io3 = capture();
    assert.equal(await policyExplain({ ...at, data: '@/nonexistent/body.json' }, io3), 1);
    assert.match(io3.stderr[0] ?? '', /^--data: cannot read \/nonexistent\/body\.json/);
  });

  it('explain --data shows what the detectors found and the level they raised the request to', async () => {
    const io = capture();
    const at = { policies: POLICIES, method: 'POST', url: 'https://eu.data.internal/exports/q3', identity: 'billing-bot', header: ['X-Data-Classification: public'] };
    assert.equal(await policyExplain({ ...at, data: '{"rows":[{"iban":"DE89 3704 0044 0532 0130 00"}]}' }, io), 0, io.stderr.join('\n'));
    const out = io.stdout.join('\n');
    assert.match(out, /^request: .*classification confidential\)$/m);
    assert.match(out, /^found: iban ×1 at \/rows\/0\/iban$/m);
    assert.match(out, /^decision: approve by rule confidential-export /m);
    assert.doesNotMatch(out, /DE89/);
  });

  it('explain refuses a request the proxy would refuse, with the 400 reason', async () => {
    const io = capture();
    assert.equal(await policyExplain({ policies: POLICIES, method: 'GET', url: 'http://user:pw@api.internal/v1/' }, io), 1);
    assert.match(io.stderr[0] ?? '', /^400 bad_request: /);
  });

  it('explain rejects an unknown identity and a malformed header', async () => {
    const io = capture();
    assert.equal(await policyExplain({ policies: POLICIES, method: 'GET', url: 'http://api.internal/v1/', identity: 'ghost' }, io), 1);
    assert.match(io.stderr[0] ?? '', /unknown identity "ghost"/);
    const io2 = capture();
    assert.equal(await policyExplain({ policies: POLICIES, method: 'GET', url: 'http://api.internal/v1/', header: ['no colon'] }, io2), 1);
    assert.match(io2.stderr[0] ?? '', /expected 'Name: value'/);
  });
});
