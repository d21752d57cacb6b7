import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { EnvHttpProxyAgent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import { hashToken } from '../../src/request/identify.js';
import { proxyEnv, startTestAirlock, type TestAirlock } from '../helpers/harness.js';

const APPROVER = 'mcp-dba-token';

/** A stateless MCP server over streamable HTTP (the official SDK), recording every tool it runs. */
async function startMcpServer(answer: 'json' | 'sse' = 'json'): Promise<{ url: string; ran: string[]; close(): Promise<void> }> {
  const ran: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const mcp = new McpServer({ name: 'db', version: '1.0.0' });
    mcp.registerTool('select_rows', { inputSchema: { table: z.string(), limit: z.number() } }, async ({ table, limit }) => {
      ran.push(`select_rows ${table} ${limit}`);
      return { content: [{ type: 'text', text: `${limit} rows of ${table}` }] };
    });
    mcp.registerTool('drop_table', { description: 'Drops a table', inputSchema: { table: z.string() } }, async ({ table }) => {
      ran.push(`drop_table ${table}`);
      return { content: [{ type: 'text', text: `dropped ${table}` }] };
    });
    mcp.registerTool('shell', { description: 'Runs a shell command', inputSchema: { command: z.string() } }, async ({ command }) => {
      ran.push(`shell ${command}`);
      return { content: [{ type: 'text', text: 'ok' }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: answer === 'json' });
    res.on('close', () => void transport.close());
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mcp`, ran, close: () => new Promise((r) => server.close(() => r())) };
}

const textOf = (r: unknown): string => ((r as { content: { text: string }[] }).content[0]?.text ?? '');

const POLICY = `
version: 1
defaults: { action: deny }
approvers:
  dbas: { api: [dba@example.com] }
approverTokens:
  dba@example.com: ["${hashToken(APPROVER)}"]
rules:
  - id: mcp-session
    match: { hosts: [127.0.0.1], paths: ["/mcp"], body: { jsonrpc: { method: { oneOf: [initialize, notifications/initialized, tools/list, ping] } } } }
    action: allow
  - id: reads
    match: { hosts: [127.0.0.1], paths: ["/mcp"], body: { jsonrpc: { tool: { equals: select_rows }, arguments: { /limit: { lte: 1000 } } } } }
    action: allow
  - id: drops
    match: { hosts: [127.0.0.1], paths: ["/mcp"], body: { jsonrpc: { tool: { glob: "drop_*" } } } }
    action: approve
    approval: { approvers: [dbas], wait: 30s, expires: 10m }
`;

/** An MCP client of the official SDK whose requests go through Airlock (HTTP_PROXY, undici's EnvHttpProxyAgent). */
async function connectThrough(al: TestAirlock, url: string): Promise<{ client: Client; dispatcher: EnvHttpProxyAgent }> {
  const saved = process.env;
  process.env = proxyEnv(al.proxyUrl);
  const dispatcher = new EnvHttpProxyAgent();
  process.env = saved;
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: (u, init) => undiciFetch(u, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
  });
  const client = new Client({ name: 'agent', version: '1.0.0' });
  await client.connect(transport);
  return { client, dispatcher };
}

describe('an MCP client through HTTP_PROXY, answers as server-sent events', () => {
  let mcp: Awaited<ReturnType<typeof startMcpServer>>;
  let al: TestAirlock;
  let client: Client;
  let dispatcher: EnvHttpProxyAgent;
  before(async () => {
    mcp = await startMcpServer('sse');
    al = await startTestAirlock({ 'policy.yaml': POLICY });
    ({ client, dispatcher } = await connectThrough(al, mcp.url));
  });
  after(async () => {
    await client.close();
    await dispatcher.close();
    await al.close();
    await mcp.close();
  });

  it('the tool list is rewritten in the event stream, and calls work as with JSON answers', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['drop_table', 'select_rows']);
    assert.match(tools.find((t) => t.name === 'drop_table')!.description ?? '', /^Airlock: every call/);
    const r = await client.callTool({ name: 'select_rows', arguments: { table: 'orders', limit: 5 } });
    assert.equal(textOf(r), '5 rows of orders');
    const denied = await client.callTool({ name: 'shell', arguments: { command: 'id' } });
    assert.equal(denied.isError, true);
    assert.ok(!mcp.ran.includes('shell id'));
  });
});

describe('an MCP client (the official SDK) through HTTP_PROXY', () => {
  let mcp: Awaited<ReturnType<typeof startMcpServer>>;
  let al: TestAirlock;
  let client: Client;
  let dispatcher: EnvHttpProxyAgent;
  before(async () => {
    mcp = await startMcpServer();
    al = await startTestAirlock({ 'policy.yaml': POLICY });
    ({ client, dispatcher } = await connectThrough(al, mcp.url));
  });
  after(async () => {
    await client.close();
    await dispatcher.close();
    await al.close();
    await mcp.close();
  });

  it('lists what the policy lets the agent do: denied tools left out, held ones saying so', async () => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['drop_table', 'select_rows']);
    const drop = tools.find((t) => t.name === 'drop_table')!;
    assert.match(drop.description ?? '', /^Airlock: every call of this tool waits for a person to approve it\..*\n\nDrops a table$/s);
    assert.match(tools.find((t) => t.name === 'select_rows')!.description ?? '', /^Airlock: depending on its arguments/);
  });
  it('runs an allowed call', async () => {
    const r = await client.callTool({ name: 'select_rows', arguments: { table: 'orders', limit: 10 } });
    assert.equal(textOf(r), '10 rows of orders');
    assert.deepEqual(mcp.ran, ['select_rows orders 10']);
  });

  it('a denied call comes back as a tool error the model can read, and never reaches the server', async () => {
    const r = await client.callTool({ name: 'select_rows', arguments: { table: 'orders', limit: 50000 } });
    assert.equal(r.isError, true);
    assert.match(textOf(r), /does not allow calling the tool "select_rows"/);
    assert.equal(mcp.ran.length, 1);
  });

  it('a held call is answered at once with the approval id; after approval the same call runs once', async () => {
    const first = await client.callTool({ name: 'drop_table', arguments: { table: 'staging' } });
    assert.equal(first.isError, true);
    const text = textOf(first);
    assert.match(text, /needs a human's approval \(rule drops\)/);
    assert.match(text, /Call the tool again with the same arguments once it is approved/);
    const id = /Approval id: ([0-9a-f-]{36})/.exec(text)![1]!;
    assert.ok(!mcp.ran.includes('drop_table staging'));

    // The model asks again before anyone decided: the same approval, still pending.
    const again = await client.callTool({ name: 'drop_table', arguments: { table: 'staging' } });
    assert.match(textOf(again), new RegExp(`Approval id: ${id}`));

    const approved = await fetch(`${al.adminUrl}/v1/approvals/${id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${APPROVER}` } });
    assert.equal(approved.status, 200);
    const ran = await client.callTool({ name: 'drop_table', arguments: { table: 'staging' } });
    assert.equal(ran.isError, undefined);
    assert.equal(textOf(ran), 'dropped staging');
    assert.deepEqual(mcp.ran.filter((x) => x.startsWith('drop_table')), ['drop_table staging']);

    // Spent: the same call asks again.
    const later = await client.callTool({ name: 'drop_table', arguments: { table: 'staging' } });
    assert.equal(later.isError, true);
    assert.doesNotMatch(textOf(later), new RegExp(id));
  });
});
