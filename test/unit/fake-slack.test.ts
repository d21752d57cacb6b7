/**
 * Proves test/helpers/fake-slack.ts against the real thing: a Bolt 5 App on HTTPReceiver (mounted in a plain
 * http.Server) and a Bolt App in Socket Mode, both talking to the fake's Web API.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { App, HTTPReceiver, LogLevel, type BlockAction, type ButtonAction } from '@slack/bolt';
import { WebClient, type WebAPIPlatformError } from '@slack/web-api';
import {
  blockActionPayload,
  postSlackInteraction,
  slackSignature,
  startFakeSlack,
  viewSubmissionPayload,
  type FakeSlack,
} from '../helpers/fake-slack.js';

const SIGNING_SECRET = 'fake-signing-secret';

/** Registers the handlers both apps share: a button that updates the message and answers via response_url. */
function wire(app: App): void {
  app.action<BlockAction<ButtonAction>>('approve', async ({ ack, body, action, client, respond }) => {
    await ack();
    const channel = body.channel?.id ?? '';
    const ts = body.message?.ts ?? '';
    await client.chat.update({
      channel,
      ts,
      text: `approved ${action.value ?? ''} by <@${body.user.id}>`,
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'Approved' } }],
    });
    await respond({ replace_original: false, text: 'recorded' });
  });
  app.view('reason_modal', async ({ ack, view }) => {
    const reason = view.state.values.reason?.text?.value ?? '';
    if (reason.length < 3) {
      await ack({ response_action: 'errors', errors: { reason: 'Too short' } });
      return;
    }
    await ack();
  });
}

describe('fake Slack with real Bolt apps', () => {
  let fake: FakeSlack;
  let httpApp: App;
  let socketApp: App;
  let server: Server;
  let eventsUrl: string;

  before(async () => {
    fake = await startFakeSlack();
    fake.users.set('U0ALICE', { email: 'alice@example.com', name: 'alice' });
    fake.users.set('U0BOB', { email: 'bob@example.com', name: 'bob' });
    fake.groups.set('S0OWNERS', ['U0ALICE', 'U0BOB']);

    const receiver = new HTTPReceiver({
      signingSecret: SIGNING_SECRET,
      endpoints: '/slack/events',
      processBeforeResponse: false,
      unhandledRequestTimeoutMillis: 3001,
      logLevel: LogLevel.ERROR, // the receiver has its own logger; quiet the expected 401 warnings
    });
    httpApp = new App({
      token: fake.botToken,
      receiver,
      botId: fake.botId,
      botUserId: fake.botUserId,
      tokenVerificationEnabled: false,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
    });
    wire(httpApp);
    server = createServer((req, res) => {
      if (req.url?.startsWith('/slack/')) {
        try {
          receiver.requestListener(req, res);
          return;
        } catch {
          // HTTPReceiverDeferredRequestError: not a Bolt route
        }
      }
      res.statusCode = 404;
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    eventsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slack/events`;

    socketApp = new App({
      token: fake.botToken,
      appToken: fake.appToken,
      socketMode: true,
      botId: fake.botId,
      botUserId: fake.botUserId,
      tokenVerificationEnabled: false,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
    });
    wire(socketApp);
    await socketApp.start(); // resolves once the fake's `hello` arrived
  });

  after(async () => {
    await socketApp.stop(); // before fake.close(): a dropped socket would otherwise schedule a reconnect
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await fake.close();
  });

  it('socket mode connected with the app token', () => {
    const open = fake.calls.find((c) => c.method === 'apps.connections.open');
    assert.equal(open?.token, fake.appToken);
    assert.equal(fake.socketConnections, 1);
  });

  it('HTTP: a signed click runs the handler; chat.update and response_url are recorded', async () => {
    const posted = await httpApp.client.chat.postMessage({ channel: '#ai-approvals', text: 'Approve?' });
    assert.equal(posted.ok, true);
    const channel = posted.channel ?? '';
    const ts = posted.ts ?? '';
    assert.match(ts, /^\d{10}\.\d{6}$/);
    assert.match(channel, /^C/);

    const from = fake.calls.length;
    const payload = blockActionPayload({
      userId: 'U0ALICE',
      actionId: 'approve',
      value: 'req-123',
      channelId: channel,
      messageTs: ts,
      responseUrl: fake.responseUrl('http-click'),
    });
    const res = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload);
    assert.equal(res.status, 200);

    const update = await fake.waitFor('chat.update', from);
    assert.equal(update.token, fake.botToken);
    assert.equal(update.args.channel, channel);
    assert.equal(update.args.ts, ts);
    assert.equal(update.args.text, 'approved req-123 by <@U0ALICE>');
    assert.deepEqual(update.args.blocks, [{ type: 'section', text: { type: 'mrkdwn', text: 'Approved' } }]); // parsed from the form
    const responded = await fake.waitFor('response_url', from);
    assert.equal(responded.path, '/response/http-click');
    assert.deepEqual(responded.args, { replace_original: false, text: 'recorded' });
    assert.equal(fake.messages.get(`${channel}:${ts}`)?.updates, 1);
  });

  it('HTTP: forged signature → 401, handler not run', async () => {
    const from = fake.calls.length;
    const payload = blockActionPayload({
      userId: 'U0ALICE',
      actionId: 'approve',
      value: 'forged',
      channelId: 'C0FAKE0001',
      messageTs: '1700000000.000100',
      responseUrl: fake.responseUrl(),
    });
    const forged = await postSlackInteraction(eventsUrl, 'wrong-secret', payload);
    assert.equal(forged.status, 401);
    const garbage = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload, { signature: 'v0=' + '0'.repeat(64) });
    assert.equal(garbage.status, 401);
    // body changed after signing (signature of another body)
    const other = new URLSearchParams({ payload: JSON.stringify({ ...payload, user: { id: 'U0MALLORY' } }) }).toString();
    const now = Math.floor(Date.now() / 1000);
    const swapped = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload, {
      timestamp: now,
      signature: slackSignature(SIGNING_SECRET, now, other),
    });
    assert.equal(swapped.status, 401);
    await assert.rejects(fake.waitFor('chat.update', from, 100));
  });

  it('HTTP: stale timestamp (> 5 min old) → 401; Bolt accepts a future one', async () => {
    const payload = blockActionPayload({
      userId: 'U0ALICE',
      actionId: 'approve',
      value: 'ts-check',
      channelId: 'C0FAKE0001',
      messageTs: '1700000000.000100',
      responseUrl: fake.responseUrl(),
    });
    const now = Math.floor(Date.now() / 1000);
    const stale = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload, { timestamp: now - 301 });
    assert.equal(stale.status, 401);
    // Documents Bolt 5.1's behaviour (notes §2.3): only stale timestamps are refused. If this starts failing,
    // Bolt began rejecting future timestamps — good news, drop any workaround.
    const from = fake.calls.length;
    const future = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload, { timestamp: now + 3600 });
    assert.equal(future.status, 200);
    await fake.waitFor('chat.update', from);
  });

  it('HTTP: view_submission ack body comes back as the HTTP response', async () => {
    const payload = viewSubmissionPayload({
      userId: 'U0BOB',
      callbackId: 'reason_modal',
      privateMetadata: JSON.stringify({ id: 'req-1' }),
      values: { reason: { text: { type: 'plain_text_input', value: 'no' } } },
    });
    const res = await postSlackInteraction(eventsUrl, SIGNING_SECRET, payload);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { response_action: 'errors', errors: { reason: 'Too short' } });
  });

  it('Socket Mode: an interactive envelope runs the handler and is acked', async () => {
    const from = fake.calls.length;
    const payload = blockActionPayload({
      userId: 'U0BOB',
      actionId: 'approve',
      value: 'req-456',
      channelId: 'C0FAKE0001',
      messageTs: '1700000000.000100',
      responseUrl: fake.responseUrl('socket-click'),
    });
    const ack = await fake.sendSocketPayload(payload);
    assert.equal(typeof ack.envelope_id, 'string');
    assert.deepEqual(ack.payload, {}); // ack() without args → empty payload
    const update = await fake.waitFor('chat.update', from);
    assert.equal(update.token, fake.botToken);
    assert.equal(update.args.text, 'approved req-456 by <@U0BOB>');
    assert.equal(update.args.team_id, fake.teamId); // Bolt adds the authorized team to every call
    const responded = await fake.waitFor('response_url', from);
    assert.equal(responded.path, '/response/socket-click');
  });

  it('Socket Mode: a view_submission ack carries the response payload', async () => {
    const payload = viewSubmissionPayload({
      userId: 'U0BOB',
      callbackId: 'reason_modal',
      privateMetadata: '{}',
      values: { reason: { text: { type: 'plain_text_input', value: 'x' } } },
    });
    const ack = await fake.sendSocketPayload(payload);
    assert.deepEqual(ack.payload, { response_action: 'errors', errors: { reason: 'Too short' } });
  });

  it('Web API: users, groups, views, ephemeral, unknown methods and bad tokens', async () => {
    const client = new WebClient(fake.botToken, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 }, logLevel: LogLevel.ERROR });
    const auth = await client.auth.test();
    assert.equal(auth.user_id, fake.botUserId);
    assert.equal(auth.bot_id, fake.botId);
    const info = await client.users.info({ user: 'U0ALICE' });
    assert.equal(info.user?.profile?.email, 'alice@example.com');
    await assert.rejects(client.users.info({ user: 'U0NOBODY' }), (e: WebAPIPlatformError) => e.data.error === 'user_not_found');
    const byEmail = await client.users.lookupByEmail({ email: 'BOB@example.com' });
    assert.equal(byEmail.user?.id, 'U0BOB');
    await assert.rejects(
      client.users.lookupByEmail({ email: 'x@example.com' }),
      (e: WebAPIPlatformError) => e.data.error === 'users_not_found',
    );
    const members = await client.usergroups.users.list({ usergroup: 'S0OWNERS' });
    assert.deepEqual(members.users, ['U0ALICE', 'U0BOB']);
    await assert.rejects(client.usergroups.users.list({ usergroup: 'S0NONE' }), (e: WebAPIPlatformError) => e.data.error === 'no_such_subteam');
    const view = await client.views.open({
      trigger_id: '1.2.abc',
      view: { type: 'modal', callback_id: 'reason_modal', title: { type: 'plain_text', text: 'Why?' }, blocks: [] },
    });
    assert.match(view.view?.id ?? '', /^V/);
    const eph = await client.chat.postEphemeral({ channel: 'C0FAKE0001', user: 'U0ALICE', text: 'only you' });
    assert.match(eph.message_ts ?? '', /^\d+\.\d{6}$/);
    await assert.rejects(client.apiCall('no.such.method'), (e: WebAPIPlatformError) => e.data.error === 'unknown_method');
    assert.equal(fake.calls.at(-1)?.method, 'no.such.method');
    const appTokenClient = new WebClient(fake.appToken, { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 }, logLevel: LogLevel.ERROR });
    await assert.rejects(appTokenClient.auth.test(), (e: WebAPIPlatformError) => e.data.error === 'not_allowed_token_type');

    // A JSON body (how some clients post) is parsed too.
    const res = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fake.botToken}`, 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ channel: 'C0FAKE0001', text: 'json', blocks: [{ type: 'divider' }] }),
    });
    const body = (await res.json()) as { ok: boolean; ts: string };
    assert.equal(body.ok, true);
    const last = fake.calls.at(-1);
    assert.deepEqual(last?.args, { channel: 'C0FAKE0001', text: 'json', blocks: [{ type: 'divider' }] });
  });

  it('failNext: errors, HTTP 500 with retries, and rate limiting with Retry-After', async () => {
    const client = new WebClient(fake.botToken, {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 2, minTimeout: 10, maxTimeout: 10 },
      logLevel: LogLevel.ERROR,
    });
    fake.failNext('chat.postMessage', 1, 'error', 'channel_not_found');
    await assert.rejects(client.chat.postMessage({ channel: 'C1', text: 'x' }), (e: WebAPIPlatformError) => e.data.error === 'channel_not_found');

    let from = fake.calls.length;
    fake.failNext('chat.postMessage', 2, 'http500');
    const ok = await client.chat.postMessage({ channel: 'C1', text: 'x' });
    assert.equal(ok.ok, true);
    assert.deepEqual(
      fake.calls.slice(from).map((c) => c.failedWith ?? 'ok'),
      ['http500', 'http500', 'ok'],
    );

    from = fake.calls.length;
    fake.failNext('chat.update', 1, 'ratelimited');
    const t0 = Date.now();
    const updated = await client.chat.update({ channel: 'C1', ts: ok.ts ?? '', text: 'y' });
    assert.equal(updated.ok, true);
    assert.ok(Date.now() - t0 >= 900, 'the client honoured Retry-After: 1');
    assert.equal(fake.calls.slice(from).length, 2);
  });

  it('waitFor and sendSocketPayload reject with clear messages; a strict fake checks tokens', async () => {
    await assert.rejects(fake.waitFor('chat.delete', 0, 30), /no 'chat.delete' call within 30 ms/);
    const lonely = await startFakeSlack({ botToken: 'xoxb-strict' });
    try {
      await assert.rejects(lonely.sendSocketPayload({ type: 'block_actions' }, 50), /no Socket Mode app connected/);
      const stranger = new WebClient('xoxb-someone-else', { slackApiUrl: lonely.apiUrl, retryConfig: { retries: 0 }, logLevel: LogLevel.ERROR });
      await assert.rejects(stranger.auth.test(), (e: WebAPIPlatformError) => e.data.error === 'invalid_auth');
      const open = await fetch(`${lonely.apiUrl}apps.connections.open`, { method: 'POST', headers: { authorization: 'Bearer xoxb-strict' } });
      assert.deepEqual(await open.json(), { ok: false, error: 'not_allowed_token_type' });
    } finally {
      await lonely.close();
    }
  });
});
