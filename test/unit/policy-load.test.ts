import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatPolicyError } from '../../src/policy/errors.js';
import { loadPolicyDir, loadPolicySources, type PolicySource } from '../../src/policy/load.js';

function errorsOf(...sources: PolicySource[]): string[] {
  const r = loadPolicySources(sources);
  if (r.ok) assert.fail('expected the policy to be rejected');
  return r.errors.map(formatPolicyError);
}

function warningsOf(...sources: PolicySource[]): string[] {
  const r = loadPolicySources(sources);
  if (!r.ok) assert.fail(`expected the policy to load: ${r.errors.map(formatPolicyError).join('; ')}`);
  return r.warnings.map(formatPolicyError);
}

const file = (text: string, name = 'p.yaml'): PolicySource => ({ file: name, text });
const APPROVERS = 'approvers:\n  owners: { api: [bob@example.com] }\n';

describe('policy errors point at the offending node', () => {
  // [name, sources, expected first error: exact "file:line:col" and a message pattern]
  const table: [string, PolicySource[], string, RegExp][] = [
    ['YAML syntax error', [file('version: 1\nrules:\n  - id: x\n    match: { hosts: [a.example]\n    action: deny\n')], 'p.yaml:5:5', /Flow map/],
    ['unclosed flow sequence', [file('version: 1\nrules: [\n')], 'p.yaml:3:1', /./],
    ['duplicate YAML key', [file('version: 1\nrules: []\nrules: []\n')], 'p.yaml:3:1', /unique/],
    ['several documents', [file('version: 1\n---\nversion: 1\n')], 'p.yaml:2:1', /multiple documents/],
    ['unquoted wildcard host (a YAML alias)', [file('version: 1\nrules:\n  - { id: x, match: { hosts: [*.a.example] }, action: deny }\n')], 'p.yaml:3:31', /quote host patterns.*"\*\.a\.example"/],
    ['typo in a match key', [file('version: 1\nrules:\n  - id: x\n    match: { methds: [GET] }\n    action: deny\n')], 'p.yaml:4:14', /rules\[0\]\.match: unknown key "methds" \(did you mean "methods"\?\)/],
    ['typo in a top-level key', [file('version: 1\nrule: []\n')], 'p.yaml:2:1', /unknown key "rule" \(did you mean "rules"\?\)/],
    ['wrong type', [file('version: 1\nrules:\n  - id: x\n    match: { hosts: a.example }\n    action: deny\n')], 'p.yaml:4:21', /rules\[0\]\.match\.hosts: expected array, received string/],
    ['wrong type in a list', [file('version: 1\nrules:\n  - id: x\n    match: { ports: [80, "443"] }\n    action: deny\n')], 'p.yaml:4:26', /ports\[1\]: expected number/],
    ['invalid action', [file('version: 1\nrules:\n  - id: x\n    match: {}\n    action: alow\n')], 'p.yaml:5:13', /^p\.yaml:5:13 rules\[0\]\.action: expected one of allow, deny, approve, got "alow"$/],
    ['missing key', [file('version: 1\nrules:\n  - id: x\n    action: deny\n')], 'p.yaml:3:5', /rules\[0\]: missing required key "match"/],
    ['missing version', [file('rules: []\n')], 'p.yaml:1:1', /missing required key "version"/],
    ['empty match value', [file('version: 1\nrules:\n  - id: x\n    match:\n    action: deny\n')], 'p.yaml:4:5', /rules\[0\]\.match: expected object, received null/],
    ['bad duration', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: approve\n    approval: { approvers: [owners], wait: 2 minutes }\n`)], 'p.yaml:8:44', /wait must be a positive duration such as 30s, 2m, 1m30s, 1h or 1d \(got "2 minutes"\)/],
    ['zero duration', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: approve\n    approval: { approvers: [owners], expires: 0s }\n`)], 'p.yaml:8:47', /expires must be a positive duration/],
    ['bad glob', [file('version: 1\nrules:\n  - id: x\n    match:\n      paths: ["/ok/**", "/a**"]\n    action: deny\n')], 'p.yaml:5:25', /"\*\*" must be a whole segment/],
    ['glob without a leading slash', [file('version: 1\nrules:\n  - id: x\n    match: { paths: ["v1/**"] }\n    action: deny\n')], 'p.yaml:4:22', /must start with "\/"/],
    ['wildcard inside a host', [file('version: 1\nrules:\n  - id: x\n    match: { hosts: [ok.example, "api.*.com"] }\n    action: deny\n')], 'p.yaml:4:34', /"\*" is only allowed alone or as a leading "\*\."/],
    ['wildcard glued to a name', [file('version: 1\nrules:\n  - id: x\n    match: { hosts: ["*foo.com"] }\n    action: deny\n')], 'p.yaml:4:22', /only allowed alone/],
    ['port in a host', [file('version: 1\nrules:\n  - id: x\n    match: { hosts: ["a.com:443"] }\n    action: deny\n')], 'p.yaml:4:22', /must not contain a port/],
    [
      'duplicate rule id across files, naming the first',
      [file('version: 1\nrules:\n  - { id: same, match: {}, action: deny }\n', 'a.yaml'), file('version: 1\n\nrules:\n  - id: same\n    match: {}\n    action: allow\n', 'b.yaml')],
      'b.yaml:4:9',
      /duplicate rule id "same" \(first defined at a\.yaml:3:5\)/,
    ],
    ['unknown approver group', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: approve\n    approval: { approvers: [owners, admins] }\n`)], 'p.yaml:8:37', /unknown approver group "admins" \(defined groups: owners\)/],
    ['more approvals required than approvers', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: approve\n    approval: { approvers: [owners], required: 2 }\n`)], 'p.yaml:8:48', /required is 2 but .* only 1 distinct approver/],
    ['wait longer than expires', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: approve\n    approval: { approvers: [owners], wait: 2h, expires: 1h }\n`)], 'p.yaml:8:44', /wait \(2h\) is longer than approval\.expires \(1h\)/],
    ['approve without approval', [file('version: 1\nrules:\n  - id: x\n    match: {}\n    action: approve\n')], 'p.yaml:5:13', /action: approve but no approval/],
    ['approval on an allow rule', [file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: {}\n    action: allow\n    approval: { approvers: [owners] }\n`)], 'p.yaml:8:15', /only allowed on rules with action: approve/],
    ['header with two conditions', [file('version: 1\nrules:\n  - id: x\n    match: { headers: { X-A: { equals: a, present: true } } }\n    action: deny\n')], 'p.yaml:4:30', /exactly one of equals, oneOf, present/],
    ['unknown identity', [file('version: 1\nidentities:\n  bot: {}\nrules:\n  - id: x\n    match: { identities: [bot, ghost] }\n    action: deny\n')], 'p.yaml:6:32', /unknown identity "ghost"/],
    ['identity defined twice', [file('version: 1\nidentities:\n  bot: {}\n', 'a.yaml'), file('version: 1\nidentities:\n  bot: {}\n', 'b.yaml')], 'b.yaml:3:3', /identity "bot" is already defined at a\.yaml:3:3/],
    ['classification without a scheme', [file('version: 1\nrules:\n  - id: x\n    match: { classification: { atLeast: high } }\n    action: deny\n')], 'p.yaml:4:30', /needs a top-level classification/],
    ['unknown classification level', [file('version: 1\nclassification: { header: X-C, levels: [low, high] }\nrules:\n  - id: x\n    match: { classification: { in: [low, secret] } }\n    action: deny\n')], 'p.yaml:5:42', /unknown classification level "secret"/],
    [
      'conflicting classification schemes',
      [file('version: 1\nclassification: { header: X-C, levels: [low, high] }\n', 'a.yaml'), file('version: 1\nclassification: { header: X-C, levels: [low, mid, high] }\n', 'b.yaml')],
      'b.yaml:2:17',
      /classification differs from the one at a\.yaml:2:17/,
    ],
    ['route prefix without trailing slash', [file('version: 1\nroutes:\n  - { prefix: /openai, upstream: "https://api.openai.com/v1/" }\n')], 'p.yaml:3:15', /must start and end with "\/"/],
    ['route upstream with credentials', [file('version: 1\nroutes:\n  - { prefix: /a/, upstream: "https://u:p@a.example/" }\n')], 'p.yaml:3:30', /must not contain credentials/],
    ['duplicate route prefix', [file('version: 1\nroutes:\n  - { prefix: /a/, upstream: "https://a.example/" }\n  - { prefix: /a/, upstream: "https://b.example/" }\n')], 'p.yaml:4:15', /already routed at p\.yaml:3:5/],
    ['test naming an unknown rule', [file('version: 1\ntests:\n  - request: { url: "http://a/" }\n    expect: deny\n    rule: nope\n')], 'p.yaml:5:11', /no policy file defines/],
    ['empty file', [file('')], 'p.yaml:1:1', /empty/],
    ['not a mapping', [file('- a\n')], 'p.yaml:1:1', /expected object, received array/],
    ['unsupported version', [file('version: 2\n')], 'p.yaml:1:10', /version: expected 1/],
    ['invalid identity id', [file('version: 1\nidentities:\n  "a:b": {}\n')], 'p.yaml:3:3', /identities\.a:b: an identity id must be/],
  ];
  for (const [name, sources, position, message] of table) {
    it(name, () => {
      const errors = errorsOf(...sources);
      const first = errors[0] ?? '';
      assert.ok(first.startsWith(`${position} `), `expected ${position}, got: ${errors.join(' | ')}`);
      assert.match(first, message);
    });
  }

  it('reports every error of every file, in file and line order', () => {
    const errors = errorsOf(
      file('version: 1\nrules:\n  - { id: a, match: { methds: [GET] }, action: deny }\n  - { id: b, match: {}, action: nope }\n', 'b.yaml'),
      file('version: 1\nrulez: []\n', 'a.yaml'),
    );
    assert.deepEqual(
      errors.map((e) => e.split(' ')[0]),
      ['a.yaml:2:1', 'b.yaml:3:23', 'b.yaml:4:33'],
    );
  });

  it('formats positionless problems without line and column', () => {
    assert.equal(formatPolicyError({ file: 'policies', line: 0, col: 0, message: 'no policy files' }), 'policies: no policy files');
    assert.equal(formatPolicyError({ file: 'a.yaml', line: 3, col: 7, message: 'bad' }), 'a.yaml:3:7 bad');
  });
});

describe('policy warnings', () => {
  it('warns about rules with an empty match, unknown groups and methods no request can have', () => {
    const w = warningsOf(file('version: 1\nrules:\n  - { id: all, match: {}, action: deny }\n  - { id: g, match: { identities: ["group:ghosts"], methods: [FETCH] }, action: allow }\n'));
    assert.deepEqual(w.map((x) => x.split(' ')[0]), ['p.yaml:3:23', 'p.yaml:4:36', 'p.yaml:4:63']);
    assert.match(w[0] ?? '', /matches every request/);
    assert.match(w[1] ?? '', /no identity is in group "ghosts"/);
    assert.match(w[2] ?? '', /"FETCH"/);
  });

  it('warns about a wait longer than clients such as the MCP SDK hold on (60 s); the default and 1m are fine', () => {
    const rule = (approval: string) => file(`version: 1\n${APPROVERS}rules:\n  - id: x\n    match: { hosts: [a.example] }\n    action: approve\n    approval: { approvers: [owners]${approval} }\n`);
    const w = warningsOf(rule(', wait: 2m, expires: 1h'));
    assert.equal(w.length, 1);
    assert.match(w[0]!, /^p\.yaml:8:\d+ .*approval\.wait \(2m\) holds clients longer than many wait.*MCP SDK 60 s.*client-timeouts.*respond-async/);
    assert.deepEqual(warningsOf(rule('')), []);
    assert.deepEqual(warningsOf(rule(', wait: 1m')), []);
  });
});

describe('compiled values', () => {
  it('normalises hosts, methods, tokens and routes', () => {
    const digest = 'ab'.repeat(32);
    const r = loadPolicySources([
      file(
        `version: 1\nidentities:\n  bot: { owner: a@example.com, groups: [g, g], tokens: ["sha256:${digest}"] }\n` +
          'routes:\n  - { prefix: /a/, upstream: "https://a.example/v1" }\n  - { prefix: /a/b/, upstream: "http://[::1]:8080/" }\n' +
          'rules:\n  - { id: r, match: { methods: [get], hosts: ["*.Example.COM."] }, action: allow }\n' +
          'tests:\n  - request: { method: post, url: "http://a/", identity: bot, headers: { X-A: b } }\n    expect: deny\n    rule: null\n',
      ),
    ]);
    assert.ok(r.ok);
    const p = r.policy;
    const bot = p.identities.get('bot');
    assert.deepEqual(bot?.groups, ['g']);
    assert.equal(Buffer.from(bot!.tokenSha256[0]!).toString('hex'), digest);
    assert.deepEqual(
      p.routes.map(({ prefix, scheme, host, port, upstreamPath }) => ({ prefix, scheme, host, port, upstreamPath })),
      [
        { prefix: '/a/b/', scheme: 'http', host: '::1', port: 8080, upstreamPath: '/' },
        { prefix: '/a/', scheme: 'https', host: 'a.example', port: 443, upstreamPath: '/v1/' },
      ],
    );
    const rule = p.index.rules[0];
    // HEAD runs GET handlers: a rule on GET decides HEAD too.
    assert.deepEqual([...(rule?.methods ?? [])], ['GET', 'HEAD']);
    assert.deepEqual(rule?.hosts, [{ kind: 'suffix', suffix: 'example.com' }]);
    assert.deepEqual(p.tests[0], {
      method: 'POST',
      url: 'http://a/',
      headers: { 'X-A': 'b' },
      body: null,
      identity: 'bot',
      expect: 'deny',
      rule: null,
      source: { file: 'p.yaml', line: 10, col: 5 },
    });
    assert.match(p.version, /^[0-9a-f]{12}$/);
  });
});

describe('loadPolicyDir', () => {
  let root: string;
  const POLICY = 'version: 1\nrules:\n  - { id: r, match: { hosts: [a.example] }, action: allow }\n';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'airlock-policy-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('loads *.yaml and *.yml at the top level only, skipping dot-names and other files', async () => {
    const dir = join(root, 'plain');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'a.yaml'), POLICY);
    await writeFile(join(dir, 'b.yml'), 'version: 1\n');
    await writeFile(join(dir, '.hidden.yaml'), 'broken: [');
    await writeFile(join(dir, 'notes.txt'), 'broken: [');
    await writeFile(join(dir, 'sub', 'c.yaml'), 'broken: [');
    const r = await loadPolicyDir(dir);
    assert.ok(r.ok);
    assert.deepEqual(r.policy.files, [join(dir, 'a.yaml'), join(dir, 'b.yml')]);
  });

  it('follows symlinks the way a Kubernetes ConfigMap mount lays files out, with a stable version', async () => {
    const dir = join(root, 'configmap');
    await mkdir(join(dir, '..2026_01_01_v1'), { recursive: true });
    await writeFile(join(dir, '..2026_01_01_v1', 'policy.yaml'), POLICY);
    await symlink('..2026_01_01_v1', join(dir, '..data'));
    await symlink(join('..data', 'policy.yaml'), join(dir, 'policy.yaml'));
    const r = await loadPolicyDir(dir);
    assert.ok(r.ok);
    assert.deepEqual(r.policy.files, [join(dir, 'policy.yaml')]);

    const copy = join(root, 'copy');
    await mkdir(copy);
    await writeFile(join(copy, 'policy.yaml'), POLICY);
    const same = await loadPolicyDir(copy);
    assert.ok(same.ok);
    assert.equal(same.policy.version, r.policy.version);
    await writeFile(join(copy, 'policy.yaml'), POLICY.replace('allow', 'deny'));
    const changed = await loadPolicyDir(copy);
    assert.ok(changed.ok);
    assert.notEqual(changed.policy.version, r.policy.version);
  });

  it('refuses a folder without policy files', async () => {
    const dir = join(root, 'empty');
    await mkdir(dir);
    await writeFile(join(dir, 'README.md'), '# nothing');
    const r = await loadPolicyDir(dir);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(formatPolicyError(r.errors[0]!), /^.*empty: no policy files/);
  });

  it('refuses a folder that does not exist', async () => {
    const r = await loadPolicyDir(join(root, 'missing'));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0]?.message ?? '', /cannot read the policy folder/);
  });

  it('names the file of each error with the folder path as given', async () => {
    const dir = join(root, 'broken');
    await mkdir(dir);
    await writeFile(join(dir, 'p.yaml'), 'version: 1\nrules:\n  - id: x\n    match: { methds: [GET] }\n    action: deny\n');
    const r = await loadPolicyDir(dir);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(formatPolicyError(r.errors[0]!).split(' ')[0], `${join(dir, 'p.yaml')}:4:14`);
  });
});

describe('tls.passthrough and rules that inspect requests', () => {
  const load = (rules: string) =>
    loadPolicySources([{ file: 'p.yaml', text: `version: 1\ntls: { passthrough: [pinned.example.com, "*.bank.example"] }\nrules:\n${rules}` }]);

  it('a rule naming a passthrough host and inspecting requests is an error at the passthrough entry', () => {
    const r = load('  - { id: admin, match: { hosts: [pinned.example.com], paths: ["/admin/**"] }, action: deny }\n  - { id: api, match: { hosts: [api.bank.example], methods: [POST] }, action: deny }\n');
    assert.equal(r.ok, false);
    if (!r.ok) {
      const messages = r.errors.map((e) => `${e.line}:${e.col} ${e.message}`);
      assert.equal(messages.length, 2);
      assert.match(messages[0]!, /^2:\d+ tls\.passthrough pinned\.example\.com is never intercepted, so rule "admin" \(p\.yaml:4:5\), which inspects requests, can never apply/);
      assert.match(messages[1]!, /"\*\.bank\.example".*rule "api"/);
    }
  });

  it('host-level rules are fine; a request-level rule for any host is a warning', () => {
    const r = load('  - { id: pinned, match: { hosts: [pinned.example.com] }, action: allow }\n  - { id: admin-anywhere, match: { paths: ["/admin/**"] }, action: deny }\n');
    assert.ok(r.ok);
    if (r.ok) assert.equal(r.warnings.filter((w) => /rule "admin-anywhere"/.test(w.message)).length, 2);
  });
});
