import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { hashToken } from '../../src/request/identify.js';
import { eventsFor, proxyEnv, run, startTestAirlock, startUpstream, withEnvProxyAgent, type TestAirlock, type Upstream } from '../helpers/harness.js';

const BILLING_TOKEN = 'b1ll1ng-s3cret-token';
const OPS_TOKEN = 'ops-s3cret-token';

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com, groups: [finance-agents], tokens: ["${hashToken(BILLING_TOKEN)}"] }
  ops-bot: { owner: carol@example.com, groups: [ops], tokens: ["${hashToken(OPS_TOKEN)}"] }
routes:
  - { prefix: /billing/, upstream: "http://127.0.0.1:${up.port}/api/" }
rules:
  - id: finance-reads
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/api/**", "/v1/**"], identities: ["group:finance-agents"] }
    action: allow
  - id: ops-reads
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v1/ops/**"], identities: [ops-bot] }
    action: allow
`;
}

function proxyWith(al: TestAirlock, id: string, token: string): string {
  const u = new URL(al.proxyUrl);
  return `http://${id}:${token}@${u.host}`;
}

describe('identity from proxy credentials', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': policy(up) });
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('without credentials: 407 with Proxy-Authenticate, nothing forwarded', async () => {
    const before = up.requests.length;
    const r = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, `${up.origin}/v1/x`]);
    assert.match(r.stdout, /^HTTP\/1\.1 407/);
    assert.match(r.stdout, /proxy-authenticate: Basic realm="airlock"/i);
    assert.match(r.stdout, /"error":"proxy_auth_required"/);
    assert.equal(up.requests.length, before);
  });

  it('a wrong token is refused and never written anywhere', async () => {
    const r = await run('curl', ['-sS', '-i', '-x', proxyWith(al, 'billing-bot', 'guessed-token'), `${up.origin}/v1/x`]);
    assert.match(r.stdout, /^HTTP\/1\.1 407/);
    assert.doesNotMatch(r.stdout, /guessed-token/);
    await al.audit();
    assert.doesNotMatch(await readFile(al.auditFile, 'utf8'), /guessed-token/);
  });

  it('curl with ID:TOKEN in the proxy URL: the identity decides, the credentials never reach the upstream or the audit', async () => {
    const r = await run('curl', ['-sS', '-i', '-x', proxyWith(al, 'billing-bot', BILLING_TOKEN), `${up.origin}/v1/invoices`]);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    const got = up.requests.at(-1)!;
    assert.equal(got.headers['proxy-authorization'], undefined);
    assert.ok(!got.rawHeaders.some((h) => h.includes(BILLING_TOKEN)));
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.identity, 'billing-bot');
    assert.equal(ev!.owner, 'alice@example.com');
    assert.equal(ev!.rule, 'finance-reads');
    assert.doesNotMatch(await readFile(al.auditFile, 'utf8'), new RegExp(BILLING_TOKEN));
  });

  it('rules restricted to identities and groups apply to the right caller only', async () => {
    const ops = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxyWith(al, 'ops-bot', OPS_TOKEN), `${up.origin}/v1/invoices`]);
    assert.equal(ops.stdout, '403');
    const opsOwn = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxyWith(al, 'ops-bot', OPS_TOKEN), `${up.origin}/v1/ops/status`]);
    assert.equal(opsOwn.stdout, '200');
  });

  it('Node fetch through EnvHttpProxyAgent with proxyTunnel: credentials on CONNECT identify every request in the tunnel', async () => {
    await withEnvProxyAgent(proxyWith(al, 'billing-bot', BILLING_TOKEN), async (dispatcher) => {
      const res = await undiciFetch(`${up.origin}/v1/statements`, { dispatcher });
      assert.equal(res.status, 200);
      const [ev] = eventsFor(await al.audit(), res.headers.get('airlock-request-id')!);
      assert.equal(ev!.identity, 'billing-bot');
      assert.equal(ev!.via, 'tunnel');
    }, { proxyTunnel: true });
  });

  it('Python urllib with credentials in HTTP_PROXY', async () => {
    const script = `import urllib.request\nprint(urllib.request.urlopen("${up.origin}/v1/ledger").status)`;
    const r = await run('python3', ['-c', script], proxyEnv(proxyWith(al, 'billing-bot', BILLING_TOKEN)));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '200');
  });

  it('a reverse route maps a path prefix onto its upstream, decided on the upstream URL', async () => {
    const auth = `Basic ${Buffer.from(`billing-bot:${BILLING_TOKEN}`).toString('base64')}`;
    const r = await run('curl', ['-sS', '-i', '-H', `Proxy-Authorization: ${auth}`, `${al.proxyUrl}/billing/invoices?month=11`]);
    assert.match(r.stdout, /^HTTP\/1\.1 200/);
    const got = up.requests.at(-1)!;
    assert.equal(got.url, '/api/invoices?month=11');
    assert.equal(got.headers.host, `127.0.0.1:${up.port}`);
    const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
    const [ev] = eventsFor(await al.audit(), id);
    assert.equal(ev!.via, 'route');
    assert.equal(ev!.path, '/api/invoices');
  });

  it('a route prefix cannot be escaped with dot segments', async () => {
    const auth = `Basic ${Buffer.from(`billing-bot:${BILLING_TOKEN}`).toString('base64')}`;
    const r = await run('curl', ['-sS', '--path-as-is', '-w', '\n%{http_code}', '-H', `Proxy-Authorization: ${auth}`, `${al.proxyUrl}/billing/../v1/x`]);
    const [body, code] = r.stdout.split('\n');
    assert.equal(code, '400');
    assert.match(body!, /no route/);
  });
});

describe('static identity for a one-agent sidecar', () => {
  it('callers without credentials act as the configured identity', async () => {
    const up = await startUpstream();
    const al = await startTestAirlock({ 'policy.yaml': policy(up) }, { identity: 'billing-bot' });
    try {
      const r = await run('curl', ['-sS', '-i', '-x', al.proxyUrl, `${up.origin}/v1/x`]);
      assert.match(r.stdout, /^HTTP\/1\.1 200/);
      const id = /airlock-request-id: (\S+)/i.exec(r.stdout)![1]!;
      assert.equal(eventsFor(await al.audit(), id)[0]!.identity, 'billing-bot');
      const wrong = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxyWith(al, 'billing-bot', 'nope'), `${up.origin}/v1/x`]);
      assert.equal(wrong.stdout, '407');
    } finally {
      await al.close();
      await up.close();
    }
  });
});
