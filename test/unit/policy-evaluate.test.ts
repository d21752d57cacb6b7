import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeaderList } from '../../src/request/headers.js';
import { NO_EXCEPTIONS } from '../../src/policy/exceptions.js';
import { evaluate, evaluateTunnel } from '../../src/policy/evaluate.js';
import { explain } from '../../src/policy/explain.js';
import { loadPolicySources, type PolicySource } from '../../src/policy/load.js';
import type { CanonicalRequest, CompiledPolicy, Identity } from '../../src/policy/types.js';

function load(...sources: (string | PolicySource)[]): CompiledPolicy {
  const r = loadPolicySources(sources.map((s, i) => (typeof s === 'string' ? { file: `p${i}.yaml`, text: s } : s)));
  if (!r.ok) assert.fail(`policy should load:\n${r.errors.map((e) => `${e.file}:${e.line}:${e.col} ${e.message}`).join('\n')}`);
  return r.policy;
}

interface ReqOptions {
  headers?: Record<string, string | string[]>;
  identity?: Identity | null;
  classification?: string | null;
}

/** A canonical request built directly (canonicalize has its own tests). */
function req(method: string, url: string, o: ReqOptions = {}): CanonicalRequest {
  const u = new URL(url);
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  return {
    method,
    scheme,
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : scheme === 'https' ? 443 : 80,
    path: decodeURIComponent(u.pathname),
    encodedPath: u.pathname,
    query: u.search.slice(1),
    params: new Map(),
    headers: new HeaderList(Object.entries(o.headers ?? {}).flatMap(([name, v]) => (Array.isArray(v) ? v : [v]).flatMap((x) => [name, x]))),
    identity: o.identity ?? null,
    classification: o.classification ?? null,
    exceptions: NO_EXCEPTIONS,
  };
}

const rule = (id: string, match: string, action: string, extra = ''): string =>
  `  - { id: ${id}, match: ${match}, action: ${action}${extra ? `, ${extra}` : ''} }\n`;
const policyText = (rules: string, head = ''): string => `version: 1\n${head}rules:\n${rules}`;

const APPROVERS = 'approvers:\n  owners: { api: [bob@example.com, carol@example.com] }\n';
const APPROVAL = 'approval: { approvers: [owners], required: 2, wait: 30s, expires: 10m, channel: "#ops" }';

describe('evaluate: most restrictive wins', () => {
  const allow = rule('allow-all-a', '{ hosts: [a.example] }', 'allow');
  const approve = rule('approve-posts', '{ methods: [POST], hosts: [a.example] }', 'approve', APPROVAL);
  const deny = rule('deny-admin', '{ paths: ["/admin/**"] }', 'deny', 'reason: no admin');
  const orders = [
    [allow, approve, deny],
    [deny, approve, allow],
    [approve, deny, allow],
    [allow, deny, approve],
  ];
  for (const [n, order] of orders.entries()) {
    it(`gives the same decisions whatever the rule order (${n})`, () => {
      const p = load(policyText(order.join(''), APPROVERS));
      const cases: [string, string, string, string | null][] = [
        ['GET', 'http://a.example/x', 'allow', 'allow-all-a'],
        ['POST', 'http://a.example/x', 'approve', 'approve-posts'],
        ['POST', 'http://a.example/admin/users', 'deny', 'deny-admin'],
        ['GET', 'http://a.example/admin', 'deny', 'deny-admin'],
        ['GET', 'http://b.example/x', 'deny', null],
      ];
      for (const [method, url, action, by] of cases) {
        const d = evaluate(req(method, url), p);
        assert.equal(d.action, action, `${method} ${url}`);
        assert.equal(d.rule, by, `${method} ${url}`);
      }
      assert.deepEqual(evaluate(req('POST', 'http://a.example/admin/x'), p).matched, ['deny-admin', 'approve-posts', 'allow-all-a']);
    });
  }

  it('names the first rule in load order (file name, then position) among equally restrictive ones', () => {
    const b = { file: 'b.yaml', text: policyText(rule('b-deny', '{ hosts: [a.example] }', 'deny')) };
    const a = { file: 'a.yaml', text: policyText(rule('a-deny-2', '{ hosts: ["*"] }', 'deny') + rule('a-deny-1', '{}', 'deny')) };
    const p = load(b, a);
    const d = evaluate(req('GET', 'http://a.example/'), p);
    assert.equal(d.rule, 'a-deny-2');
    assert.deepEqual(d.matched, ['a-deny-2', 'a-deny-1', 'b-deny']);
    assert.deepEqual(p.files, ['a.yaml', 'b.yaml']);
  });

  it('lets a deny in one file beat an allow in another', () => {
    const p = load(
      { file: '10-allow.yaml', text: policyText(rule('open', '{ hosts: [a.example] }', 'allow')) },
      { file: '20-deny.yaml', text: policyText(rule('shut', '{ hosts: [a.example], methods: [DELETE] }', 'deny')) },
    );
    assert.equal(evaluate(req('DELETE', 'http://a.example/'), p).action, 'deny');
    assert.equal(evaluate(req('GET', 'http://a.example/'), p).action, 'allow');
  });

  it('carries approval settings and the reason of the deciding rule', () => {
    const p = load(policyText(rule('approve-posts', '{ methods: [POST] }', 'approve', `description: Posts need owners, ${APPROVAL}`), APPROVERS));
    const d = evaluate(req('POST', 'http://a.example/'), p);
    assert.equal(d.action, 'approve');
    assert.equal(d.reason, 'Posts need owners');
    assert.deepEqual(d.approval, { approvers: ['owners'], required: 2, waitMs: 30_000, expiresMs: 600_000, channel: '#ops', editableHeaders: [], probes: [] });
    assert.equal(evaluate(req('GET', 'http://a.example/'), p).approval, undefined);
  });

  it('prefers reason over description, and falls back to the rule id', () => {
    const p = load(policyText(rule('a', '{ ports: [1] }', 'deny', 'reason: R, description: D') + rule('b', '{ ports: [2] }', 'deny', 'description: D') + rule('c', '{ ports: [3] }', 'deny')));
    assert.equal(evaluate(req('GET', 'http://h:1/'), p).reason, 'R');
    assert.equal(evaluate(req('GET', 'http://h:2/'), p).reason, 'D');
    assert.match(evaluate(req('GET', 'http://h:3/'), p).reason, /\bc\b/);
  });
});

describe('evaluate: report mode and defaults', () => {
  it('never lets a report rule change the decision, but lists what it would have done', () => {
    const p = load(policyText(rule('reads', '{ methods: [GET] }', 'allow') + rule('try-deny', '{ paths: ["/x/**"] }', 'deny', 'mode: report') + rule('try-allow', '{ hosts: [q.example] }', 'allow', 'mode: report')));
    const d = evaluate(req('GET', 'http://a.example/x/1'), p);
    assert.equal(d.action, 'allow');
    assert.equal(d.rule, 'reads');
    assert.deepEqual(d.matched, ['reads']);
    assert.deepEqual(d.report, [{ rule: 'try-deny', action: 'deny' }]);
    const dflt = evaluate(req('POST', 'http://q.example/'), p);
    assert.equal(dflt.action, 'deny');
    assert.equal(dflt.rule, null);
    assert.deepEqual(dflt.report, [{ rule: 'try-allow', action: 'allow' }]);
  });

  it('denies by default, saying so', () => {
    const p = load(policyText(rule('r', '{ hosts: [a.example] }', 'allow')));
    const d = evaluate(req('GET', 'http://b.example/'), p);
    assert.deepEqual(d, { action: 'deny', rule: null, matched: [], report: [], reason: 'no rule matched; default is deny' });
  });

  it('honours defaults: allow', () => {
    const p = load(policyText(rule('r', '{ hosts: [a.example] }', 'deny'), 'defaults: { action: allow }\n'));
    assert.equal(evaluate(req('GET', 'http://b.example/'), p).action, 'allow');
    assert.equal(evaluate(req('GET', 'http://b.example/'), p).reason, 'no rule matched; default is allow');
    assert.equal(evaluate(req('GET', 'http://a.example/'), p).action, 'deny');
  });

  it('takes the most restrictive default when files disagree, with a warning naming both', () => {
    const r = loadPolicySources([
      { file: 'a.yaml', text: 'version: 1\ndefaults: { action: allow }\n' },
      { file: 'b.yaml', text: 'version: 1\ndefaults: { action: deny }\n' },
    ]);
    assert.ok(r.ok);
    assert.equal(r.policy.defaultAction, 'deny');
    const w = r.warnings.find((x) => x.message.includes('defaults.action'));
    assert.ok(w);
    assert.equal(`${w.file}:${w.line}:${w.col}`, 'a.yaml:2:21');
    assert.match(w.message, /b\.yaml:2:21/);
  });
});

describe('evaluate: criteria', () => {
  const head = 'classification: { header: X-Data-Classification, levels: [public, internal, confidential, restricted] }\n' +
    'identities:\n  billing-bot: { owner: alice@example.com, groups: [finance-agents] }\n  other-bot: { groups: [support] }\n';
  const p = load(
    policyText(
      rule('conf', '{ hosts: [c.example], classification: { atLeast: confidential } }', 'allow') +
        rule('low', '{ hosts: [l.example], classification: { in: [public, internal] } }', 'allow') +
        rule('by-id', '{ hosts: [i.example], identities: [billing-bot] }', 'allow') +
        rule('by-group', '{ hosts: [g.example], identities: ["group:finance-agents"] }', 'allow') +
        rule('env-prod', '{ hosts: [h.example], headers: { X-Env: { equals: prod } } }', 'allow') +
        rule('version', '{ hosts: [v.example], headers: { X-Api-Version: { oneOf: ["1", "2"] } } }', 'allow') +
        rule('debug-present', '{ hosts: [d.example], headers: { X-Debug: { present: true } } }', 'allow') +
        rule('debug-absent', '{ hosts: [n.example], headers: { X-Debug: { present: false } } }', 'allow') +
        rule('exact', '{ hosts: [API.Example.com] }', 'allow') +
        rule('wild', '{ hosts: ["*.data.internal"] }', 'allow') +
        rule('idn', '{ hosts: [bücher.example] }', 'allow') +
        rule('v6', '{ hosts: ["[::1]"] }', 'allow') +
        rule('ports', '{ hosts: [p.example], ports: [8443] }', 'allow') +
        rule('dotfiles', '{ hosts: [f.example], paths: ["/files/*"] }', 'allow') +
        rule('tree', '{ hosts: [t.example], paths: ["/v1/**"] }', 'allow') +
        rule('any-host', '{ hosts: ["*"], methods: [PATCH] }', 'allow'),
      head,
    ),
  );
  const bot: Identity = { id: 'billing-bot', owner: 'alice@example.com', groups: ['finance-agents'] };
  const other: Identity = { id: 'other-bot', groups: ['support'] };
  const table: [name: string, r: CanonicalRequest, allowedBy: string | null][] = [
    ['atLeast: higher level', req('GET', 'http://c.example/', { classification: 'restricted' }), 'conf'],
    ['atLeast: same level', req('GET', 'http://c.example/', { classification: 'confidential' }), 'conf'],
    ['atLeast: lower level', req('GET', 'http://c.example/', { classification: 'internal' }), null],
    ['in: listed', req('GET', 'http://l.example/', { classification: 'public' }), 'low'],
    ['in: not listed', req('GET', 'http://l.example/', { classification: 'restricted' }), null],
    ['identity id', req('GET', 'http://i.example/', { identity: bot }), 'by-id'],
    ['identity id: someone else', req('GET', 'http://i.example/', { identity: other }), null],
    ['identity id: anonymous', req('GET', 'http://i.example/'), null],
    ['identity group', req('GET', 'http://g.example/', { identity: bot }), 'by-group'],
    ['identity group: not a member', req('GET', 'http://g.example/', { identity: other }), null],
    ['identity group: anonymous', req('GET', 'http://g.example/'), null],
    ['header equals', req('GET', 'http://h.example/', { headers: { 'x-env': 'prod' } }), 'env-prod'],
    ['header equals: other value', req('GET', 'http://h.example/', { headers: { 'x-env': 'Prod' } }), null],
    ['header equals: absent', req('GET', 'http://h.example/'), null],
    ['header equals: sent twice', req('GET', 'http://h.example/', { headers: { 'x-env': ['prod', 'prod'] } }), null],
    ['header oneOf', req('GET', 'http://v.example/', { headers: { 'x-api-version': '2' } }), 'version'],
    ['header oneOf: other value', req('GET', 'http://v.example/', { headers: { 'x-api-version': '3' } }), null],
    ['header oneOf: sent twice', req('GET', 'http://v.example/', { headers: { 'x-api-version': ['1', '2'] } }), null],
    ['header present', req('GET', 'http://d.example/', { headers: { 'x-debug': '' } }), 'debug-present'],
    ['header present: sent twice', req('GET', 'http://d.example/', { headers: { 'x-debug': ['1', '2'] } }), 'debug-present'],
    ['header present: absent', req('GET', 'http://d.example/'), null],
    ['header absent', req('GET', 'http://n.example/'), 'debug-absent'],
    ['header absent: present', req('GET', 'http://n.example/', { headers: { 'x-debug': '1' } }), null],
    ['header named like an Object property', req('GET', 'http://d.example/', { headers: {} }), null],
    ['host exact, rule written in upper case', req('GET', 'http://api.example.com/'), 'exact'],
    ['host exact: subdomain is another host', req('GET', 'http://x.api.example.com/'), null],
    ['host wildcard', req('GET', 'http://eu.data.internal/'), 'wild'],
    ['host wildcard: deeper subdomain', req('GET', 'http://a.b.data.internal/'), 'wild'],
    ['host wildcard: apex not matched', req('GET', 'http://data.internal/'), null],
    ['host wildcard: suffix without a dot', req('GET', 'http://evildata.internal/'), null],
    ['host IDNA', req('GET', 'http://xn--bcher-kva.example/'), 'idn'],
    ['host IPv6', req('GET', 'http://[::1]/'), 'v6'],
    ['port listed', req('GET', 'http://p.example:8443/'), 'ports'],
    ['port not listed', req('GET', 'http://p.example/'), null],
    ['glob * includes dot-files', req('GET', 'http://f.example/files/.env'), 'dotfiles'],
    ['glob * stays in one segment', req('GET', 'http://f.example/files/a/b'), null],
    ['glob ** matches the bare prefix', req('GET', 'http://t.example/v1'), 'tree'],
    ['glob ** matches deep paths', req('GET', 'http://t.example/v1/a/b/c'), 'tree'],
    ['glob ** does not match a longer segment', req('GET', 'http://t.example/v10'), null],
    ['any host, by method', req('PATCH', 'http://whatever.example/'), 'any-host'],
    ['method filter', req('PUT', 'http://whatever.example/'), null],
  ];
  for (const [name, r, by] of table) {
    it(name, () => {
      const d = evaluate(r, p);
      assert.equal(d.rule, by);
      assert.equal(d.action, by === null ? 'deny' : 'allow');
    });
  }

  it('does not find inherited properties as headers', () => {
    const q = load(policyText(rule('c', '{ headers: { constructor: { present: true } } }', 'allow')));
    assert.equal(evaluate(req('GET', 'http://a.example/'), q).rule, null);
    assert.equal(evaluate(req('GET', 'http://a.example/', { headers: { constructor: 'x' } }), q).rule, 'c');
  });

  it('uses the highest level for requests without the header unless `missing` says otherwise', () => {
    assert.equal(p.classification?.missing, 'restricted');
    assert.equal(p.classification?.header, 'x-data-classification');
    const q = load('version: 1\nclassification: { header: X-C, levels: [low, high], missing: low }\n');
    assert.equal(q.classification?.missing, 'low');
  });

  it('lists every inspected header, lower-cased, with the classification header', () => {
    assert.deepEqual([...p.inspectedHeaders].sort(), ['x-api-version', 'x-data-classification', 'x-debug', 'x-env']);
  });

  it('matches a rule listing several overlapping hosts once', () => {
    const q = load(policyText(rule('multi', '{ hosts: [a.data.internal, "*.data.internal", "*.internal", "*"] }', 'allow')));
    const d = evaluate(req('GET', 'http://a.data.internal/'), q);
    assert.deepEqual(d.matched, ['multi']);
  });
});

describe('evaluateTunnel', () => {
  const head = 'identities:\n  bot: { groups: [agents] }\n  other: { groups: [] }\n';
  const p = load(
    policyText(
      rule('open', '{ hosts: [open.example] }', 'allow') +
        rule('paths', '{ hosts: [api.example], paths: ["/v1/**"] }', 'allow') +
        rule('api-bot-only', '{ hosts: [api.example], identities: [bot] }', 'allow') +
        rule('blocked', '{ hosts: ["*.blocked.example"] }', 'deny') +
        rule('blocked-reads', '{ hosts: ["*.blocked.example"], methods: [GET] }', 'allow') +
        rule('tls-only', '{ hosts: [port.example], ports: [443] }', 'allow') +
        rule('for-agents', '{ hosts: [agents.example], methods: [POST], identities: ["group:agents"] }', 'allow') +
        rule('watch', '{ hosts: [open.example] }', 'deny', 'mode: report'),
      head,
    ),
  );
  const bot: Identity = { id: 'bot', groups: ['agents'] };
  const other: Identity = { id: 'other', groups: [] };

  it('decides from host-level rules', () => {
    const v = evaluateTunnel(null, 'open.example', 443, p);
    assert.equal(v.kind, 'decided');
    if (v.kind === 'decided') {
      assert.equal(v.decision.action, 'allow');
      assert.equal(v.decision.rule, 'open');
      assert.deepEqual(v.decision.report, [{ rule: 'watch', action: 'deny' }]);
    }
  });

  it('asks for inspection when a rule for the host needs method, path, headers or classification', () => {
    assert.deepEqual(evaluateTunnel(bot, 'api.example', 443, p), { kind: 'inspect', rules: ['paths'] });
    assert.deepEqual(evaluateTunnel(null, 'api.example', 443, p), { kind: 'inspect', rules: ['paths'] });
  });

  it('decides deny at the tunnel when a host-level deny applies, whatever is inside', () => {
    const v = evaluateTunnel(bot, 'x.blocked.example', 443, p);
    assert.equal(v.kind, 'decided');
    if (v.kind === 'decided') assert.equal(v.decision.rule, 'blocked');
  });

  it('ignores rules the port or the identity rule out', () => {
    const v = evaluateTunnel(null, 'port.example', 8443, p);
    assert.ok(v.kind === 'decided' && v.decision.rule === null && v.decision.action === 'deny');
    const w = evaluateTunnel(null, 'port.example', 443, p);
    assert.ok(w.kind === 'decided' && w.decision.rule === 'tls-only');
    assert.deepEqual(evaluateTunnel(bot, 'agents.example', 443, p), { kind: 'inspect', rules: ['for-agents'] });
    const x = evaluateTunnel(other, 'agents.example', 443, p);
    assert.ok(x.kind === 'decided' && x.decision.action === 'deny' && x.decision.rule === null);
  });

  it('falls back to the default for hosts no rule names', () => {
    const v = evaluateTunnel(bot, 'nowhere.example', 443, p);
    assert.deepEqual(v, { kind: 'decided', decision: { action: 'deny', rule: null, matched: [], report: [], reason: 'no rule matched; default is deny' } });
  });
});

describe('explain', () => {
  const head = 'identities:\n  bot: { groups: [agents] }\nclassification: { header: X-C, levels: [low, high] }\n';
  const p = load(
    policyText(
      rule('reads', '{ methods: [GET], hosts: ["*.data.internal"], paths: ["/v1/**"] }', 'allow') +
        rule('hi', '{ classification: { atLeast: high }, identities: ["group:agents"], headers: { X-Env: { equals: prod } } }', 'deny') +
        rule('watch', '{ ports: [80] }', 'deny', 'mode: report'),
      head,
    ),
  );
  const bot: Identity = { id: 'bot', groups: ['agents'] };

  it('agrees with evaluate on which rules match', () => {
    const requests = [
      req('GET', 'http://a.data.internal/v1/x', { classification: 'low' }),
      req('GET', 'http://a.data.internal/v1/x', { classification: 'high', identity: bot, headers: { 'x-env': 'prod' } }),
      req('POST', 'https://a.data.internal/v1/x', { classification: 'high', identity: bot, headers: { 'x-env': 'dev' } }),
      req('GET', 'https://data.internal/v1', { classification: 'low' }),
    ];
    for (const r of requests) {
      const e = explain(r, p);
      const d = evaluate(r, p);
      assert.deepEqual(e.decision, d);
      const matched = e.rules.filter((x) => x.matched && x.mode === 'enforce').map((x) => x.id).sort();
      assert.deepEqual(matched, [...d.matched].sort());
      assert.deepEqual(e.rules.filter((x) => x.matched && x.mode === 'report').map((x) => x.id), d.report.map((x) => x.rule));
    }
  });

  it('says why each criterion held, and which one failed first', () => {
    const e = explain(req('GET', 'http://a.data.internal/v1/x', { classification: 'high', identity: bot, headers: { 'x-env': 'dev' } }), p);
    const reads = e.rules.find((r) => r.id === 'reads');
    assert.deepEqual(reads?.criteria.map((c) => c.detail), [
      'method GET in [GET, HEAD]',
      'host a.data.internal matches *.data.internal',
      'path /v1/x matches /v1/**',
    ]);
    const hi = e.rules.find((r) => r.id === 'hi');
    assert.equal(hi?.matched, false);
    assert.deepEqual(hi?.criteria.map((c) => [c.criterion, c.ok, c.detail]), [['header', false, 'header x-env is "dev"; rule wants equals "prod"']]);
    assert.equal(hi?.source.line, 7);
    const none = explain(req('GET', 'http://a.data.internal/v2', { classification: 'low' }), p).rules.find((r) => r.id === 'reads');
    assert.deepEqual(none?.criteria.at(-1), { criterion: 'path', ok: false, detail: 'path /v2 matches none of [/v1/**]' });
  });
});

describe('scale', () => {
  it('compiles 1,000 rules into an index and evaluates against it', () => {
    let rules = '';
    for (let i = 0; i < 1000; i++) {
      const kind = i % 4;
      if (kind === 0) rules += rule(`r${i}`, `{ methods: [GET], hosts: [svc${i}.internal], paths: ["/v1/**"] }`, 'allow');
      else if (kind === 1) rules += rule(`r${i}`, `{ hosts: ["*.svc${i}.example.com"] }`, 'deny');
      else if (kind === 2) rules += rule(`r${i}`, `{ hosts: [svc${i}.internal], headers: { X-Env: { present: true } } }`, 'allow');
      else rules += rule(`r${i}`, `{ methods: [DELETE], paths: ["/svc${i}/**"] }`, 'deny');
    }
    const p = load(policyText(rules));
    assert.equal(p.rules.length, 1000);
    assert.equal(p.index.exactHosts.size, 500);
    assert.equal(p.index.hostSuffixes.size, 250);
    assert.equal(p.index.anyHost.all.length, 250);
    assert.equal(evaluate(req('GET', 'http://svc400.internal/v1/x'), p).rule, 'r400');
    assert.equal(evaluate(req('GET', 'http://a.svc401.example.com/'), p).rule, 'r401');
    assert.equal(evaluate(req('DELETE', 'http://svc400.internal/svc999/x'), p).rule, 'r999');
    assert.equal(evaluate(req('GET', 'http://unknown.example/'), p).rule, null);
  });
});

describe('evaluate: path case', () => {
  const p = load(
    policyText(
      rule('reads', '{ hosts: [a.example], paths: ["/v1/**"] }', 'allow') +
        rule('no-admin', '{ hosts: [a.example], paths: ["/v1/admin/**"] }', 'deny') +
        rule('exact-only', '{ hosts: [a.example], paths: ["/v1/Legacy/**"], caseSensitivePaths: true }', 'deny'),
    ),
  );
  const decide = (path: string): string => {
    const d = evaluate(req('GET', `http://a.example${path}`), p);
    return `${d.action} ${d.rule ?? '-'}`;
  };

  it('rules that restrict match any case; allow rules match as written', () => {
    assert.equal(decide('/v1/admin/keys'), 'deny no-admin');
    assert.equal(decide('/v1/ADMIN/keys'), 'deny no-admin');
    assert.equal(decide('/v1/AdMiN'), 'deny no-admin');
    assert.equal(decide('/v1/items'), 'allow reads');
    assert.equal(decide('/V1/items'), 'deny -');
  });

  it('a rule can opt out with caseSensitivePaths: true', () => {
    assert.equal(decide('/v1/Legacy/x'), 'deny exact-only');
    assert.equal(decide('/v1/legacy/x'), 'allow reads');
  });

  it('a rule host written as an IPv6 spelling of an IPv4 address is that address', () => {
    const q = load(policyText(rule('no-local', '{ hosts: ["[::ffff:127.0.0.1]"] }', 'deny') + rule('all', '{ hosts: ["*"] }', 'allow')));
    assert.equal(evaluate(req('GET', 'http://127.0.0.1/'), q).rule, 'no-local');
  });
});
