import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { graphqlView, operationsOf } from '../../src/inspect/graphql.js';
import { formatPolicyError } from '../../src/policy/errors.js';
import { decideGiven } from '../../src/policy/given.js';
import { loadPolicySources } from '../../src/policy/load.js';
import type { CompiledPolicy } from '../../src/policy/types.js';

describe('reading GraphQL operations', () => {
  it('names every operation, its type and its root fields (not aliases; fragments followed)', async () => {
    assert.deepEqual(operationsOf('query GetRepo { repository(name: "x") { id } viewer { login } }'), [{ type: 'query', name: 'GetRepo', fields: ['repository', 'viewer'] }]);
    assert.deepEqual(operationsOf('mutation { harmless: deleteRepository(id: 1) { id } }'), [{ type: 'mutation', name: null, fields: ['deleteRepository'] }]);
    assert.deepEqual(operationsOf('mutation M { ...F ... on Mutation { addStar } } fragment F on Mutation { deleteRepository }'), [{ type: 'mutation', name: 'M', fields: ['deleteRepository', 'addStar'] }]);
    assert.deepEqual((operationsOf('{ a } subscription S { b }') as { type: string }[]).map((o) => o.type), ['query', 'subscription']);
  });

  it('cannot read what does not parse, cycles through fragments, or has no operation', async () => {
    assert.match(operationsOf('mutation {') as string, /does not parse/);
    assert.match(operationsOf('query { ...A } fragment A on Q { ...A }') as string, /nests or misses fragments/);
    assert.match(operationsOf('fragment F on Q { a }') as string, /no operation/);
    assert.match(operationsOf(`{ ${'a '.repeat(30000)} }`) as string, /does not parse/);
  });

  it('finds GraphQL in JSON, batches, raw documents and the URL; persisted queries are unreadable', async () => {
    const none = new Map<string, string>();
    assert.deepEqual(graphqlView({ query: 'mutation { a }' }, null, none), { operations: [{ type: 'mutation', name: null, fields: ['a'] }] });
    assert.equal((graphqlView([{ query: '{ a }' }, { query: 'mutation { b }' }], null, none) as { operations: unknown[] }).operations.length, 2);
    assert.deepEqual(graphqlView(undefined, 'mutation { x }', none), { operations: [{ type: 'mutation', name: null, fields: ['x'] }] });
    assert.deepEqual(graphqlView(undefined, null, new Map([['query', '{ a }']])), { operations: [{ type: 'query', name: null, fields: ['a'] }] });
    assert.match((graphqlView({ extensions: { persistedQuery: { version: 1, sha256Hash: 'ab' } } }, null, none) as { unreadable: string }).unreadable, /persisted/);
    assert.match((graphqlView([{ query: '{ a }' }, { extensions: { persistedQuery: {} } }], null, none) as { unreadable: string }).unreadable, /persisted/);
    assert.equal(graphqlView({ rows: 5 }, null, none), null);
  });
});

const POLICY = `version: 1
defaults: { action: deny }
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: graphql-reads
    match: { hosts: [api.github.com], paths: ["/graphql"], body: { graphql: { operation: { equals: query } } } }
    action: allow
  - id: destructive
    match: { hosts: [api.github.com], paths: ["/graphql"], body: { graphql: { field: { oneOf: [deleteRepository, transferRepository] } } } }
    action: deny
  - id: other-mutations
    match: { hosts: [api.github.com], paths: ["/graphql"], body: { graphql: { operation: { equals: mutation } } } }
    action: approve
    approval: { approvers: [owners] }
`;

describe('GraphQL rules', () => {
  const r = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
  const policy: CompiledPolicy = r.policy;
  const post = async (body: unknown, type = 'application/json'): Promise<string> => {
    const g = await decideGiven({ method: 'POST', target: 'https://api.github.com/graphql', rawHeaders: ['Content-Type', type] }, null, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), policy);
    return g.ok ? `${g.decision.action} ${g.decision.rule ?? '-'}` : `400 ${g.message}`;
  };
  const get = async (query: string): Promise<string> => {
    const g = await decideGiven({ method: 'GET', target: `https://api.github.com/graphql?query=${encodeURIComponent(query)}`, rawHeaders: [] }, null, null, policy);
    return g.ok ? `${g.decision.action} ${g.decision.rule ?? '-'}` : `400 ${g.message}`;
  };

  it('a query passes, a mutation is held, a destructive field is denied whatever its alias', async () => {
    assert.equal(await post({ query: 'query { viewer { login } }' }), 'allow graphql-reads');
    assert.equal(await post({ query: 'mutation { addStar(input: {}) { clientMutationId } }' }), 'approve other-mutations');
    assert.equal(await post({ query: 'mutation { ok: deleteRepository(input: {}) { clientMutationId } }' }), 'deny destructive');
    assert.equal(await post('mutation { deleteRepository(input: {}) { clientMutationId } }', 'application/graphql'), 'deny destructive');
    assert.equal(await get('mutation { addStar { id } }'), 'approve other-mutations');
    assert.equal(await get('{ viewer { login } }'), 'allow graphql-reads');
  });

  it('every operation counts: a mutation beside a query, or in a batch, is not allowed as a read', async () => {
    assert.equal(await post({ query: 'query Q { viewer { login } } mutation M { addStar { id } }', operationName: 'Q' }), 'approve other-mutations');
    assert.equal(await post([{ query: '{ viewer { login } }' }, { query: 'mutation { addStar { id } }' }]), 'approve other-mutations');
  });

  it('what Airlock cannot see gets the most restrictive outcome a GraphQL rule could give', async () => {
    assert.equal(await post({ extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } }), 'deny destructive');
    assert.equal(await post({ query: 'mutation {' }), 'deny destructive');
  });

  it('a GET with its query given twice is a 400', async () => {
    const g = await decideGiven({ method: 'GET', target: 'https://api.github.com/graphql?query=%7Ba%7D&query=mutation%7Bb%7D', rawHeaders: [] }, null, null, policy);
    assert.equal(g.ok, false);
  });
});
