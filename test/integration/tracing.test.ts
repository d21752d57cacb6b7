/**
 * Traces: a real OTLP/HTTP receiver on loopback takes what Airlock exports (JSON), and requests go
 * through the proxy with curl. Without an endpoint, the built CLI is run with a module hook that
 * records every @opentelemetry package resolved.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { AIRLOCK_BIN, ROOT, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number };
}
interface ExportedSpan extends OtlpSpan {
  resource: Map<string, unknown>;
  attrs: Map<string, unknown>;
}
interface Collector {
  url: string;
  spans: ExportedSpan[];
  headers: IncomingHttpHeaders[];
  close(): Promise<void>;
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

function plain(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue;
}

function attributeMap(list: OtlpAttribute[] | undefined): Map<string, unknown> {
  return new Map((list ?? []).map((a) => [a.key, plain(a.value)]));
}

/** An OTLP/HTTP receiver: POST /v1/traces with the JSON encoding, as a collector takes it. */
async function startCollector(): Promise<Collector> {
  const spans: ExportedSpan[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(404).end();
        return;
      }
      headers.push(req.headers);
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        const resource = attributeMap(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, resource, attrs: attributeMap(s.attributes) });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    headers,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function waitFor<T>(what: string, find: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not arrive within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const BOT_TOKEN = 'bot-token-1';
const BOB = 'bob-approver-token';

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com, tokens: ["${hashToken(BOT_TOKEN)}"] }
approvers:
  data-owners: { api: [bob@example.com] }
approverTokens:
  bob@example.com: ["${hashToken(BOB)}"]
rules:
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/v1/**"] }
    action: allow
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [data-owners], wait: 30s, expires: 10m }
`;
}

function traceparent(): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

/** The environment without any OpenTelemetry setting of the machine running the tests. */
function withoutOtel(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('OTEL_')));
}

describe('traces over OTLP/HTTP', () => {
  let collector: Collector;
  let up: Upstream;
  let al: TestAirlock;
  let proxy: string;
  before(async () => {
    collector = await startCollector();
    up = await startUpstream();
    // Configured the standard way, for this Airlock only: the exporter reads them when it is created.
    const saved = process.env;
    process.env = withoutOtel(saved);
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.url;
    process.env.OTEL_EXPORTER_OTLP_HEADERS = 'x-collector-token=c0llect0r';
    process.env.OTEL_BSP_SCHEDULE_DELAY = '20';
    try {
      al = await startTestAirlock({ 'policy.yaml': policy(up) });
    } finally {
      process.env = saved;
    }
    proxy = `http://billing-bot:${BOT_TOKEN}@${new URL(al.proxyUrl).host}`;
  });
  after(async () => {
    await al.close();
    await up.close();
    await collector.close();
  });

  async function api(path: string, body: unknown = {}): Promise<number> {
    const res = await fetch(`${al.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${BOB}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await res.arrayBuffer();
    return res.status;
  }

  async function pendingId(path: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${BOB}` } });
      const found = ((await res.json()) as { approvals: { id: string; request: { url: string } }[] }).approvals.find((v) => new URL(v.request.url).pathname === path);
      if (found) return found.id;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no pending approval for ${path} within 10 s`);
  }

  const spansOf = (traceId: string): ExportedSpan[] => collector.spans.filter((s) => s.traceId === traceId);
  const named = (spans: ExportedSpan[], name: string): ExportedSpan | undefined => spans.find((s) => s.name === name);

  it('continues the caller\'s traceparent: request, decide and forward spans in its trace, and the upstream continues from the forward span', async () => {
    const incoming = traceparent();
    const r = await run('curl', ['-sS', '-x', proxy, '-H', `traceparent: ${incoming.header}`, '-H', 'tracestate: vendor=abc', '-w', '\n%{http_code}', `${up.origin}/v1/items/12345?token=s3cr3t&q=hello`]);
    assert.equal(r.stdout.split('\n').at(-1), '200', r.stderr);

    const got = up.requests.at(-1)!;
    const sent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(got.headers.traceparent));
    assert.ok(sent, `the upstream got a traceparent: ${String(got.headers.traceparent)}`);
    assert.equal(sent[1], incoming.traceId, 'the same trace');
    assert.notEqual(sent[2], incoming.spanId, 'continued from Airlock\'s span, not the caller\'s');
    assert.equal(got.headers.tracestate, 'vendor=abc', 'the caller\'s tracestate goes on with the trace');
    assert.equal(got.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length, 1, 'one traceparent: the caller\'s is replaced');
    assert.deepEqual(Object.keys(got.headers).filter((h) => h.startsWith('x-airlock') || h === 'baggage'), []);

    const spans = await waitFor('the request\'s spans', () => {
      const s = spansOf(incoming.traceId);
      return ['airlock.request', 'airlock.decide', 'airlock.forward'].every((n) => named(s, n)) ? s : undefined;
    });
    const request = named(spans, 'airlock.request')!;
    const decide = named(spans, 'airlock.decide')!;
    const forward = named(spans, 'airlock.forward')!;
    assert.equal(request.parentSpanId, incoming.spanId, 'the request span\'s parent is the caller\'s span');
    assert.equal(request.kind, SPAN_KIND_SERVER);
    assert.equal(decide.parentSpanId, request.spanId);
    assert.equal(forward.parentSpanId, request.spanId);
    assert.equal(forward.kind, SPAN_KIND_CLIENT);
    assert.equal(forward.spanId, sent[2], 'the upstream\'s parent is the forward span');

    assert.equal(request.attrs.get('http.request.method'), 'GET');
    assert.equal(request.attrs.get('server.address'), '127.0.0.1');
    assert.equal(request.attrs.get('server.port'), up.port);
    assert.equal(request.attrs.get('http.route'), '/v1/items/*');
    assert.equal(request.attrs.get('airlock.rule'), 'reads');
    assert.equal(request.attrs.get('airlock.action'), 'allow');
    assert.equal(request.attrs.get('airlock.identity'), 'billing-bot');
    assert.equal(request.attrs.get('http.response.status_code'), 200);
    assert.match(String(request.attrs.get('airlock.request_id')), /^[0-9a-f-]{36}$/);
    assert.deepEqual([decide.attrs.get('airlock.rule'), decide.attrs.get('airlock.action')], ['reads', 'allow']);
    assert.equal(forward.attrs.get('http.response.status_code'), 200);
    assert.equal(forward.attrs.get('server.address'), '127.0.0.1');

    // No query values, ids from the path or credentials in any attribute.
    const values = spans.flatMap((s) => [...s.attrs.values()].map(String)).join('\n');
    for (const secret of ['s3cr3t', 'hello', '12345', BOT_TOKEN]) assert.ok(!values.includes(secret), `${secret} is not in a span`);
    assert.equal(request.resource.get('service.name'), 'airlock');
    assert.equal(collector.headers.at(-1)!['x-collector-token'], 'c0llect0r', 'OTEL_EXPORTER_OTLP_HEADERS is sent');
  });

  it('a held request: hold, vote and forward spans carry the approval id; the vote is its own trace, linked to the hold', async () => {
    const incoming = traceparent();
    const client = run('curl', ['-sS', '-x', proxy, '-H', `traceparent: ${incoming.header}`, '-d', '{"rows":100}', '-w', '\n%{http_code}', `${up.origin}/exports/customers`]);
    const id = await pendingId('/exports/customers');
    assert.equal(await api(`/v1/approvals/${id}/approve`), 200);
    const r = await client;
    assert.equal(r.stdout.split('\n').at(-1), '200', r.stderr);

    const spans = await waitFor('the held request\'s spans', () => {
      const s = spansOf(incoming.traceId);
      return ['airlock.request', 'airlock.decide', 'airlock.hold', 'airlock.forward'].every((n) => named(s, n)) ? s : undefined;
    });
    const request = named(spans, 'airlock.request')!;
    const hold = named(spans, 'airlock.hold')!;
    const forward = named(spans, 'airlock.forward')!;
    assert.equal(request.attrs.get('airlock.action'), 'approve');
    assert.equal(request.attrs.get('airlock.approval.id'), id);
    assert.equal(hold.parentSpanId, request.spanId);
    assert.equal(hold.attrs.get('airlock.approval.id'), id);
    assert.equal(hold.attrs.get('airlock.hold.outcome'), 'approved');
    assert.equal(forward.parentSpanId, request.spanId);
    assert.equal(forward.attrs.get('airlock.approval.id'), id);
    assert.equal(forward.attrs.get('http.response.status_code'), 200);
    assert.equal(String(up.requests.at(-1)!.headers.traceparent).split('-')[2], forward.spanId);

    const vote = await waitFor('the vote span', () => collector.spans.find((s) => s.name === 'airlock.vote' && s.attrs.get('airlock.approval.id') === id));
    assert.notEqual(vote.traceId, incoming.traceId, 'the vote came in its own request: its own trace');
    assert.equal(vote.attrs.get('airlock.approver'), 'bob@example.com');
    assert.equal(vote.attrs.get('airlock.vote.verdict'), 'approve');
    assert.equal(vote.attrs.get('airlock.vote.result'), 'counted');
    assert.equal(vote.attrs.get('airlock.approval.state'), 'approved');
    assert.deepEqual(vote.links?.map((l) => [l.traceId, l.spanId]), [[incoming.traceId, hold.spanId]], 'linked to the held request');
  });

  it('a denied request: the hold ends denied, the vote says so', async () => {
    const incoming = traceparent();
    const client = run('curl', ['-sS', '-x', proxy, '-H', `traceparent: ${incoming.header}`, '-d', '{"rows":1}', '-w', '\n%{http_code}', `${up.origin}/exports/refunds`]);
    const id = await pendingId('/exports/refunds');
    assert.equal(await api(`/v1/approvals/${id}/deny`, { reason: 'not this month' }), 200);
    const r = await client;
    assert.equal(r.stdout.split('\n').at(-1), '403', r.stderr);

    const spans = await waitFor('the denied request\'s spans', () => {
      const s = spansOf(incoming.traceId);
      return named(s, 'airlock.request') && named(s, 'airlock.hold') ? s : undefined;
    });
    assert.equal(named(spans, 'airlock.forward'), undefined, 'nothing forwarded');
    assert.equal(named(spans, 'airlock.hold')!.attrs.get('airlock.hold.outcome'), 'denied');
    const request = named(spans, 'airlock.request')!;
    assert.equal(request.attrs.get('http.response.status_code'), 403);
    assert.equal(request.attrs.get('airlock.error'), 'approval_denied');
    const vote = await waitFor('the vote span', () => collector.spans.find((s) => s.name === 'airlock.vote' && s.attrs.get('airlock.approval.id') === id));
    assert.deepEqual([vote.attrs.get('airlock.vote.verdict'), vote.attrs.get('airlock.approval.state')], ['deny', 'denied']);
  });
});

/** Preloaded into the CLI: records every @opentelemetry package resolved, printed on exit. */
const HOOK = `
import { registerHooks } from 'node:module';
import { writeSync } from 'node:fs';
const loaded = new Set();
registerHooks({
  resolve(specifier, context, nextResolve) {
    const r = nextResolve(specifier, context);
    const m = /\\/node_modules\\/(@opentelemetry\\/[^/]+)\\//.exec(r.url);
    if (m) loaded.add(m[1]);
    return r;
  },
});
process.on('exit', () => writeSync(2, JSON.stringify({ msg: 'opentelemetry modules', modules: [...loaded].sort() }) + '\\n'));
`;

/** `airlock serve` (the built CLI) with the hook: one request through it, then SIGTERM. */
async function serveOnce(env: NodeJS.ProcessEnv, up: Upstream, dir: string): Promise<{ modules: string[]; traceparent: string | undefined }> {
  const policies = join(dir, 'policies');
  await rm(policies, { recursive: true, force: true });
  await mkdir(policies);
  await writeFile(join(policies, 'p.yaml'), `version: 1\nrules:\n  - id: reads\n    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/**"] }\n    action: allow\n`);
  const args = ['--import', pathToFileURL(join(dir, 'hook.mjs')).href, AIRLOCK_BIN, 'serve', '--policies', policies, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--audit', join(dir, 'audit.jsonl'), '--allow-destination', '127.0.0.0/8'];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: { msg?: string; proxy?: string; modules?: string[] }[] = [];
  const listening = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const rec = JSON.parse(line) as (typeof lines)[number];
      lines.push(rec);
      if (rec.msg === 'airlock listening') resolve(rec.proxy!);
    });
    child.once('exit', (code) => reject(new Error(`airlock serve exited (${code}) before listening: ${JSON.stringify(lines)}`)));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const at = await listening;
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://${at}`, `${up.origin}/hello`]);
    assert.equal(r.stdout, '200', r.stderr);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  const modules = lines.find((l) => l.msg === 'opentelemetry modules')?.modules;
  assert.ok(modules, 'the hook reported');
  const traceparent = up.requests.at(-1)!.headers.traceparent;
  return { modules, traceparent: traceparent === undefined ? undefined : String(traceparent) };
}

describe('traces: nothing without an endpoint', () => {
  let dir: string;
  let up: Upstream;
  let collector: Collector;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-tracing-'));
    await writeFile(join(dir, 'hook.mjs'), HOOK);
    up = await startUpstream();
    collector = await startCollector();
  });
  after(async () => {
    await up.close();
    await collector.close();
    await rm(dir, { recursive: true, force: true });
  });

  const baseEnv = (): NodeJS.ProcessEnv => ({ ...withoutOtel(process.env), AIRLOCK_LOG_LEVEL: 'info' });

  it('without OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT no SDK, exporter or propagator is loaded, and no traceparent is added', async () => {
    const { modules, traceparent } = await serveOnce(baseEnv(), up, dir);
    // prom-client loads the API package (its process CPU metric reads the active span for exemplars); nothing else.
    assert.deepEqual(modules.filter((m) => m !== '@opentelemetry/api'), []);
    assert.equal(traceparent, undefined);
  });

  it('with an endpoint the SDK is loaded, the upstream gets a traceparent, and SIGTERM flushes the spans', async () => {
    const { modules, traceparent } = await serveOnce({ ...baseEnv(), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/v1/traces`, OTEL_SERVICE_NAME: 'airlock-sidecar' }, up, dir);
    assert.ok(modules.includes('@opentelemetry/sdk-trace') && modules.includes('@opentelemetry/exporter-trace-otlp-http'), modules.join(', '));
    assert.match(traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // The batch delay (5 s by default) had not passed: these were sent at shutdown.
    const request = collector.spans.find((s) => s.name === 'airlock.request');
    assert.ok(request, 'the request span was exported before the process exited');
    assert.equal(request.traceId, traceparent!.split('-')[1]);
    assert.equal(request.resource.get('service.name'), 'airlock-sidecar');
  });
});
