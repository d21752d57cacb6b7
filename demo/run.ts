/**
 * `npm run demo`: Airlock end to end on this machine, no Docker, nothing to configure.
 *
 *   1. a demo upstream API on loopback, printing every request that reaches it;
 *   2. `airlock serve` (a child process) with demo/policies/demo.yaml and a fresh approver token;
 *   3. an agent (demo/agent.ts, a child process with HTTP_PROXY pointing at Airlock) that reads
 *      (allowed), deletes (denied) and exports (held for approval);
 *   4. a human approving the export with `airlock approvals list|approve`, so the held call completes;
 *   5. the audit trail, and `airlock audit verify` on it.
 *
 * Exits 0 when every step did what it should, 1 otherwise (naming what went wrong).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseDocument } from 'yaml';
import { hashToken } from '../src/request/identify.js';
import type { CallResult } from './agent.js';

const ROOT = join(import.meta.dirname, '..');
const APPROVER = 'demo-approver@example.com';
const IDENTITY = 'demo-agent';
const DEADLINE_MS = 45_000;

const children: ChildProcess[] = [];
const problems: string[] = [];

function section(title: string): void {
  console.log(`\n━━━ ${title} ${'━'.repeat(Math.max(3, 72 - title.length))}`);
}

function say(text: string): void {
  console.log(text);
}

function indent(prefix: string, text: string): void {
  for (const line of text.replace(/\n+$/, '').split('\n')) console.log(`${prefix}${line}`);
}

function expect(ok: boolean, what: string): void {
  if (ok) return;
  problems.push(what);
  console.log(`  ✗ UNEXPECTED: ${what}`);
}

/** The airlock command, from source (tsx), so the demo runs whatever is checked out. */
function airlockArgs(args: string[]): string[] {
  return ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args];
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the airlock CLI, show the command and what it printed. */
function airlockCli(args: string[], env: NodeJS.ProcessEnv, show = true): Promise<RunResult> {
  if (show) say(`$ airlock ${args.map((a) => (/^[\w@./:=-]+$/.test(a) ? a : `'${a}'`)).join(' ')}`);
  return new Promise((resolve) => {
    execFile(process.execPath, airlockArgs(args), { cwd: ROOT, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      if (show) {
        if (stdout) indent('  ', stdout);
        if (stderr) indent('  ', stderr);
      }
      resolve({ code, stdout, stderr });
    });
  });
}

// ── 1. The demo upstream API ─────────────────────────────────────────────────────────────────────

interface Seen {
  method: string;
  path: string;
}

async function startUpstream(seen: Seen[]): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? '';
      const path = req.url ?? '';
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method, path });
      console.log(`  upstream │ received ${method} ${path}${body ? ` body ${body}` : ''}`);
      const reply = (status: number, value: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (method === 'GET' && path === '/v1/customers') {
        reply(200, { customers: [{ id: 41, name: 'Ada' }, { id: 42, name: 'Grace' }] });
      } else if (method === 'POST' && path === '/v1/exports') {
        reply(200, { export: 'started' });
      } else if (method === 'DELETE' && path.startsWith('/v1/customers/')) {
        reply(200, { deleted: path.slice('/v1/customers/'.length) });
      } else {
        reply(404, { error: 'not found' });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

// ── 2. Airlock ───────────────────────────────────────────────────────────────────────────────────

interface AirlockProcess {
  child: ChildProcess;
  proxy: string;
  admin: string;
  /** Operational logs (stderr) so far; shown only when something goes wrong. */
  logs: string[];
  exited: Promise<number | null>;
}

async function startAirlock(policies: string, auditFile: string): Promise<AirlockProcess> {
  const args = airlockArgs([
    'serve',
    '--policies', policies,
    '--listen', '127.0.0.1:0',
    '--admin', '127.0.0.1:0',
    '--identity', IDENTITY,
    '--audit', auditFile,
    // The demo upstream is on loopback, which the destination guard refuses unless told otherwise.
    '--allow-destination', '127.0.0.0/8',
  ]);
  const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_LOG_LEVEL: 'info' };
  delete env.REDIS_URL; // the demo keeps approvals in memory
  delete env.SLACK_BOT_TOKEN;
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const logs: string[] = [];
  const lines = createInterface({ input: child.stderr! });
  return new Promise((resolve, reject) => {
    let ready = false;
    lines.on('line', (line) => {
      logs.push(line);
      if (ready) return;
      let rec: { msg?: string; proxy?: string; admin?: string };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === 'airlock listening' && rec.proxy && rec.admin) {
        ready = true;
        resolve({ child, proxy: `http://${rec.proxy}`, admin: `http://${rec.admin}`, logs, exited });
      }
    });
    lines.on('close', () => {
      if (!ready) reject(new Error(`airlock serve exited before it was listening:\n${logs.join('\n')}`));
    });
  });
}

async function stopAirlock(al: AirlockProcess): Promise<number | null> {
  al.child.kill('SIGTERM');
  return al.exited;
}

// ── 3. The agent ─────────────────────────────────────────────────────────────────────────────────

function startAgent(api: string, proxy: string, resultFile: string): Promise<number | null> {
  const env: NodeJS.ProcessEnv = { ...process.env, HTTP_PROXY: proxy, http_proxy: proxy, HTTPS_PROXY: proxy, https_proxy: proxy, DEMO_API: api, DEMO_RESULT: resultFile };
  delete env.NO_PROXY;
  delete env.no_proxy;
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'demo/agent.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  createInterface({ input: child.stdout! }).on('line', (line) => console.log(`  agent    │ ${line}`));
  createInterface({ input: child.stderr! }).on('line', (line) => console.log(`  agent !! │ ${line}`));
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

interface ApprovalSummary {
  id: string;
  state: string;
  rule: string;
}

/** Poll the approvals API until the agent's export is pending (the agent is then waiting on it). */
async function waitForPending(admin: string, token: string, until: number): Promise<ApprovalSummary> {
  while (Date.now() < until) {
    const res = await fetch(`${admin}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${token}` } });
    if (res.ok) {
      const { approvals } = (await res.json()) as { approvals: ApprovalSummary[] };
      if (approvals.length > 0) return approvals[0]!;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no pending approval appeared: the export was not held');
}

// ── 5. The audit trail ───────────────────────────────────────────────────────────────────────────

type AuditEvent = Record<string, unknown>;

function str(v: unknown): string {
  return v === undefined || v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v);
}

function printAuditTable(events: AuditEvent[]): void {
  const rows = events.map((e) => [
    str(e.seq),
    str(e.event),
    e.event === 'request' ? str(e.decision) : str(e.state ?? e.decision),
    str(e.rule),
    e.method === 'CONNECT' ? `CONNECT ${str(e.host)}:${str(e.port)}` : e.method ? `${str(e.method)} ${str(e.path)}` : '-',
    str(e.approver ?? e.reason),
  ]);
  const header = ['seq', 'event', 'decision', 'rule', 'request', 'approver / reason'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  say(`  ${fmt(header)}`);
  for (const r of rows) say(`  ${fmt(r)}`);
}

// ── The run ──────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const started = Date.now();
  const until = started + DEADLINE_MS;
  const dir = await mkdtemp(join(tmpdir(), 'airlock-demo-'));
  const seen: Seen[] = [];
  let upstream: Server | undefined;
  let airlock: AirlockProcess | undefined;
  try {
    section('1. The demo upstream API');
    const up = await startUpstream(seen);
    upstream = up.server;
    say(`A stand-in for an internal API, on ${up.origin}:`);
    say('  GET /v1/customers      lists customers');
    say('  DELETE /v1/customers/42 would delete customer 42');
    say('  POST /v1/exports       starts a data export');
    say('It prints every request that reaches it ("upstream │ received …").');

    section('2. Airlock');
    const token = randomBytes(32).toString('base64url');
    const policies = join(dir, 'policies');
    await mkdir(policies);
    const doc = parseDocument(await readFile(join(ROOT, 'demo/policies/demo.yaml'), 'utf8'));
    doc.setIn(['approverTokens'], doc.createNode({ [APPROVER]: [hashToken(token)] }));
    await writeFile(join(policies, 'demo.yaml'), String(doc));
    say('Policy demo/policies/demo.yaml (default: deny):');
    say('  customer-reads         GET /v1/customers/**      allow');
    say('  no-customer-deletes    DELETE /v1/customers/**   deny ("Agents may not delete customer records")');
    say(`  exports-need-approval  POST /v1/exports          approve: 1 approver (${APPROVER})`);
    say(`A fresh approver token for ${APPROVER} was generated; the policy holds only its SHA-256.`);
    const auditFile = join(dir, 'audit.jsonl');
    airlock = await startAirlock(policies, auditFile);
    say(`airlock serve is running: proxy ${airlock.proxy} (for agents), admin ${airlock.admin} (for approvers)`);
    say(`Agent identity: ${IDENTITY} (--identity). Audit trail: ${auditFile} (temporary)`);

    section("3. The agent's calls (HTTP_PROXY=" + airlock.proxy + ')');
    const resultFile = join(dir, 'agent-result.json');
    const agentDone = startAgent(up.origin, airlock.proxy, resultFile);

    const pending = await waitForPending(airlock.admin, token, until);

    section('4. A human approves the held export');
    say('The agent is still waiting on its POST. The approver looks at what is pending:');
    const cliEnv: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_ADMIN_URL: airlock.admin, AIRLOCK_APPROVER_TOKEN: token };
    const list = await airlockCli(['approvals', 'list', '--state', 'pending'], cliEnv);
    expect(list.code === 0 && list.stdout.includes(pending.id), '`airlock approvals list` should show the held export');
    say('…and approves it:');
    const approve = await airlockCli(['approvals', 'approve', pending.id, '--reason', 'monthly report, checked'], cliEnv);
    expect(approve.code === 0 && approve.stdout.startsWith('approved:'), '`airlock approvals approve` should approve the export');

    let timer: NodeJS.Timeout | undefined;
    const agentCode = await Promise.race([agentDone, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), Math.max(0, until - Date.now()))))]);
    clearTimeout(timer);
    expect(agentCode === 0, `the agent should exit 0 (got ${agentCode})`);

    const results = JSON.parse(await readFile(resultFile, 'utf8').catch(() => '[]')) as CallResult[];
    const byName = new Map(results.map((r) => [r.name, r]));
    const read = byName.get('read');
    const del = byName.get('delete');
    const exp = byName.get('export');
    say('');
    say('Checks:');
    expect(read?.status === 200 && read.body.includes('"customers"'), 'GET /v1/customers should be allowed (200 with the customers)');
    let denyBody: { error?: string; rule?: string } = {};
    try {
      denyBody = JSON.parse(del?.body ?? '{}') as typeof denyBody;
    } catch {
      /* reported below */
    }
    expect(del?.status === 403 && denyBody.error === 'denied' && denyBody.rule === 'no-customer-deletes', 'DELETE /v1/customers/42 should be denied (403, rule no-customer-deletes)');
    expect(exp?.status === 200 && exp.body === '{"export":"started"}', 'the held POST /v1/exports should complete with the upstream\'s answer after approval');
    const seenText = seen.map((s) => `${s.method} ${s.path}`).join(', ');
    expect(seenText === 'GET /v1/customers, POST /v1/exports', `the upstream should receive exactly GET /v1/customers and POST /v1/exports (got: ${seenText || 'nothing'})`);
    say(`  allowed read: ${read?.status ?? '-'}   denied delete: ${del?.status ?? '-'} (rule ${denyBody.rule ?? '-'})   approved export: ${exp?.status ?? '-'} ${exp?.body ?? ''}`);
    say(`  upstream received: ${seenText || 'nothing'}`);

    section('5. The audit trail');
    const code = await stopAirlock(airlock);
    airlock = undefined;
    expect(code === 0, `airlock serve should stop cleanly on SIGTERM (exit ${code})`);
    const lines = (await readFile(auditFile, 'utf8')).split('\n').filter(Boolean);
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    say(`${events.length} hash-chained JSON lines in ${auditFile}:`);
    printAuditTable(events);
    say('  (tunnel: undici\'s proxy agent sends even http:// calls through a CONNECT tunnel; Airlock decides each request inside it.)');
    const has = (pred: (e: AuditEvent) => boolean): boolean => events.some(pred);
    expect(has((e) => e.event === 'request' && e.decision === 'allow' && e.rule === 'customer-reads'), 'the trail should record the allowed read');
    expect(has((e) => e.event === 'request' && e.decision === 'deny' && e.rule === 'no-customer-deletes'), 'the trail should record the denied delete');
    expect(has((e) => e.event === 'request' && e.decision === 'approve' && e.rule === 'exports-need-approval'), 'the trail should record the export held for approval');
    expect(has((e) => e.event === 'approval_decided' && e.state === 'approved' && e.approver === APPROVER), 'the trail should record the approval by ' + APPROVER);
    expect(has((e) => e.event === 'approval_executed' && e.approval_id === pending.id), 'the trail should record that the approved export was forwarded');
    say('');
    const verify = await airlockCli(['audit', 'verify', auditFile], process.env);
    expect(verify.code === 0 && verify.stdout.includes('chain intact'), '`airlock audit verify` should find the chain intact');

    section('6. Done');
    await new Promise<void>((r) => upstream!.close(() => r()));
    upstream = undefined;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (problems.length === 0) {
      say(`All steps behaved as expected in ${seconds}s: allowed, denied, held → approved → forwarded once, audit chain intact.`);
    } else {
      say(`${problems.length} unexpected outcome(s) in ${seconds}s:`);
      for (const p of problems) say(`  - ${p}`);
      process.exitCode = 1;
    }
  } catch (err) {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  } finally {
    if (airlock) {
      if (process.exitCode) {
        console.error('airlock serve logs:');
        for (const l of airlock.logs) console.error(`  ${l}`);
      }
      await stopAirlock(airlock);
    }
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    upstream?.closeAllConnections();
    upstream?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(() => {
  console.error(`demo: did not finish within ${DEADLINE_MS / 1000}s`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS + 5_000);
watchdog.unref();

await main();
