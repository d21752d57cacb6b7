import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspectRpc } from '../../src/inspect/jsonrpc.js';
import { formatPolicyError } from '../../src/policy/errors.js';
import { decideGiven } from '../../src/policy/given.js';
import { loadPolicySources } from '../../src/policy/load.js';
import { HeaderList } from '../../src/request/headers.js';

const call = (method: string, params: unknown = {}, id: number | undefined = 1): unknown => ({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), method, params });

describe('reading JSON-RPC calls', () => {
  const none = new HeaderList([]);
  it('one call or a batch; tools/call names its tool and arguments', async () => {
    const r = inspectRpc(call('tools/call', { name: 'drop_table', arguments: { table: 'users' } }), none);
    assert.ok(r.ok && r.view);
    assert.deepEqual(r.view.calls, [{ method: 'tools/call', id: 1, tool: 'drop_table', arguments: { table: 'users' }, target: 'drop_table' }]);
    const b = inspectRpc([call('tools/list'), call('notifications/initialized', {}, undefined)], none);
    assert.ok(b.ok && b.view?.batch);
    assert.deepEqual(b.view.calls.map((c) => c.method), ['tools/list', 'notifications/initialized']);
    const plain = inspectRpc({ rows: 1 }, none);
    assert.ok(plain.ok && plain.view === null);
  });

  it('refuses Mcp-Method / Mcp-Name headers that disagree with the body', async () => {
    const h = (...kv: string[]): HeaderList => new HeaderList(kv);
    const body = call('tools/call', { name: 'drop_table', arguments: {} });
    assert.ok(inspectRpc(body, h('mcp-method', 'tools/call', 'mcp-name', 'drop_table')).ok);
    assert.match((inspectRpc(body, h('mcp-method', 'tools/list')) as { message: string }).message, /Mcp-Method "tools\/list" does not match the body's method "tools\/call"/);
    assert.match((inspectRpc(body, h('mcp-name', 'select_rows')) as { message: string }).message, /Mcp-Name "select_rows" does not match/);
    assert.match((inspectRpc([body, body], h('mcp-method', 'tools/call')) as { message: string }).message, /not exactly one JSON-RPC call/);
    assert.ok(inspectRpc(call('resources/read', { uri: 'file:///a' }), h('mcp-name', 'file:///a')).ok);
  });
});

const POLICY = `version: 1
defaults: { action: deny }
approvers:
  dbas: { api: [dba@example.com] }
rules:
  - id: mcp-session
    match: { hosts: [mcp.internal], paths: ["/mcp"], body: { jsonrpc: { method: { oneOf: [initialize, notifications/initialized, tools/list, ping] } } } }
    action: allow
  - id: safe-tools
    match: { hosts: [mcp.internal], paths: ["/mcp"], body: { jsonrpc: { tool: { oneOf: [select_rows, describe_table] } } } }
    action: allow
  - id: destructive-tools
    match: { hosts: [mcp.internal], paths: ["/mcp"], body: { jsonrpc: { tool: { glob: "drop_*" } } } }
    action: approve
    approval: { approvers: [dbas] }
  - id: big-selects
    match: { hosts: [mcp.internal], paths: ["/mcp"], body: { jsonrpc: { tool: { equals: select_rows }, arguments: { /limit: { gt: 10000 } } } } }
    action: deny
`;

describe('JSON-RPC and MCP rules', () => {
  const r = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join('\n'));
  const policy = r.policy;
  const post = async (body: unknown, headers: string[] = []): Promise<string> => {
    const g = await decideGiven({ method: 'POST', target: 'http://mcp.internal/mcp', rawHeaders: ['Content-Type', 'application/json', ...headers] }, null, Buffer.from(JSON.stringify(body)), policy);
    return g.ok ? `${g.decision.action} ${g.decision.rule ?? '-'}` : `400 ${g.message}`;
  };

  it('decides on the method, the tool and its arguments', async () => {
    assert.equal(await post(call('tools/list')), 'allow mcp-session');
    assert.equal(await post(call('tools/call', { name: 'select_rows', arguments: { table: 'a', limit: 10 } })), 'allow safe-tools');
    assert.equal(await post(call('tools/call', { name: 'select_rows', arguments: { table: 'a', limit: 50000 } })), 'deny big-selects');
    assert.equal(await post(call('tools/call', { name: 'drop_table', arguments: { table: 'users' } })), 'approve destructive-tools');
    assert.equal(await post(call('tools/call', { name: 'shell', arguments: {} })), 'deny -');
  });

  it('every call of a batch counts', async () => {
    assert.equal(await post([call('tools/call', { name: 'select_rows', arguments: {} }), call('tools/call', { name: 'drop_table', arguments: {} }, 2)]), 'approve destructive-tools');
    assert.equal(await post([call('tools/list'), call('tools/call', { name: 'select_rows', arguments: {} }, 2)]), 'deny -', 'neither allow rule covers every call');
  });

  it('refuses headers that name another call than the body', async () => {
    assert.match(await post(call('tools/call', { name: 'drop_table', arguments: {} }), ['Mcp-Method', 'tools/call', 'Mcp-Name', 'select_rows']), /^400 Mcp-Name "select_rows" does not match/);
  });
});
