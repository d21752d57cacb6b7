import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toolVerdict, type ToolVerdict } from '../../src/mcp/tool-verdict.js';
import { rewriteToolsAnswer, toolsListRewriter } from '../../src/mcp/tools-list-answer.js';
import { formatPolicyError } from '../../src/policy/errors.js';
import { loadPolicySources } from '../../src/policy/load.js';
import { canonicalize } from '../../src/request/canonicalize.js';

const POLICY = `version: 1
defaults: { action: deny }
approvers:
  dbas: { api: [dba@example.com] }
identities:
  bot: { groups: [] }
rules:
  - id: session
    match: { hosts: [mcp.internal], body: { jsonrpc: { method: { oneOf: [initialize, tools/list] } } } }
    action: allow
  - id: reads
    match: { hosts: [mcp.internal], body: { jsonrpc: { tool: { oneOf: [select_rows, count_rows] } } } }
    action: allow
  - id: big-reads
    match: { hosts: [mcp.internal], body: { jsonrpc: { tool: { equals: select_rows }, arguments: { /limit: { gt: 1000 } } } } }
    action: approve
    approval: { approvers: [dbas] }
  - id: drops
    match: { hosts: [mcp.internal], body: { jsonrpc: { tool: { glob: "drop_*" } } } }
    action: approve
    approval: { approvers: [dbas] }
  - id: scoped-writes
    match: { hosts: [mcp.internal], body: { jsonrpc: { tool: { equals: insert_row }, arguments: { /table: { oneOf: [scratch] } } } } }
    action: allow
  - id: bot-shell
    match: { hosts: [mcp.internal], identities: [bot], body: { jsonrpc: { tool: { equals: shell } } } }
    action: allow
`;

const loaded = loadPolicySources([{ file: 'p.yaml', text: POLICY }]);
if (!loaded.ok) assert.fail(loaded.errors.map(formatPolicyError).join('\n'));
const policy = loaded.policy;

function listing(host = 'mcp.internal', identity: { id: string; groups: string[] } | null = null) {
  const c = canonicalize({ method: 'POST', target: `http://${host}/mcp`, rawHeaders: ['Content-Type', 'application/json'] }, identity, policy);
  assert.ok(c.ok);
  return c.request;
}

describe('toolVerdict', () => {
  it('says what a call of each tool could get, arguments unknown', () => {
    const verdicts = Object.fromEntries(['count_rows', 'select_rows', 'drop_table', 'insert_row', 'shell'].map((t) => [t, toolVerdict(listing(), policy, t)]));
    assert.deepEqual(verdicts, { count_rows: 'allow', select_rows: 'depends', drop_table: 'approve', insert_row: 'depends', shell: 'deny' });
  });

  it('for the identity and server of the listing', () => {
    assert.equal(toolVerdict(listing('mcp.internal', { id: 'bot', groups: [] }), policy, 'shell'), 'allow');
    assert.equal(toolVerdict(listing('other.internal'), policy, 'count_rows'), 'deny');
  });
});

const VERDICTS: Record<string, ToolVerdict> = { keep: 'allow', held: 'approve', maybe: 'depends', gone: 'deny' };
const verdict = (t: string): ToolVerdict => VERDICTS[t] ?? 'deny';
const answer = (id: number | string, names: string[]) => ({ jsonrpc: '2.0', id, result: { tools: names.map((name) => ({ name, description: `does ${name}`, inputSchema: { type: 'object' } })) } });

describe('rewriteToolsAnswer', () => {
  it('leaves denied tools out and notes the others that may wait for a person', () => {
    const out = rewriteToolsAnswer(answer(1, ['keep', 'held', 'maybe', 'gone']), new Set([1]), verdict) as ReturnType<typeof answer>;
    assert.deepEqual(out.result.tools.map((t) => t.name), ['keep', 'held', 'maybe']);
    assert.equal(out.result.tools[0]!.description, 'does keep');
    assert.match(out.result.tools[1]!.description, /^Airlock: every call of this tool waits for a person to approve it\. .*\n\ndoes held$/s);
    assert.match(out.result.tools[2]!.description, /^Airlock: depending on its arguments, .*\n\ndoes maybe$/s);
  });

  it('only touches the answers to our tools/list calls, in a batch too', () => {
    assert.equal(rewriteToolsAnswer(answer(2, ['gone']), new Set([1]), verdict), null);
    assert.equal(rewriteToolsAnswer({ jsonrpc: '2.0', id: 1, error: { code: -1, message: 'x' } }, new Set([1]), verdict), null);
    const batch = rewriteToolsAnswer([answer(7, ['gone']), answer('a', ['gone', 'keep'])], new Set(['a']), verdict) as ReturnType<typeof answer>[];
    assert.deepEqual(batch.map((m) => m.result.tools.map((t) => t.name)), [['gone'], ['keep']]);
  });
});

describe('toolsListRewriter', () => {
  const run = (type: string, chunks: (string | Buffer)[], headers: Record<string, string> = {}, status = 200): { rewrote: boolean; out: string } => {
    const r = toolsListRewriter(new Set([1]), verdict);
    const rewrote = r.start(status, { 'content-type': type, ...headers });
    if (!rewrote) return { rewrote, out: '' };
    const parts = chunks.map((c) => r.data(Buffer.from(c)));
    parts.push(r.end());
    return { rewrote, out: Buffer.concat(parts).toString('utf8') };
  };

  it('rewrites a JSON answer however it is chunked', () => {
    const text = JSON.stringify(answer(1, ['keep', 'gone']));
    const { out } = run('application/json; charset=utf-8', [text.slice(0, 10), text.slice(10)]);
    assert.deepEqual((JSON.parse(out) as ReturnType<typeof answer>).result.tools.map((t) => t.name), ['keep']);
  });

  it('rewrites server-sent events one by one, across chunk boundaries and split characters, keeping the other fields', () => {
    const event = `event: message\nid: 9\ndata: ${JSON.stringify(answer(1, ['gone', 'keep', 'héld']))}\n\n`;
    const other = ': keep-alive\n\n';
    const bytes = Buffer.from(other + event + other);
    const cut = bytes.indexOf(Buffer.from('é')) + 1; // inside the two bytes of é
    const { out } = run('text/event-stream', [bytes.subarray(0, 30), bytes.subarray(30, cut), bytes.subarray(cut)]);
    const [first, second, third] = out.split('\n\n');
    assert.equal(first, ': keep-alive');
    assert.match(second!, /^event: message\nid: 9\ndata: \{/);
    const data = JSON.parse(second!.split('\n')[2]!.slice(6)) as ReturnType<typeof answer>;
    assert.deepEqual(data.result.tools.map((t) => t.name), ['keep']);
    assert.equal(third, ': keep-alive');
  });

  it('passes on what it cannot rewrite: errors, encoded bodies, other types', () => {
    assert.equal(run('application/json', [], {}, 500).rewrote, false);
    assert.equal(run('application/json', [], { 'content-encoding': 'gzip' }).rewrote, false);
    assert.equal(run('text/plain', []).rewrote, false);
    assert.equal(run('application/json', ['{"not json']).out, '{"not json');
  });
});
