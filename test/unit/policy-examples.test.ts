import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatPolicyError } from '../../src/policy/errors.js';
import { loadPolicyDir, loadPolicySources } from '../../src/policy/load.js';
import { policyJsonSchemaText } from '../../src/policy/schema.js';
import { runTestCases } from '../../src/policy/testcases.js';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';

const POLICIES = join(import.meta.dirname, '../../policies');

describe('example policies', () => {
  it('load without errors or warnings, and their tests: cases all pass', async () => {
    const r = await loadPolicyDir(POLICIES);
    if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
    assert.deepEqual(r.warnings.map(formatPolicyError), []);
    assert.ok(r.policy.tests.length >= 10);
    const failures = (await runTestCases(r.policy)).filter((t) => !t.ok);
    assert.deepEqual(failures.map((f) => `${f.case.source.line}: ${f.message}`), []);
  });

  it('start with the yaml-language-server schema line', async () => {
    const text = await readFile(join(POLICIES, 'example.yaml'), 'utf8');
    assert.equal(text.split('\n')[0], '# yaml-language-server: $schema=./schema.json');
  });

  it('ship a schema.json generated from the current zod schema (run `npm run schema`)', async () => {
    assert.equal(await readFile(join(POLICIES, 'schema.json'), 'utf8'), policyJsonSchemaText());
  });

  it('schema.json is standard JSON Schema (draft-07, an $id, no unknown formats or keywords) that a strict validator compiles, and the examples satisfy it', async () => {
    const schema = JSON.parse(await readFile(join(POLICIES, 'schema.json'), 'utf8')) as { $schema: string; $id: string };
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    assert.match(schema.$id, /^urn:airlock:/);
    const validate = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true }).compile(schema);
    const example = parseYaml(await readFile(join(POLICIES, 'example.yaml'), 'utf8')) as unknown;
    assert.ok(validate(example), JSON.stringify(validate.errors));
    assert.ok(!validate({ version: 1, rules: [{ id: 'x', match: { paths: ['no-slash'] }, action: 'allow' }] }), 'a path glob must start with "/"');
  });
});

describe('running tests: cases', () => {
  const policy = (tests: string) => {
    const r = loadPolicySources([
      {
        file: 't.yaml',
        text:
          'version: 1\nidentities:\n  bot: { groups: [agents] }\n' +
          'rules:\n  - { id: agents-read, match: { methods: [GET], identities: ["group:agents"] }, action: allow }\n' +
          '  - { id: env, match: { headers: { X-Env: { equals: prod } } }, action: deny }\n' +
          `tests:\n${tests}`,
      },
    ]);
    if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
    return r.policy;
  };

  it('passes matching expectations, with identities and headers', async () => {
    const results = await runTestCases(
      policy(
        '  - { request: { url: "http://a.example/", identity: bot }, expect: allow, rule: agents-read }\n' +
          '  - { request: { url: "http://a.example/" }, expect: deny, rule: null }\n' +
          '  - { request: { url: "http://a.example/", identity: bot, headers: { X-Env: prod } }, expect: deny, rule: env }\n',
      ),
    );
    assert.deepEqual(results.map((r) => [r.ok, r.message]), [[true, ''], [true, ''], [true, '']]);
  });

  it('fails with the expected and actual outcome, at the position of the case', async () => {
    const [wrongAction, wrongRule] = await runTestCases(
      policy(
        '  - { request: { url: "http://a.example/" }, expect: allow }\n' +
          '  - request: { url: "http://a.example/", identity: bot }\n    expect: allow\n    rule: env\n',
      ),
    );
    assert.equal(wrongAction?.ok, false);
    assert.equal(wrongAction?.message, 'expected allow got deny (default)');
    assert.deepEqual(wrongAction?.case.source, { file: 't.yaml', line: 8, col: 5 });
    assert.equal(wrongRule?.message, 'expected allow by rule env got allow by rule agents-read');
  });

  it('fails a case naming an unknown identity, or a request the proxy would refuse', async () => {
    const [ghost, refused] = await runTestCases(
      policy('  - { request: { url: "http://a.example/", identity: ghost }, expect: deny }\n  - { request: { url: "http://a.example/%2F" }, expect: deny }\n'),
    );
    assert.equal(ghost?.ok, false);
    assert.match(ghost?.message ?? '', /unknown identity "ghost"/);
    assert.equal(refused?.ok, false);
    assert.match(refused?.message ?? '', /would refuse this request \(400\)/);
  });
});
