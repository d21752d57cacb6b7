/**
 * The web inbox in a real browser (Debian's Chromium driven by playwright-core), signing in through a
 * real OpenID Connect provider running in the test: an approver sees a held request and approves it,
 * the agent's request reaches the upstream, a second approver's page updates live; a non-approver and
 * the agent's owner cannot approve; a form post without the CSRF token is refused.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';
import { freeLoopbackPort, startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider.js';

const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
/** Set to a folder to save the screenshots shown in docs/inbox.md. */
const SCREENSHOTS = process.env.AIRLOCK_INBOX_SCREENSHOTS;

function policy(up: Upstream): string {
  return `
version: 1
identities:
  billing-bot: { owner: alice@example.com }
approvers:
  owners: { api: [dana@example.com, erin@example.com, alice@example.com], idpGroups: [data-owners] }
rules:
  - id: exports
    description: Exports of customer data need a data owner
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 60s, expires: 10m, grants: { maxDuration: 1h, maxUses: 5 } }
`;
}

describe('web inbox', () => {
  let up: Upstream;
  let al: TestAirlock;
  let idp: TestOidcProvider;
  let browser: Browser;
  before(async () => {
    up = await startUpstream();
    const idpPort = await freeLoopbackPort();
    const issuer = `http://127.0.0.1:${idpPort}`;
    al = await startTestAirlock(
      { 'policy.yaml': policy(up) },
      { identity: 'billing-bot', inbox: { oidc: { issuer, clientId: 'airlock-inbox', clientSecret: 'inbox-client-secret-for-tests' }, trusted: null, url: null } },
    );
    idp = await startOidcProvider({ port: idpPort, redirectUri: `${al.adminUrl}/inbox/callback`, groups: { 'gina@example.com': ['data-owners'] } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    if (SCREENSHOTS) await mkdir(SCREENSHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await al.close();
    await idp.close();
    await up.close();
  });

  async function signIn(email: string, path = '/inbox'): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${al.adminUrl}${path}`);
    // The provider's sign-in form: any login, any password.
    await page.fill('input[name="login"]', email);
    await page.fill('input[name="password"]', 'any-password');
    await page.click('button[type="submit"]');
    await page.waitForURL(`${al.adminUrl}/inbox**`);
    return { context, page };
  }

  function hold(path: string): Promise<{ code: string; body: string }> {
    return run('curl', ['-sS', '-x', al.proxyUrl, '-H', 'x-airlock-reason: month-end revenue report', '-d', '{"rows":"all"}', '-w', '\n%{http_code}', `${up.origin}${path}`]).then((r) => {
      const lines = r.stdout.split('\n');
      return { code: lines.at(-1) ?? '', body: lines.slice(0, -1).join('\n') };
    });
  }

  async function pendingId(path: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = (await al.airlock.approvals.list({ state: 'pending' })).find((r) => r.request.path === path);
      if (found) return found.id;
      assert.ok(Date.now() < deadline, `no pending approval for ${path}`);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  it('an approver signs in, sees the held request, approves it; the agent\'s request goes through; another approver\'s page updates live', async () => {
    const agent = hold('/exports/customers');
    const id = await pendingId('/exports/customers');
    const dana = await signIn('dana@example.com');
    const erin = await signIn('erin@example.com', `/inbox/a/${id}`);
    try {
      await dana.page.waitForSelector(`li[data-id="${id}"]`);
      assert.match(await dana.page.textContent('#list') ?? '', /POST.*\/exports\/customers/s);
      if (SCREENSHOTS) await dana.page.screenshot({ path: join(SCREENSHOTS, 'inbox-list.png') });
      await dana.page.click(`li[data-id="${id}"] a`);
      await dana.page.waitForSelector('button.approve');
      const text = (await dana.page.textContent('main')) ?? '';
      assert.match(text, /month-end revenue report/);
      assert.match(text, /Exports of customer data need a data owner/);
      assert.match(text, /billing-bot/);
      if (SCREENSHOTS) await dana.page.screenshot({ path: join(SCREENSHOTS, 'inbox-approval.png'), fullPage: true });
      assert.equal(await erin.page.textContent('#state'), 'pending');

      await dana.page.click('button.approve');
      await dana.page.waitForSelector('.notice');
      assert.match((await dana.page.textContent('.notice')) ?? '', /approval is recorded/);
      const answer = await agent;
      assert.equal(answer.code, '200', answer.body);
      assert.equal(up.requests.filter((r) => r.url === '/exports/customers').length, 1);
      // Erin's open page hears of it (server-sent events) and shows the outcome without her doing anything.
      await erin.page.waitForFunction("['approved', 'executed'].includes(document.getElementById('state')?.textContent ?? '')");
    } finally {
      await dana.context.close();
      await erin.context.close();
    }
  });

  it('an approver edits the request and grants the same action for a while, from the inbox', async () => {
    const json = ['-H', 'content-type: application/json'];
    const send = (rows: number) =>
      run('curl', ['-sS', '-x', al.proxyUrl, ...json, '-D', '-', '-d', JSON.stringify({ table: 'orders', rows }), '-w', '\n%{http_code}', `${up.origin}/exports/orders`]);
    const agent = send(5_000_000);
    const id = await pendingId('/exports/orders');
    const dana = await signIn('dana@example.com', `/inbox/a/${id}`);
    try {
      await dana.page.click('text=Edit before approving');
      await dana.page.fill('textarea[name="patch"]', '[{"op":"replace","path":"/rows","value":10000}]');
      await dana.page.click('text=Also grant the same action for a while');
      await dana.page.selectOption('select[name="grant_for"]', '30m');
      await dana.page.fill('input[name="grant_uses"]', '2');
      await dana.page.fill('textarea[name="grant_pin"]', '/table');
      if (SCREENSHOTS) await dana.page.screenshot({ path: join(SCREENSHOTS, 'inbox-edit-grant.png'), fullPage: true });
      await dana.page.click('button.approve');
      await dana.page.waitForSelector('.notice');
      assert.match((await dana.page.textContent('.notice')) ?? '', /approval and grant are recorded/);
      const answer = await agent;
      assert.match(answer.stdout, /airlock-modified: true/i);
      assert.deepEqual(JSON.parse(up.requests.filter((r) => r.url === '/exports/orders').at(-1)!.body.toString()), { table: 'orders', rows: 10_000 });
      // The grant: the same table goes through without asking.
      const granted = await send(7);
      assert.match(granted.stdout, /airlock-grant-id: /i);
      assert.equal(granted.stdout.split('\n').at(-1), '200');
    } finally {
      await dana.context.close();
    }
  });

  it('a member of an identity-provider group the approver group names decides too', async () => {
    const agent = hold('/exports/by-group');
    const id = await pendingId('/exports/by-group');
    const gina = await signIn('gina@example.com');
    try {
      await gina.page.waitForSelector(`li[data-id="${id}"]`);
      await gina.page.click(`li[data-id="${id}"] a`);
      await gina.page.click('button.approve');
      await gina.page.waitForSelector('.notice');
      assert.equal((await agent).code, '200');
      assert.ok((await al.audit()).some((e) => e.event === 'approval_vote' && e.approval_id === id && e.approver === 'gina@example.com'));
    } finally {
      await gina.context.close();
    }
  });

  it('a non-approver and the agent\'s owner cannot approve; a form post without the CSRF token changes nothing', async () => {
    const agent = hold('/exports/payroll');
    const id = await pendingId('/exports/payroll');
    const eve = await signIn('eve@example.com');
    const alice = await signIn('alice@example.com', `/inbox/a/${id}`);
    const dana = await signIn('dana@example.com', `/inbox/a/${id}`);
    try {
      assert.match((await eve.page.textContent('#list')) ?? '', /Nothing is waiting for you/);
      await eve.page.goto(`${al.adminUrl}/inbox/a/${id}`);
      assert.match((await eve.page.textContent('.refusal')) ?? '', /not an approver of rule exports/);
      assert.equal(await eve.page.$('button.approve'), null);

      assert.match((await alice.page.textContent('.refusal')) ?? '', /owns the requesting agent/);
      assert.equal(await alice.page.$('button.approve'), null);

      // A page elsewhere posting to the inbox with Dana's cookie but without her CSRF token.
      const forged = await dana.page.evaluate(async (target) => {
        const res = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'reason=' });
        return res.status;
      }, `${al.adminUrl}/inbox/a/${id}/approve`);
      assert.equal(forged, 403);
      // Eve's own session cannot approve either, even with her token.
      const eveToken = await eve.page.getAttribute('form.who input[name="csrf"]', 'value');
      const eveTry = await eve.page.evaluate(async ([target, csrf]) => {
        const res = await fetch(target!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(csrf!)}` });
        return res.status;
      }, [`${al.adminUrl}/inbox/a/${id}/approve`, eveToken]);
      assert.equal(eveTry, 403);
      assert.equal((await al.airlock.approvals.get(id))?.state, 'pending', 'nothing was decided');
      assert.ok((await al.audit()).some((e) => e.event === 'approval_vote_refused' && e.approver === 'eve@example.com'));

      // Dana denies it properly, with a reason; the agent is told.
      await dana.page.fill('input[name="reason"]', 'not the payroll');
      await dana.page.click('button.deny');
      const answer = await agent;
      assert.equal(answer.code, '403');
      assert.match(answer.body, /not the payroll/);
    } finally {
      for (const s of [eve, alice, dana]) await s.context.close();
    }
  });

  it('pages carry a strict Content-Security-Policy, and without a session send the browser to sign in', async () => {
    const res = await fetch(`${al.adminUrl}/inbox`, { redirect: 'manual' });
    assert.equal(res.status, 303);
    assert.match(res.headers.get('location') ?? '', /^\/inbox\/login\?next=/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; .*script-src 'self'.*frame-ancestors 'none'/);
    const post = await fetch(`${al.adminUrl}/inbox/a/x/approve`, { method: 'POST', body: 'csrf=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(post.status, 401);
    const forgedCookie = await fetch(`${al.adminUrl}/inbox`, { redirect: 'manual', headers: { cookie: 'airlock_session=eyJlbWFpbCI6ImRhbmFAZXhhbXBsZS5jb20ifQ.forged' } });
    assert.equal(forgedCookie.status, 303, 'a forged session is no session');
  });
});

describe('web inbox behind an authenticating proxy', () => {
  let up: Upstream;
  let al: TestAirlock;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock(
      { 'policy.yaml': policy(up) },
      { identity: 'billing-bot', inbox: { oidc: null, trusted: { from: ['127.0.0.1/32'], emailHeader: 'x-forwarded-email', nameHeader: 'x-forwarded-preferred-username', groupsHeader: 'x-forwarded-groups' }, url: null } },
    );
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  /** A request to the inbox from a chosen loopback address (127.0.0.1 is the proxy, 127.0.0.2 is not). */
  function from(localAddress: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${al.adminUrl}${path}`, { method: opts.method ?? 'GET', localAddress, headers: opts.headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  it('takes the person from the proxy\'s header, only on connections from the proxy, and still wants the CSRF token', async () => {
    const agent = run('curl', ['-sS', '-x', al.proxyUrl, '-d', '{}', '-w', '\n%{http_code}', `${up.origin}/exports/proxied`]);
    let id: string | undefined;
    for (const deadline = Date.now() + 10_000; id === undefined; ) {
      id = (await al.airlock.approvals.list({ state: 'pending' })).find((r) => r.request.path === '/exports/proxied')?.id;
      assert.ok(Date.now() < deadline);
      if (id === undefined) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const vouched = { 'x-forwarded-email': 'Dana@Example.com', 'x-forwarded-preferred-username': 'dana' };
    const list = await from('127.0.0.1', '/inbox', { headers: vouched });
    assert.equal(list.status, 200);
    assert.match(list.body, new RegExp(`data-id="${id}"`));
    const spoofed = await from('127.0.0.2', '/inbox', { headers: vouched });
    assert.equal(spoofed.status, 303, 'the header from anywhere else signs nobody in');
    assert.match(String(spoofed.headers.location), /^\/inbox\/login/);

    const detail = await from('127.0.0.1', `/inbox/a/${id}`, { headers: vouched });
    const csrf = /name="csrf" value="([^"]+)"/.exec(detail.body)![1]!;
    const cookie = String(detail.headers['set-cookie']?.[0] ?? list.headers['set-cookie']?.[0]).split(';')[0]!;
    const form = { ...vouched, cookie, 'content-type': 'application/x-www-form-urlencoded' };
    const forged = await from('127.0.0.1', `/inbox/a/${id}/approve`, { method: 'POST', headers: form, body: 'csrf=wrong' });
    assert.equal(forged.status, 403);
    const approved = await from('127.0.0.1', `/inbox/a/${id}/approve`, { method: 'POST', headers: form, body: `csrf=${encodeURIComponent(csrf)}` });
    assert.equal(approved.status, 303);
    assert.equal((await agent).stdout.split('\n').at(-1), '200');
    assert.ok((await al.audit()).some((e) => e.event === 'approval_vote' && e.approval_id === id && e.approver === 'dana@example.com'));
  });
});
