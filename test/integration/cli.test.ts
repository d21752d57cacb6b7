import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { AIRLOCK_BIN, ROOT, airlockCli, proxyEnv, run, startTestAirlock, startUpstream } from '../helpers/harness.js';

const EXAMPLES = join(ROOT, 'policies');

describe('airlock policy', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-cli-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('check accepts the example policies', async () => {
    const r = await airlockCli(['policy', 'check', EXAMPLES]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok: /m);
  });

  it('check names file:line:col of every error and exits 1', async () => {
    const bad = join(dir, 'bad');
    await mkdir(bad);
    await writeFile(join(bad, 'a.yaml'), 'version: 1\nrules:\n  - id: x\n    match: { hosts: [a.example] }\n    action: alow\n');
    await writeFile(join(bad, 'b.yaml'), 'version: 1\nrules:\n  - id: y\n    match: { hosts: [b.example] \n');
    const r = await airlockCli(['policy', 'check', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /a\.yaml:5:13 .*alow/);
    assert.match(r.stderr, /b\.yaml:\d+:\d+ /);
  });

  it('test runs the tests: cases of the examples, and fails on a wrong expectation', async () => {
    const ok = await airlockCli(['policy', 'test', EXAMPLES]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const failing = join(dir, 'failing');
    await mkdir(failing);
    await writeFile(
      join(failing, 'p.yaml'),
      'version: 1\nrules:\n  - id: r\n    match: { hosts: [a.example] }\n    action: deny\ntests:\n  - request: { method: GET, url: "http://a.example/" }\n    expect: allow\n',
    );
    const bad = await airlockCli(['policy', 'test', failing]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout + bad.stderr, /FAIL .*p\.yaml:7:\d+/);
  });

  it('explain shows the decision and every matching rule without sending anything', async () => {
    const r = await airlockCli(['policy', 'explain', '--policies', EXAMPLES, '--method', 'GET', '--url', 'http://api.internal/v1/users', '--identity', 'billing-bot', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { decision: { action: string; rule: string } };
    assert.equal(out.decision.action, 'allow');
    assert.equal(out.decision.rule, 'reads');
  });

  it('explain, as the README shows it: a confidential export needs two data owners', async () => {
    const r = await airlockCli([
      'policy', 'explain', '--policies', 'policies', '--method', 'POST',
      '--url', 'https://exports.data.internal/exports/customers',
      '--header', 'X-Data-Classification: confidential', '--identity', 'billing-bot',
    ], { ...process.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /approve/);
    assert.match(r.stdout, /confidential-export/);
  });
});

describe('airlock policy explain for CONNECT', () => {
  /** The status line a CONNECT gets from a running Airlock. */
  async function connectStatus(proxy: string, authority: string): Promise<number> {
    const { port } = new URL(proxy);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1]);
  }

  it('says what the proxy does with a tunnel (refuse, open, inspect inside), as a running proxy does it; the folder as an argument', async () => {
    const up = await startUpstream();
    const text = `version: 1
rules:
  - { id: no-iam, match: { hosts: [iam.amazonaws.com] }, action: deny, reason: no IAM }
  - { id: ssh-ish, match: { hosts: [127.0.0.1], ports: [${up.port}] }, action: allow }
  - { id: ec2-terminate, match: { hosts: [ec2.example], query: { Action: { equals: TerminateInstances } } }, action: approve, approval: { approvers: [ops] } }
  - { id: held-host, match: { hosts: [held.example] }, action: approve, approval: { approvers: [ops] } }
approvers:
  ops: { api: [ops@example.com] }
`;
    const al = await startTestAirlock({ 'p.yaml': text }, { allowDestinations: ['127.0.0.1/32'] });
    try {
      const cases: [string, string, number][] = [
        ['iam.amazonaws.com:443', 'refuse', 403],
        [`127.0.0.1:${up.port}`, 'tunnel', 200],
        ['ec2.example:443', 'intercept', 403],
        ['ec2.example:80', 'intercept', 200],
        ['held.example:443', 'refuse', 503],
      ];
      for (const [authority, outcome, status] of cases) {
        const r = await airlockCli(['policy', 'explain', al.dir, '--method', 'CONNECT', '--url', authority, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const t = (JSON.parse(r.stdout) as { tunnel: { outcome: string; status: number } }).tunnel;
        assert.deepEqual([t.outcome, t.status], [outcome, status], authority);
        assert.equal(await connectStatus(al.proxyUrl, authority), status, `the proxy answers CONNECT ${authority} as explained`);
      }
      const text2 = await airlockCli(['policy', 'explain', al.dir, '--method', 'connect', '--url', 'https://iam.amazonaws.com/']);
      assert.match(text2.stdout, /^tunnel: refuse \(403\)$/m);
      assert.match(text2.stdout, /^decision: deny by rule no-iam /m);
      const none = await airlockCli(['policy', 'explain', '--url', 'http://x.example/'], { ...process.env, AIRLOCK_POLICIES: '' });
      assert.equal(none.code, 2);
      assert.match(none.stderr, /name the policy folder/);
    } finally {
      await al.close();
      await up.close();
    }
  });
});

describe('airlock serve', () => {
  it('starts with the example policies, serves health, readiness and metrics, forwards, and stops on SIGTERM', async () => {
    // Exactly what `npm start` runs (README quick start), on free ports.
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    const [node, ...startArgs] = pkg.scripts.start.split(' ');
    assert.equal(node, 'node');
    // The same V8 flags as the installed command's own start line (src/cli/main.ts).
    const flags = /^#!\/usr\/bin\/env -S node (.*)$/m.exec(await readFile(join(ROOT, 'src/cli/main.ts'), 'utf8'))![1]!.split(' ');
    // The trail goes to a file of its own: npm prints its banner on stdout, which would break the chain.
    assert.deepEqual(startArgs, [...flags, 'dist/cli/main.js', 'serve', '--policies', 'policies', '--audit', 'airlock-audit.jsonl']);
    const dir = await mkdtemp(join(tmpdir(), 'airlock-serve-'));
    const auditFile = join(dir, 'audit.jsonl');
    const up = await startUpstream();
    const child = spawn(process.execPath, [...flags, AIRLOCK_BIN, 'serve', '--policies', 'policies', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      cwd: ROOT,
      env: { ...process.env, AIRLOCK_AUDIT: auditFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const lines = createInterface({ input: child.stderr! });
      let listening: { proxy: string; admin: string } | undefined;
      const pkgVersion = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
      for await (const line of lines) {
        const rec = JSON.parse(line) as { msg: string; proxy: string; admin: string; level: unknown; version: unknown };
        if (rec.msg === 'airlock listening') {
          // Log lines say their level in words and which Airlock wrote them.
          assert.deepEqual([rec.level, rec.version], ['info', pkgVersion]);
          listening = rec;
          break;
        }
      }
      assert.ok(listening);
      const admin = `http://${listening.admin}`;
      assert.equal((await fetch(`${admin}/healthz`)).status, 200);
      assert.deepEqual(await (await fetch(`${admin}/readyz`)).json(), { status: 'ready', channels: {} });
      const metrics = await (await fetch(`${admin}/metrics`)).text();
      assert.match(metrics, /airlock_policy_rules \d+/);
      assert.equal((await fetch(`${admin}/nope`)).status, 404);

      const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${up.origin}/anything`], proxyEnv(`http://${listening.proxy}`));
      assert.equal(r.stdout, '403');
      // The README's first request.
      const iam = await run('curl', ['-s', '-x', `http://${listening.proxy}`, 'http://iam.amazonaws.com/']);
      assert.match(iam.stdout, /^\{"error":"denied".*"rule":"no-iam"/);
      // The README's second request: allowed by "reads", forwarded, and answered 502 here (no such host).
      const reads = await run('curl', ['-s', '-x', `http://${listening.proxy}`, 'http://api.internal/v1/users']);
      assert.match(reads.stdout, /^\{"error":"upstream_error".*"rule":"reads"/);
      const decisions = await (await fetch(`${admin}/metrics`)).text();
      assert.match(decisions, /airlock_decisions_total\{action="deny",rule="no-iam",mode="enforce"\} 1/);

      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 0);
      const verify = await airlockCli(['audit', 'verify', auditFile]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /chain intact/);
      const events = (await readFile(auditFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: string });
      // The last request was allowed, and its upstream failed: what the agent was answered is on record too.
      assert.deepEqual(events.map((e) => e.event), ['policy_loaded', 'request', 'request', 'request', 'request_answered']);
    } finally {
      child.kill('SIGKILL');
      await up.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on a broken policy folder, naming file:line:col', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-serve-bad-'));
    await writeFile(join(dir, 'p.yaml'), 'version: 1\nrules: [\n');
    try {
      const r = await airlockCli(['serve', '--policies', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /p\.yaml:\d+:\d+ /);
      assert.match(r.stderr, /not started/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a start that fails after the policy loaded (its port taken) exits 1 and records no policy in force', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-serve-busy-'));
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as { port: number };
    try {
      const auditFile = join(dir, 'audit.jsonl');
      const r = await airlockCli(['serve', '--policies', EXAMPLES, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--audit', auditFile]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /EADDRINUSE|address already in use/);
      const written = await readFile(auditFile, 'utf8').catch(() => '');
      assert.doesNotMatch(written, /policy_loaded/);
    } finally {
      taken.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a malformed listen address with a clear message', async () => {
    const r = await airlockCli(['serve', '--policies', EXAMPLES, '--listen', 'nonsense']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--listen: expected HOST:PORT/);
  });
});

describe('airlock token new', () => {
  it('prints a policy line whose hash matches the token in the printed HTTP_PROXY', async () => {
    const r = await airlockCli(['token', 'new', 'billing-bot', '--proxy', 'airlock:8080']);
    assert.equal(r.code, 0, r.stderr);
    const hash = /tokens: \["(sha256:[0-9a-f]{64})"\]/.exec(r.stdout)![1];
    const token = /HTTP_PROXY=http:\/\/billing-bot:([^@]+)@airlock:8080/.exec(r.stdout)![1]!;
    const { hashToken } = await import('../../src/request/identify.js');
    assert.equal(hashToken(token), hash);
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) assert.match(r.stdout, new RegExp(`^${name}=http://billing-bot:${token}@airlock:8080$`, 'm'), name);
  });
});

describe('airlock --version and serve --log-level', () => {
  it('prints the package\'s version', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await airlockCli(['--version']);
    assert.deepEqual([r.code, r.stdout.trim()], [0, version]);
  });

  it('usage errors exit 2 (an unknown option or command, a missing argument); help exits 0', async () => {
    for (const args of [['serve', '--bogus'], ['frobnicate'], ['policy', 'check', '--nope'], ['token', 'new']]) {
      const r = await airlockCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /m);
    }
    assert.equal((await airlockCli(['--help'])).code, 0);
    assert.equal((await airlockCli(['policy', '--help'])).code, 0);
  });

  it('refuses an unknown log level with a one-line message and exit code 2, not a stack trace', async () => {
    const r = await airlockCli(['serve', '--log-level', 'verbose', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^airlock serve: --log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"$/m);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
