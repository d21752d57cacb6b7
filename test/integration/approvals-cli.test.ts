/**
 * `airlock approvals …` end to end: the built CLI against a real Airlock (proxy + admin listener), an
 * agent sending requests through the proxy with `Prefer: respond-async`, and a recording upstream that
 * must receive each approved request exactly once and a denied one never.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, startTestAirlock, startUpstream, type RunResult, type TestAirlock, type Upstream } from '../helpers/harness.js';

const AGENT_TOKEN = 'agent-s3cret-for-billing-bot';

interface Approver {
  name: string;
  token: string;
  hash: string;
}

/** Tokens made the way operators make them: `airlock approvals token NAME`. */
async function makeApprover(name: string): Promise<Approver> {
  const r = await airlockCli(['approvals', 'token', name]);
  assert.equal(r.code, 0, r.stderr);
  const policyLine = /^approverTokens: \{ "([^"]+)": \["(sha256:[0-9a-f]{64})"\] \}$/m.exec(r.stdout);
  const envLine = /^AIRLOCK_APPROVER_TOKEN=(\S+)$/m.exec(r.stdout);
  assert.ok(policyLine, r.stdout);
  assert.ok(envLine, r.stdout);
  assert.equal(policyLine[1], name);
  assert.equal(policyLine[2], hashToken(envLine[1]!), 'the printed digest is the SHA-256 of the printed token');
  return { name, token: envLine[1]!, hash: policyLine[2]! };
}

function policy(a: Record<'bob' | 'dana' | 'alice' | 'eve', Approver>): string {
  return `
version: 1
defaults: { action: deny }
identities:
  billing-bot: { owner: alice@example.com, groups: [finance-agents], tokens: ["${hashToken(AGENT_TOKEN)}"] }
approvers:
  data-owners: { api: [bob@example.com, dana@example.com, alice@example.com] }
approverTokens:
  "bob@example.com": ["${a.bob.hash}"]
  "dana@example.com": ["${a.dana.hash}"]
  "alice@example.com": ["${a.alice.hash}"]
  "eve@example.com": ["${a.eve.hash}"]
rules:
  - id: one-owner
    description: Single sign-off exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/one/**"] }
    action: approve
    approval: { approvers: [data-owners], required: 1, wait: 1m, expires: 10m }
  - id: two-owners
    description: Exports of confidential data need two data owners
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/two/**"] }
    action: approve
    approval: { approvers: [data-owners], required: 2, wait: 1m, expires: 10m }
`;
}

interface AgentResponse {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

/**
 * What an agent does: an absolute-form request to the proxy (HTTP_PROXY), with its proxy credentials,
 * asking not to be held (`Prefer: respond-async`) unless `held`.
 */
function agentPost(al: TestAirlock, url: string, body: string, opts: { held?: boolean } = {}): Promise<AgentResponse> {
  const proxy = new URL(al.proxyUrl);
  const prefer: Record<string, string> = opts.held ? {} : { prefer: 'respond-async' };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: proxy.hostname,
        port: proxy.port,
        method: 'POST',
        path: url,
        headers: {
          host: new URL(url).host,
          'proxy-authorization': `Basic ${Buffer.from(`billing-bot:${AGENT_TOKEN}`).toString('base64')}`,
          ...prefer,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // the upstream's answer or an empty body
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Hold a request: the proxy answers 202 with the approval id and its status URL. */
async function hold(al: TestAirlock, url: string, body: string): Promise<string> {
  const r = await agentPost(al, url, body);
  assert.equal(r.status, 202, r.text);
  const id = r.body.approval_id;
  assert.equal(typeof id, 'string', r.text);
  assert.match(String(r.body.status_url), new RegExp(`/${escapeRegExp(id as string)}$`));
  return id as string;
}

/** The id of the pending approval for `url`, as an approver finds it with `approvals list --json`. */
async function findPending(env: NodeJS.ProcessEnv, url: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = ok(await airlockCli(['approvals', 'list', '--state', 'pending', '--json'], env));
    const views = (JSON.parse(r.stdout) as { approvals: { id: string; request: { url: string } }[] }).approvals;
    const found = views.find((v) => v.request.url === url);
    if (found) return found.id;
    assert.ok(Date.now() < deadline, `no pending approval for ${url}: ${r.stdout}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function envFor(al: TestAirlock, token: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_ADMIN_URL: al.adminUrl };
  delete env.AIRLOCK_APPROVER_TOKEN;
  if (token !== undefined) env.AIRLOCK_APPROVER_TOKEN = token;
  return env;
}

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** An error from the API: exit 1, one `airlock: <message>` line on stderr, nothing on stdout. */
function failed(r: RunResult, message?: RegExp): void {
  assert.equal(r.code, 1, `expected exit 1\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, /^airlock: \S/m);
  assert.equal(r.stdout, '');
  if (message) assert.match(r.stderr, message);
}

/** A refusal by the API, run with --json: exit 1, `airlock: <message>` on stderr, the error body on stdout. */
function refused(r: RunResult, code: string): void {
  assert.equal(r.code, 1, `expected exit 1\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const body = JSON.parse(r.stdout) as { error: string; message: string };
  assert.equal(body.error, code, r.stdout);
  assert.equal(r.stderr.trim(), `airlock: ${body.message}`);
}

async function apiError(al: TestAirlock, path: string, token: string, method = 'GET', body?: unknown): Promise<{ status: number; error: string; message: string }> {
  const res = await fetch(`${al.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as { error: string; message: string };
  return { status: res.status, ...json };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('airlock approvals (CLI without a server)', () => {
  it('token prints a fresh token, its policy line and the environment line', async () => {
    const a = await makeApprover('bob@example.com');
    const b = await makeApprover('bob@example.com');
    assert.notEqual(a.token, b.token);
    assert.ok(a.token.length >= 32);
  });

  it('missing token: exit 1 naming --token and AIRLOCK_APPROVER_TOKEN, nothing sent', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_ADMIN_URL: 'http://127.0.0.1:9' };
    delete env.AIRLOCK_APPROVER_TOKEN;
    for (const args of [['list'], ['show', 'x'], ['approve', 'x'], ['deny', 'x', '--reason', 'no']]) {
      const r = await airlockCli(['approvals', ...args], env);
      failed(r, /--token.*AIRLOCK_APPROVER_TOKEN/);
    }
  });

  it('connection refused: exit 1 naming the admin URL', async () => {
    // A port that was free a moment ago and has nobody listening now.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    await new Promise<void>((r) => server.close(() => r()));
    const admin = `http://127.0.0.1:${port}`;
    const env: NodeJS.ProcessEnv = { ...process.env, AIRLOCK_APPROVER_TOKEN: 'whatever' };
    delete env.AIRLOCK_ADMIN_URL;
    const r = await airlockCli(['approvals', 'list', '--admin', admin], env);
    failed(r, new RegExp(`${escapeRegExp(admin)}.*connection refused`));
    // The environment variable works the same way.
    const viaEnv = await airlockCli(['approvals', 'show', 'abc'], { ...env, AIRLOCK_ADMIN_URL: admin });
    failed(viaEnv, new RegExp(escapeRegExp(admin)));
  });

  it('deny without --reason is a usage error (exit 2), and an empty reason is refused before sending', async () => {
    const env = { ...process.env, AIRLOCK_APPROVER_TOKEN: 't', AIRLOCK_ADMIN_URL: 'http://127.0.0.1:9' };
    const r = await airlockCli(['approvals', 'deny', 'abc'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--reason/);
    failed(await airlockCli(['approvals', 'deny', 'abc', '--reason', ' '], env), /reason/);
    failed(await airlockCli(['approvals', 'show', ''], env), /approval id is empty/);
  });
});

describe('airlock approvals against a running Airlock', () => {
  let up: Upstream;
  let al: TestAirlock;
  let bob: Approver;
  let dana: Approver;
  let alice: Approver;
  let eve: Approver;
  const as = (a: Approver) => envFor(al, a.token);

  before(async () => {
    [bob, dana, alice, eve] = await Promise.all(
      ['bob@example.com', 'dana@example.com', 'alice@example.com', 'eve@example.com'].map(makeApprover),
    ) as [Approver, Approver, Approver, Approver];
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy({ bob, dana, alice, eve }) });
  });
  after(async () => {
    await al?.close();
    await up?.close();
  });

  it('a wrong token: exit 1 with the API\'s unauthorized message', async () => {
    const api = await apiError(al, '/v1/approvals', 'not-a-real-token');
    assert.equal(api.status, 401);
    assert.equal(api.error, 'unauthorized');
    const r = await airlockCli(['approvals', 'list'], envFor(al, 'not-a-real-token'));
    failed(r);
    assert.equal(r.stderr.trim(), `airlock: ${api.message}`);
  });

  it('an unknown id: exit 1 with the not_found message; --json prints the error body', async () => {
    const api = await apiError(al, '/v1/approvals/no-such-approval', bob.token);
    assert.equal(api.status, 404);
    const r = await airlockCli(['approvals', 'show', 'no-such-approval'], as(bob));
    failed(r);
    assert.equal(r.stderr.trim(), `airlock: ${api.message}`);
    const j = await airlockCli(['approvals', 'show', 'no-such-approval', '--json'], as(bob));
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stdout) as { error: string }).error, 'not_found');
  });

  it('one approval needed: list, show, approve; the agent\'s identical retry is forwarded exactly once', async () => {
    const url = `${up.origin}/one/exports?month=11`;
    const body = JSON.stringify({ customers: 'all', note: 'clear screen:\u001b[2J' });
    const id = await hold(al, url, body);
    assert.equal(up.requests.length, 0, 'nothing forwarded while pending');

    const list = ok(await airlockCli(['approvals', 'list'], as(bob)));
    const row = list.stdout.split('\n').find((l) => l.startsWith(`${id} `));
    assert.ok(row, list.stdout);
    assert.match(list.stdout, /^ID\s+STATE\s+VOTES\s+RULE\s+IDENTITY\s+REQUEST/);
    assert.match(row, /\spending\s+0\/1\s+one-owner\s+billing-bot\s+POST http:\/\/127\.0\.0\.1:\d+\/one\/exports/);

    const listJson = ok(await airlockCli(['approvals', 'list', '--state', 'pending', '--json'], as(bob)));
    const views = (JSON.parse(listJson.stdout) as { approvals: { id: string; state: string }[] }).approvals;
    assert.ok(views.some((v) => v.id === id && v.state === 'pending'));

    const show = ok(await airlockCli(['approvals', 'show', id], as(bob)));
    assert.match(show.stdout, new RegExp(`^id\\s+${escapeRegExp(id)}$`, 'm'));
    assert.match(show.stdout, /^state\s+pending \(0 of 1 approval\)$/m);
    assert.match(show.stdout, /^rule\s+one-owner — Single sign-off exports$/m);
    assert.match(show.stdout, /^identity\s+billing-bot$/m);
    assert.match(show.stdout, /^owner\s+alice@example\.com$/m);
    assert.match(show.stdout, /^request\s+POST http:\/\/127\.0\.0\.1:\d+\/one\/exports/m);
    assert.match(show.stdout, /^body preview.*:\n {4}\{"customers":"all"/m);
    assert.ok(!show.stdout.includes('\u001b'), 'terminal escapes from the agent are never printed raw');
    const showJson = ok(await airlockCli(['approvals', 'show', id, '--json'], as(bob)));
    assert.equal((JSON.parse(showJson.stdout) as { approval: { id: string } }).approval.id, id);

    const approve = ok(await airlockCli(['approvals', 'approve', id, '--reason', 'month-end run'], as(bob)));
    assert.match(approve.stdout, new RegExp(`^approved: ${escapeRegExp(id)} \\(1 of 1 approval\\)`));
    assert.equal(up.requests.length, 0, 'approving alone forwards nothing in respond-async mode');

    const retry = await agentPost(al, url, body);
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.body.method, 'POST');
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0]!.url, '/one/exports?month=11');
    assert.equal(up.requests[0]!.body.toString('utf8'), body);

    // Spent: a further identical request is held again, not forwarded a second time.
    const again = await agentPost(al, url, body);
    assert.equal(again.status, 202, again.text);
    assert.notEqual(again.body.approval_id, id);
    assert.equal(up.requests.length, 1);

    const after = ok(await airlockCli(['approvals', 'show', id], as(dana)));
    assert.match(after.stdout, /^state\s+executed /m);
    assert.match(after.stdout, /^approvals\s+bob@example\.com at /m);
    assert.match(after.stdout, /^forwarded\s+\d{4}-/m);
  });

  it('two approvals needed: one vote is recorded, repeat and self-approval refused, the second approves', async () => {
    const url = `${up.origin}/two/exports/customers`;
    const body = '{"format":"csv"}';
    const before = up.requests.length;
    const id = await hold(al, url, body);

    const first = ok(await airlockCli(['approvals', 'approve', id], as(bob)));
    assert.equal(first.stdout.trim(), `recorded: 1 of 2 approvals for ${id}; waiting for 1 more`);

    // The same approver again: 409 conflict.
    failed(await airlockCli(['approvals', 'approve', id], as(bob)));
    refused(await airlockCli(['approvals', 'approve', id, '--json'], as(bob)), 'conflict');
    // The owner of the requesting agent may not approve it: 403 forbidden.
    refused(await airlockCli(['approvals', 'approve', id, '--json'], as(alice)), 'forbidden');
    failed(await airlockCli(['approvals', 'approve', id], as(alice)), /owns the requesting agent/);
    // A token holder who is in no approver group of the rule: 403 forbidden, and no deny either.
    refused(await airlockCli(['approvals', 'approve', id, '--json'], as(eve)), 'forbidden');
    refused(await airlockCli(['approvals', 'deny', id, '--reason', 'spite', '--json'], as(eve)), 'forbidden');

    const listed = ok(await airlockCli(['approvals', 'list', '--state', 'pending'], as(dana)));
    assert.match(listed.stdout, new RegExp(`^${escapeRegExp(id)}\\s+pending\\s+1/2\\s+two-owners`, 'm'));
    assert.equal(up.requests.length, before);

    const second = ok(await airlockCli(['approvals', 'approve', id], as(dana)));
    assert.match(second.stdout, new RegExp(`^approved: ${escapeRegExp(id)} \\(2 of 2 approvals\\)`));

    const retry = await agentPost(al, url, body);
    assert.equal(retry.status, 200, retry.text);
    assert.equal(up.requests.length, before + 1);
    assert.equal(up.requests.at(-1)!.url, '/two/exports/customers');

    const json = ok(await airlockCli(['approvals', 'show', id, '--json'], as(bob)));
    const v = (JSON.parse(json.stdout) as { approval: { state: string; approvals: { approver: string }[] } }).approval;
    assert.equal(v.state, 'executed');
    assert.deepEqual(v.approvals.map((a) => a.approver).sort(), ['bob@example.com', 'dana@example.com']);
  });

  const denyUrl = () => `${up.origin}/one/delete-everything`;
  const denyBody = '{"really":true}';

  it('deny --reason: recorded with who and why, no later vote counts, the upstream receives nothing', async () => {
    const before = up.requests.length;
    const id = await hold(al, denyUrl(), denyBody);

    const deny = ok(await airlockCli(['approvals', 'deny', id, '--reason', 'not this month'], as(dana)));
    assert.match(deny.stdout, new RegExp(`^denied: ${escapeRegExp(id)}`));

    const show = ok(await airlockCli(['approvals', 'show', id], as(bob)));
    assert.match(show.stdout, /^state\s+denied /m);
    assert.match(show.stdout, /^decided\s+\d{4}-.* by dana@example\.com$/m);
    assert.match(show.stdout, /^decision reason\s+not this month$/m);

    // Already decided: approving now is a conflict.
    refused(await airlockCli(['approvals', 'approve', id, '--json'], as(bob)), 'conflict');

    const denied = ok(await airlockCli(['approvals', 'list', '--state', 'denied'], as(bob)));
    assert.match(denied.stdout, new RegExp(`^${escapeRegExp(id)}\\s+denied\\s`, 'm'));
    assert.doesNotMatch(denied.stdout, /\spending\s/);
    assert.equal(up.requests.length, before);
  });

  it('deny: the agent\'s identical retry (respond-async) gets 403 approval_denied: a denial stands', async () => {
    const before = up.requests.length;
    const retry = await agentPost(al, denyUrl(), denyBody);
    assert.equal(retry.status, 403, retry.text);
    assert.equal(retry.body.error, 'approval_denied');
    assert.equal(up.requests.length, before);
  });

  it('a held agent (no Prefer) is forwarded as soon as an approver approves with the CLI', async () => {
    const url = `${up.origin}/one/held-then-approved`;
    const body = '{"held":true}';
    const before = up.requests.length;
    const pending = agentPost(al, url, body, { held: true });
    const id = await findPending(as(bob), url);
    assert.equal(up.requests.length, before);
    const approve = ok(await airlockCli(['approvals', 'approve', id], as(bob)));
    assert.match(approve.stdout, /^approved: /);
    const r = await pending;
    assert.equal(r.status, 200, r.text);
    assert.equal(up.requests.length, before + 1);
    assert.equal(up.requests.at(-1)!.url, '/one/held-then-approved');
    const show = ok(await airlockCli(['approvals', 'show', id], as(bob)));
    assert.match(show.stdout, /^state\s+executed /m);
  });

  it('a held agent gets 403 approval_denied, with the reason, as soon as an approver denies with the CLI', async () => {
    const url = `${up.origin}/one/held-then-denied`;
    const before = up.requests.length;
    const pending = agentPost(al, url, '{}', { held: true });
    const id = await findPending(as(dana), url);
    ok(await airlockCli(['approvals', 'deny', id, '--reason', 'wrong customer list'], as(dana)));
    const r = await pending;
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'approval_denied');
    assert.equal(r.body.approval_id, id);
    assert.match(String(r.body.message), /wrong customer list/);
    assert.equal(up.requests.length, before);
  });

  it('list of a state nobody is in prints "no approvals"', async () => {
    const r = ok(await airlockCli(['approvals', 'list', '--state', 'cancelled'], as(bob)));
    assert.equal(r.stdout.trim(), 'no approvals');
    const j = ok(await airlockCli(['approvals', 'list', '--state', 'cancelled', '--json'], as(bob)));
    assert.deepEqual(JSON.parse(j.stdout), { approvals: [] });
  });
});
