import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileCondition, conditionHolds, type ConditionSpec } from '../../src/inspect/conditions.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { explain } from '../../src/policy/explain.js';
import { formatPolicyError } from '../../src/policy/errors.js';
import { loadPolicySources } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';
import { canonicalize } from '../../src/request/canonicalize.js';

function load(text: string): CompiledPolicy {
  const r = loadPolicySources([{ file: 'p.yaml', text }]);
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
  return r.policy;
}

describe('value conditions', () => {
  const table: [string, ConditionSpec, unknown[], boolean][] = [
    ['equals a string', { equals: 'CreateUser' }, ['CreateUser'], true],
    ['equals is exact (case)', { equals: 'CreateUser' }, ['createuser'], false],
    ['equals a number matches its decimal string', { equals: 5 }, ['5'], true],
    ['equals a number is not another spelling', { equals: 5 }, ['5.0x'], false],
    ['equals null', { equals: null }, [null], true],
    ['oneOf', { oneOf: ['a', 'b'] }, ['b'], true],
    ['oneOf misses', { oneOf: ['a', 'b'] }, ['c'], false],
    ['glob *', { glob: 'Delete*' }, ['DeleteUser'], true],
    ['glob ?', { glob: 'v?' }, ['v2'], true],
    ['glob is anchored', { glob: 'Delete*' }, ['xDeleteUser'], false],
    ['glob treats regex characters literally', { glob: 'a.b' }, ['axb'], false],
    ['glob spans line breaks', { glob: 'a*b' }, ['a\nb'], true],
    ['glob on a number never matches', { glob: '5*' }, [55], false],
    ['contains in a string', { contains: 'drop' }, ['please drop table'], true],
    ['contains in an array', { contains: 'admin' }, [['read', 'admin']], true],
    ['contains a number in an array', { contains: 3 }, [[1, 2, 3]], true],
    ['gt', { gt: 1000 }, [5_000_000], true],
    ['gt on a numeric string', { gt: 1000 }, ['5000000'], true],
    ['gt is strict', { gt: 1000 }, [1000], false],
    ['gte', { gte: 1000 }, [1000], true],
    ['lt', { lt: 10 }, [9.5], true],
    ['lte', { lte: 10 }, ['10'], true],
    ['a range: all operators hold', { gte: 10, lte: 20 }, [15], true],
    ['a range: one fails', { gte: 10, lte: 20 }, [25], false],
    ['numeric on non-numbers is false', { gt: 0 }, ['12abc', true, null, '0x10', ' 5'], false],
    ['present true', { present: true }, [''], true],
    ['present true, absent', { present: true }, [], false],
    ['present false, absent', { present: false }, [], true],
    ['present false, present', { present: false }, ['x'], false],
    ['absent fails every other operator', { equals: 'x' }, [], false],
    ['several values: any may satisfy', { equals: 'write' }, ['read', 'write'], true],
  ];
  for (const [name, spec, values, want] of table) {
    it(name, () => {
      const c = compileCondition(spec);
      if ('error' in c) assert.fail(c.error);
      assert.equal(conditionHolds(c, values, 'any'), want);
    });
  }

  it('with several values, any satisfies a restriction, and every one must satisfy a permission', () => {
    const c = compileCondition({ oneOf: ['read', 'list'] });
    if ('error' in c) assert.fail(c.error);
    assert.equal(conditionHolds(c, ['read', 'delete'], 'any'), true);
    assert.equal(conditionHolds(c, ['read', 'delete'], 'every'), false);
    assert.equal(conditionHolds(c, ['read', 'list'], 'every'), true);
    assert.equal(conditionHolds(c, [], 'every'), false, 'nothing there satisfies no permission');
  });

  it('refuses an empty condition and present combined with others', () => {
    assert.match((compileCondition({}) as { error: string }).error, /at least one/);
    assert.match((compileCondition({ present: true, equals: 'x' }) as { error: string }).error, /present cannot be combined/);
  });
});

const AWS = `version: 1
defaults: { action: allow }
rules:
  - id: no-iam-writes
    match: { hosts: [iam.amazonaws.com], query: { Action: { glob: "Create*" } } }
    action: deny
  - id: big-exports
    match: { hosts: [exports.internal], query: { rows: { gt: 1000 } } }
    action: deny
  - id: no-version
    match: { hosts: [exports.internal], query: { version: { present: false } } }
    action: deny
`;

describe('query rules', () => {
  const policy = load(AWS);
  const decide = (url: string): string => {
    const c = canonicalize({ method: 'GET', target: url, rawHeaders: [] }, null, policy);
    if (!c.ok) return `400 ${c.message}`;
    const d = evaluate(c.request, policy);
    return `${d.action} ${d.rule ?? '-'}`;
  };

  it('decides on decoded parameter values, names compared case-insensitively', () => {
    assert.equal(decide('https://iam.amazonaws.com/?Action=CreateUser&UserName=bob'), 'deny no-iam-writes');
    assert.equal(decide('https://iam.amazonaws.com/?Action=Create%55ser'), 'deny no-iam-writes');
    assert.equal(decide('https://iam.amazonaws.com/?action=CreateUser'), 'deny no-iam-writes');
    assert.equal(decide('https://iam.amazonaws.com/?ACTION=CreateRole'), 'deny no-iam-writes');
    assert.equal(decide('https://iam.amazonaws.com/?Action=ListUsers'), 'allow -');
    assert.equal(decide('https://exports.internal/x?rows=5000000&version=2'), 'deny big-exports');
    assert.equal(decide('https://exports.internal/x?rows=10&version=2'), 'allow -');
    assert.equal(decide('https://exports.internal/x?rows=10'), 'deny no-version');
  });

  it('refuses a parameter a rule inspects sent twice or in two spellings (parameter pollution)', () => {
    for (const q of ['Action=ListUsers&Action=CreateUser', 'Action=ListUsers&action=CreateUser', 'Action=ListUsers&%41ction=CreateUser', 'Action=ListUsers&Act%69on=x']) {
      assert.match(decide(`https://iam.amazonaws.com/?${q}`), /^400 query parameter "action" appears more than once/, q);
    }
    assert.match(decide('https://iam.amazonaws.com/?x=1;Action=CreateUser'), /^400 query parameter "action" follows a ";"/);
    assert.match(decide('https://iam.amazonaws.com/?Action=%ZZ'), /^400 query parameter "action" has a malformed percent escape/);
    assert.match(decide('https://iam.amazonaws.com/?%E0%A4%A=1'), /^400 query parameter name .* malformed percent escape/);
  });

  it('leaves parameters no rule inspects alone, repeated or not', () => {
    assert.equal(decide('https://iam.amazonaws.com/?Action=ListUsers&tag=a&tag=b&note=x;y'), 'allow -');
    const plain = load('version: 1\nrules:\n  - { id: r, match: { hosts: [a.example] }, action: allow }\n');
    const c = canonicalize({ method: 'GET', target: 'http://a.example/?Action=1&Action=2', rawHeaders: [] }, null, plain);
    assert.ok(c.ok);
    assert.equal(c.request.params.size, 0);
  });

  it('makes CONNECTs to the host inspected, and explains which condition held', () => {
    const c = canonicalize({ method: 'GET', target: 'https://iam.amazonaws.com/?Action=CreateUser', rawHeaders: [] }, null, policy);
    assert.ok(c.ok);
    const e = explain(c.request, policy);
    const rule = e.rules.find((r) => r.id === 'no-iam-writes')!;
    assert.ok(rule.matched);
    assert.ok(rule.criteria.some((x) => x.criterion === 'query' && x.ok && /query parameter action is "CreateUser"; rule wants glob "Create\*"/.test(x.detail)));
  });

  it('names file:line:col of a bad condition', () => {
    const r = loadPolicySources([{ file: 'p.yaml', text: 'version: 1\nrules:\n  - id: r\n    match: { query: { Action: {} } }\n    action: deny\n' }]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(formatPolicyError(r.errors[0]!), /^p\.yaml:4:\d+ query parameter "Action": a condition needs at least one of/);
  });
});
