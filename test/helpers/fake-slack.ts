/**
 * A local stand-in for Slack, for tests that can't reach slack.com:
 *  - the Web API (`POST /api/<method>`) that Bolt's WebClient calls (point `clientOptions.slackApiUrl` at `apiUrl`),
 *  - `response_url` endpoints (`POST /response/<anything>`), recorded as method `response_url`,
 *  - Socket Mode: `apps.connections.open` hands out `ws://127.0.0.1:PORT/socket?ticket=…`; the WebSocket there speaks
 *    the protocol @slack/socket-mode 3 expects (`hello` on connect, envelopes out, `{envelope_id, payload}` acks back,
 *    `disconnect` on request),
 * plus `postSlackInteraction`, which signs and POSTs an interaction payload exactly as Slack does, and builders for
 * realistic `block_actions` / `view_submission` payloads.
 *
 * Order at teardown: stop the Bolt App first (`await app.stop()`), then `await fake.close()`. A Socket Mode client whose
 * connection drops while its app still runs schedules a reconnect, and that fails loudly once the fake is gone.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export const FAKE_TEAM_ID = 'T0FAKETEAM';
export const FAKE_TEAM_DOMAIN = 'airlock-fake';
export const FAKE_APP_ID = 'A0FAKEAPP1';
export const FAKE_BOT_ID = 'B0FAKEBOT1';
export const FAKE_BOT_USER_ID = 'U0FAKEBOT1';
export const DEFAULT_BOT_TOKEN = 'xoxb-fake-bot-token';
export const DEFAULT_APP_TOKEN = 'xapp-1-fake-app-token';

export type FailMode = 'error' | 'http500' | 'http503' | 'ratelimited';

export interface FakeSlackCall {
  /** Web API method name (`chat.postMessage`), or `response_url` for a POST to a response URL. */
  method: string;
  /** Parsed arguments (form or JSON body, plus query string). JSON-valued form fields (`blocks`, `view`, …) are parsed. */
  args: Record<string, unknown>;
  /** Bearer token (or the legacy `token` form field); null when none was sent. */
  token: string | null;
  /** Position in `calls`. */
  index: number;
  /** Request path, e.g. `/api/chat.update` or `/response/abc`. */
  path: string;
  /** Set when this call was answered by an injected failure (`failNext`). */
  failedWith?: FailMode;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  text?: unknown;
  blocks?: unknown;
  /** How many times chat.update changed it. */
  updates: number;
}

export interface SocketAck {
  envelope_id: string;
  payload?: unknown;
}

export interface FakeSlack {
  /** `http://127.0.0.1:PORT/api/` — what Airlock gets as SLACK_API_URL (keep the trailing slash). */
  apiUrl: string;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Every call received, in order, including failed and unauthorized ones. */
  calls: FakeSlackCall[];
  /**
   * Resolves with the first call of `method` at index >= `from` (already recorded ones count), or rejects after
   * `timeoutMs` (default 5000) naming the method and the calls seen so far.
   */
  waitFor(method: string, from?: number, timeoutMs?: number): Promise<FakeSlackCall>;
  /** Users the fake knows: id → { email, name }; answered by users.info and users.lookupByEmail. */
  users: Map<string, { email: string; name: string }>;
  /** User groups: group id → member user ids; answered by usergroups.users.list. */
  groups: Map<string, string[]>;
  /** Channel names (without `#`) → ids. Posting to an unknown name adds one. */
  channels: Map<string, string>;
  /** Current state of every message posted with chat.postMessage, by `${channel}:${ts}` (chat.update applies). */
  messages: Map<string, FakeMessage>;
  /**
   * Make the next `n` calls of `method` (a Web API method or `response_url`) fail:
   * `error` → HTTP 200 `{ ok: false, error }` (default error `fake_failure`); `http500`/`http503` → that status;
   * `ratelimited` → HTTP 429 with `Retry-After: 1` and `{ ok: false, error: 'ratelimited' }`.
   */
  failNext(method: string, n: number, how: FailMode, error?: string): void;
  /**
   * The bot token to give the app. Only enforced (other tokens → `invalid_auth`) when passed to `startFakeSlack`;
   * otherwise any bearer token is accepted except an `xapp-` one (`not_allowed_token_type`). Missing → `not_authed`.
   */
  botToken: string;
  /** The app-level token `apps.connections.open` accepts. */
  appToken: string;
  teamId: string;
  appId: string;
  botId: string;
  botUserId: string;
  /** `http://127.0.0.1:PORT/response/<tag>`: a response URL served (and recorded) by the fake. */
  responseUrl(tag?: string): string;
  /** Open Socket Mode connections that have been sent `hello`. */
  readonly socketConnections: number;
  /**
   * Deliver `payload` over one Socket Mode connection (round-robin, like Slack's one-connection-per-payload) wrapped
   * in an envelope, and resolve with the app's ack. The envelope type follows the payload: `slash_commands` if it has a
   * `command`, `events_api` for `event_callback`, else `interactive`. Waits for a connection if none is open yet;
   * rejects when `timeoutMs` (default 5000) runs out before the ack.
   */
  sendSocketPayload(payload: Record<string, unknown>, timeoutMs?: number): Promise<SocketAck>;
  /** Send `{type:'disconnect', reason}` on every connection, as Slack does before recycling a host. */
  disconnectSockets(reason?: 'warning' | 'refresh_requested' | 'link_disabled'): void;
  /** Rejects pending waits, drops all connections, stops listening. Idempotent. */
  close(): Promise<void>;
}

/** Methods the fake answers (besides `apps.connections.open`); anything else gets `unknown_method`. */
const KNOWN_METHODS = new Set([
  'auth.test',
  'chat.postMessage',
  'chat.update',
  'chat.postEphemeral',
  'views.open',
  'users.info',
  'users.lookupByEmail',
  'usergroups.users.list',
]);

/** Form fields that Bolt's WebClient JSON-encodes (objects/arrays are sent as JSON strings in form posts). */
const JSON_FIELDS = new Set(['blocks', 'attachments', 'view', 'metadata', 'unfurls', 'user_auth_blocks', 'elements']);

interface Waiter {
  method: string;
  from: number;
  resolve: (call: FakeSlackCall) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface SocketWaiter {
  resolve: () => void;
}

interface PendingAck {
  resolve: (ack: SocketAck) => void;
  reject: (err: Error) => void;
}

let tsCounter = 0;
/** `1700000000.000100`, `1700000000.000200`, … — unique and increasing across all fakes in the process. */
function nextTs(): string {
  tsCounter += 1;
  const micros = tsCounter * 100;
  const sec = 1_700_000_000 + Math.floor(micros / 1_000_000);
  return `${sec}.${String(micros % 1_000_000).padStart(6, '0')}`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function maybeJson(key: string, value: string): unknown {
  if (!JSON_FIELDS.has(key)) return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

async function parseArgs(req: IncomingMessage, url: URL): Promise<Record<string, unknown>> {
  const args: Record<string, unknown> = {};
  for (const [k, v] of url.searchParams) args[k] = maybeJson(k, v);
  const body = await readBody(req);
  if (body.length === 0) return args;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json') {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(args, parsed);
    else args._body = parsed;
  } else if (type === 'multipart/form-data') {
    const form = await new Response(body, { headers: { 'content-type': req.headers['content-type'] ?? '' } }).formData();
    for (const [k, v] of form) {
      args[k] = typeof v === 'string' ? maybeJson(k, v) : { filename: v.name, size: v.size };
    }
  } else {
    // application/x-www-form-urlencoded (what the WebClient sends), or anything else we treat the same way
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) args[k] = maybeJson(k, v);
  }
  return args;
}

function bearer(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m?.[1]?.trim() ?? null;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function envelopeType(payload: Record<string, unknown>): string {
  if (typeof payload.command === 'string') return 'slash_commands';
  if (payload.type === 'event_callback') return 'events_api';
  return 'interactive';
}

export async function startFakeSlack(opts: { botToken?: string; appToken?: string } = {}): Promise<FakeSlack> {
  // Bot tokens are only checked when one was given; by default any bearer token (but an app token) is accepted.
  const strictBotToken = opts.botToken !== undefined;
  const botToken = opts.botToken ?? DEFAULT_BOT_TOKEN;
  const appToken = opts.appToken ?? DEFAULT_APP_TOKEN;
  const calls: FakeSlackCall[] = [];
  const users = new Map<string, { email: string; name: string }>();
  const groups = new Map<string, string[]>();
  const channels = new Map<string, string>();
  const messages = new Map<string, FakeMessage>();
  const failures = new Map<string, { how: FailMode; error: string }[]>();
  const waiters = new Set<Waiter>();
  const socketWaiters = new Set<SocketWaiter>();
  const pendingAcks = new Map<string, PendingAck>();
  const tickets = new Set<string>();
  const sockets = new Set<WebSocket>();
  const ready: WebSocket[] = [];
  let roundRobin = 0;
  let viewCounter = 0;
  let closed = false;

  const server = createServer();
  const wss = new WebSocketServer({ noServer: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  const socketUrl = `ws://127.0.0.1:${port}/socket`;

  function record(call: Omit<FakeSlackCall, 'index'>): FakeSlackCall {
    const rec: FakeSlackCall = { ...call, index: calls.length };
    calls.push(rec);
    return rec;
  }

  function notify(rec: FakeSlackCall): void {
    for (const w of waiters) {
      if (w.method === rec.method && rec.index >= w.from) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(rec);
      }
    }
  }

  function takeFailure(method: string): { how: FailMode; error: string } | undefined {
    const q = failures.get(method);
    const f = q?.shift();
    if (q !== undefined && q.length === 0) failures.delete(method);
    return f;
  }

  function answerFailure(res: ServerResponse, f: { how: FailMode; error: string }): void {
    switch (f.how) {
      case 'error':
        return sendJson(res, 200, { ok: false, error: f.error });
      case 'http500':
        return sendJson(res, 500, { ok: false, error: 'internal_error' });
      case 'http503':
        return sendJson(res, 503, { ok: false, error: 'service_unavailable' });
      case 'ratelimited':
        return sendJson(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': '1' });
    }
  }

  function channelId(ref: string): string {
    if (/^[CGD][A-Z0-9]+$/.test(ref)) return ref;
    if (/^[UW][A-Z0-9]+$/.test(ref)) return `D${ref.slice(1)}`; // posting to a user id opens a DM
    const name = ref.replace(/^#/, '');
    let id = channels.get(name);
    if (id === undefined) {
      id = `C0FAKE${String(channels.size + 1).padStart(4, '0')}`;
      channels.set(name, id);
    }
    return id;
  }

  function userObject(id: string, u: { email: string; name: string }): Record<string, unknown> {
    return {
      id,
      team_id: FAKE_TEAM_ID,
      name: u.name,
      real_name: u.name,
      deleted: false,
      is_bot: false,
      is_admin: false,
      tz: 'Etc/UTC',
      profile: { email: u.email, real_name: u.name, display_name: u.name, team: FAKE_TEAM_ID },
    };
  }

  /** The Web API proper: returns the JSON body for a well-authenticated call. */
  function answer(method: string, args: Record<string, unknown>): Record<string, unknown> {
    switch (method) {
      case 'auth.test':
        return {
          ok: true,
          url: `https://${FAKE_TEAM_DOMAIN}.slack.com/`,
          team: 'Airlock Fake',
          user: 'airlock',
          team_id: FAKE_TEAM_ID,
          user_id: FAKE_BOT_USER_ID,
          bot_id: FAKE_BOT_ID,
          is_enterprise_install: false,
        };
      case 'chat.postMessage': {
        const ref = str(args.channel);
        if (ref === undefined || ref === '') return { ok: false, error: 'channel_not_found' };
        if (args.text === undefined && args.blocks === undefined && args.attachments === undefined) {
          return { ok: false, error: 'no_text' };
        }
        const channel = channelId(ref);
        const ts = nextTs();
        const message: Record<string, unknown> = {
          type: 'message',
          text: args.text ?? '',
          user: FAKE_BOT_USER_ID,
          bot_id: FAKE_BOT_ID,
          app_id: FAKE_APP_ID,
          team: FAKE_TEAM_ID,
          ts,
        };
        if (args.blocks !== undefined) message.blocks = args.blocks;
        if (args.thread_ts !== undefined) message.thread_ts = args.thread_ts;
        messages.set(`${channel}:${ts}`, { channel, ts, text: args.text, blocks: args.blocks, updates: 0 });
        return { ok: true, channel, ts, message };
      }
      case 'chat.update': {
        const ref = str(args.channel);
        const ts = str(args.ts);
        if (ref === undefined || ref === '') return { ok: false, error: 'channel_not_found' };
        if (ts === undefined || ts === '') return { ok: false, error: 'message_not_found' };
        const channel = channelId(ref);
        const key = `${channel}:${ts}`;
        const prev = messages.get(key);
        messages.set(key, {
          channel,
          ts,
          text: args.text ?? prev?.text,
          blocks: args.blocks ?? prev?.blocks,
          updates: (prev?.updates ?? 0) + 1,
        });
        return {
          ok: true,
          channel,
          ts,
          text: args.text ?? '',
          message: { type: 'message', text: args.text ?? '', user: FAKE_BOT_USER_ID, bot_id: FAKE_BOT_ID, blocks: args.blocks },
        };
      }
      case 'chat.postEphemeral': {
        if (str(args.channel) === undefined) return { ok: false, error: 'channel_not_found' };
        if (str(args.user) === undefined) return { ok: false, error: 'user_not_in_channel' };
        return { ok: true, message_ts: nextTs() };
      }
      case 'views.open': {
        if (str(args.trigger_id) === undefined) return { ok: false, error: 'invalid_trigger_id' };
        if (args.view === undefined || typeof args.view !== 'object') return { ok: false, error: 'invalid_arguments' };
        viewCounter += 1;
        const id = `V0FAKE${String(viewCounter).padStart(4, '0')}`;
        return {
          ok: true,
          view: {
            ...(args.view as Record<string, unknown>),
            id,
            team_id: FAKE_TEAM_ID,
            app_id: FAKE_APP_ID,
            bot_id: FAKE_BOT_ID,
            root_view_id: id,
            previous_view_id: null,
            hash: `${Date.now()}.fake${viewCounter}`,
            state: { values: {} },
          },
        };
      }
      case 'users.info': {
        const id = str(args.user);
        const u = id === undefined ? undefined : users.get(id);
        if (id === undefined || u === undefined) return { ok: false, error: 'user_not_found' };
        return { ok: true, user: userObject(id, u) };
      }
      case 'users.lookupByEmail': {
        const email = str(args.email)?.toLowerCase();
        for (const [id, u] of users) {
          if (email !== undefined && u.email.toLowerCase() === email) return { ok: true, user: userObject(id, u) };
        }
        // Slack's real code for this method is the plural `users_not_found` (users.info says `user_not_found`).
        return { ok: false, error: 'users_not_found' };
      }
      case 'usergroups.users.list': {
        const id = str(args.usergroup);
        const members = id === undefined ? undefined : groups.get(id);
        if (members === undefined) return { ok: false, error: 'no_such_subteam' };
        return { ok: true, users: [...members] };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, method: string): Promise<void> {
    const args = await parseArgs(req, url);
    const token = bearer(req) ?? str(args.token) ?? null;
    const failure = takeFailure(method);
    const rec = record({ method, args, token, path: url.pathname, ...(failure ? { failedWith: failure.how } : {}) });
    try {
      if (failure !== undefined) return answerFailure(res, failure);
      if (method === 'apps.connections.open') {
        if (token === null) return sendJson(res, 200, { ok: false, error: 'not_authed' });
        if (token === botToken) return sendJson(res, 200, { ok: false, error: 'not_allowed_token_type' });
        if (token !== appToken) return sendJson(res, 200, { ok: false, error: 'invalid_auth' });
        const ticket = randomUUID();
        tickets.add(ticket);
        return sendJson(res, 200, { ok: true, url: `${socketUrl}?ticket=${ticket}&app_id=${FAKE_APP_ID}` });
      }
      if (!KNOWN_METHODS.has(method)) return sendJson(res, 200, { ok: false, error: 'unknown_method', req_method: method });
      if (token === null) return sendJson(res, 200, { ok: false, error: 'not_authed' });
      if (token === appToken || token.startsWith('xapp-')) {
        return sendJson(res, 200, { ok: false, error: 'not_allowed_token_type' });
      }
      if (strictBotToken && token !== botToken) return sendJson(res, 200, { ok: false, error: 'invalid_auth' });
      return sendJson(res, 200, answer(method, args));
    } finally {
      notify(rec);
    }
  }

  async function handleResponseUrl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const args = await parseArgs(req, url);
    const failure = takeFailure('response_url');
    const rec = record({
      method: 'response_url',
      args,
      token: bearer(req),
      path: url.pathname,
      ...(failure ? { failedWith: failure.how } : {}),
    });
    if (failure !== undefined) answerFailure(res, failure);
    else sendJson(res, 200, { ok: true });
    notify(rec);
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', origin);
    const done = (p: Promise<void>): void => {
      p.catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 400, { ok: false, error: 'invalid_form_data', detail: String(err) });
        else res.destroy();
      });
    };
    if (url.pathname.startsWith('/api/') && (req.method === 'POST' || req.method === 'GET')) {
      done(handleApi(req, res, url, decodeURIComponent(url.pathname.slice('/api/'.length))));
    } else if (url.pathname.startsWith('/response/') && req.method === 'POST') {
      done(handleResponseUrl(req, res, url));
    } else {
      sendJson(res, 404, { ok: false, error: 'not_found' });
    }
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', origin);
    const ticket = url.searchParams.get('ticket');
    if (closed || url.pathname !== '/socket' || ticket === null || !tickets.delete(ticket)) {
      socket.end(`HTTP/1.1 ${url.pathname === '/socket' ? '401 Unauthorized' : '404 Not Found'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => {
        sockets.delete(ws);
        const i = ready.indexOf(ws);
        if (i >= 0) ready.splice(i, 1);
      });
      ws.on('error', () => ws.terminate());
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        let msg: unknown;
        try {
          msg = JSON.parse(String(data));
        } catch {
          return;
        }
        if (msg === null || typeof msg !== 'object') return;
        const { envelope_id: envelopeId } = msg as { envelope_id?: unknown };
        if (typeof envelopeId !== 'string') return;
        const pending = pendingAcks.get(envelopeId);
        if (pending === undefined) return; // late or duplicate ack: Slack ignores those too
        pendingAcks.delete(envelopeId);
        pending.resolve(msg as SocketAck);
      });
      ws.send(
        JSON.stringify({
          type: 'hello',
          num_connections: sockets.size,
          debug_info: { host: 'applink-fake-1', build_number: 1, approximate_connection_time: 18060 },
          connection_info: { app_id: FAKE_APP_ID },
        }),
      );
      ready.push(ws);
      for (const w of socketWaiters) w.resolve();
      socketWaiters.clear();
    });
  });

  function waitForSocket(deadline: number): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        if (closed) return reject(new Error('fake Slack: closed while waiting for a Socket Mode connection'));
        const open = ready.filter((w) => w.readyState === w.OPEN);
        if (open.length > 0) {
          const ws = open[roundRobin % open.length];
          roundRobin += 1;
          if (ws !== undefined) return resolve(ws);
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          return reject(new Error('fake Slack: no Socket Mode app connected (did it call apps.connections.open and open the WebSocket?)'));
        }
        const waiter: SocketWaiter = {
          resolve: () => {
            clearTimeout(timer);
            socketWaiters.delete(waiter);
            attempt();
          },
        };
        const timer = setTimeout(waiter.resolve, left);
        socketWaiters.add(waiter);
      };
      attempt();
    });
  }

  const fake: FakeSlack = {
    apiUrl: `${origin}/api/`,
    origin,
    calls,
    users,
    groups,
    channels,
    messages,
    botToken,
    appToken,
    teamId: FAKE_TEAM_ID,
    appId: FAKE_APP_ID,
    botId: FAKE_BOT_ID,
    botUserId: FAKE_BOT_USER_ID,
    responseUrl(tag = randomUUID()) {
      return `${origin}/response/${encodeURIComponent(tag)}`;
    },
    get socketConnections() {
      return ready.filter((w) => w.readyState === w.OPEN).length;
    },
    waitFor(method, from = 0, timeoutMs = 5000) {
      const found = calls.find((c) => c.index >= from && c.method === method);
      if (found !== undefined) return Promise.resolve(found);
      if (closed) return Promise.reject(new Error(`fake Slack: closed; no '${method}' call`));
      return new Promise<FakeSlackCall>((resolve, reject) => {
        const waiter: Waiter = {
          method,
          from,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            const seen = calls.slice(from).map((c) => c.method);
            reject(
              new Error(
                `fake Slack: no '${method}' call within ${timeoutMs} ms (looking from index ${from}); ` +
                  `calls since then: [${seen.join(', ')}]`,
              ),
            );
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },
    failNext(method, n, how, error = 'fake_failure') {
      const q = failures.get(method) ?? [];
      for (let i = 0; i < n; i++) q.push({ how, error });
      failures.set(method, q);
    },
    async sendSocketPayload(payload, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      const ws = await waitForSocket(deadline);
      const envelopeId = randomUUID();
      const type = envelopeType(payload);
      const ack = new Promise<SocketAck>((resolve, reject) => {
        const timer = setTimeout(
          () => {
            pendingAcks.delete(envelopeId);
            reject(new Error(`fake Slack: no ack for ${type} envelope ${envelopeId} within ${timeoutMs} ms`));
          },
          Math.max(1, deadline - Date.now()),
        );
        pendingAcks.set(envelopeId, {
          resolve: (a) => {
            clearTimeout(timer);
            resolve(a);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
      });
      ws.send(
        JSON.stringify({
          envelope_id: envelopeId,
          type,
          accepts_response_payload: type !== 'interactive' || payload.type === 'view_submission',
          payload,
          retry_attempt: 0,
          retry_reason: '',
        }),
      );
      return ack;
    },
    disconnectSockets(reason = 'warning') {
      for (const ws of sockets) {
        ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake-1' } }));
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.reject(new Error(`fake Slack: closed while waiting for '${w.method}'`));
      }
      waiters.clear();
      for (const [id, p] of pendingAcks) p.reject(new Error(`fake Slack: closed while waiting for the ack of envelope ${id}`));
      pendingAcks.clear();
      for (const w of socketWaiters) w.resolve();
      // A clean close handshake, not terminate(): @slack/socket-mode 3.1 leaks a 30 s close-handshake timer
      // (keeping the process alive) when the socket drops while its own close frame is in flight.
      await Promise.all([...sockets].map((ws) => closeGracefully(ws)));
      sockets.clear();
      ready.length = 0;
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await stopped;
    },
  };
  return fake;
}

/** Close handshake (1000), waiting up to `graceMs` for the peer, then drop the TCP connection. */
function closeGracefully(ws: WebSocket, graceMs = 1000): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve();
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, graceMs);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === ws.OPEN) ws.close(1000, 'fake Slack closing');
  });
}

/** `v0=` + hex HMAC-SHA256 of `v0:${timestamp}:${body}` — Slack's request signature. */
export function slackSignature(signingSecret: string, timestamp: number | string, body: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

/**
 * Sign and POST an interaction payload to `url` as Slack does: form body `payload=<urlencoded JSON>`,
 * `X-Slack-Request-Timestamp` (seconds) and `X-Slack-Signature`. `timestamp` overrides the clock (stale/future tests),
 * `signature` replaces the computed one (forgeries), `rawBody` replaces the body (signed as given unless `signature`).
 * Uses its own connection (`Connection: close`), so nothing lingers after the test.
 */
export async function postSlackInteraction(
  url: string,
  signingSecret: string,
  payload: Record<string, unknown>,
  opts: { timestamp?: number; signature?: string; rawBody?: string } = {},
): Promise<{ status: number; body: string }> {
  const body = opts.rawBody ?? new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = opts.signature ?? slackSignature(signingSecret, ts, body);
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
          accept: 'application/json,*/*',
          'x-slack-request-timestamp': String(ts),
          'x-slack-signature': signature,
          connection: 'close',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let triggerCounter = 0;
function triggerId(): string {
  triggerCounter += 1;
  return `${1_700_000_000 + triggerCounter}.${triggerCounter}00000.${randomUUID().replace(/-/g, '').slice(0, 32)}`;
}

/** A `block_actions` payload for a button click on a bot message, shaped like Slack's (see Bolt's `BlockAction`). */
export function blockActionPayload(args: {
  userId: string;
  userName?: string;
  actionId: string;
  value: string;
  channelId: string;
  messageTs: string;
  responseUrl: string;
  triggerId?: string;
  blockId?: string;
  channelName?: string;
}): Record<string, unknown> {
  const userName = args.userName ?? args.userId.toLowerCase();
  const blockId = args.blockId ?? 'decision';
  const actionTs = nextTs();
  return {
    type: 'block_actions',
    user: { id: args.userId, username: userName, name: userName, team_id: FAKE_TEAM_ID },
    api_app_id: FAKE_APP_ID,
    token: 'fake-verification-token',
    container: { type: 'message', message_ts: args.messageTs, channel_id: args.channelId, is_ephemeral: false },
    trigger_id: args.triggerId ?? triggerId(),
    team: { id: FAKE_TEAM_ID, domain: FAKE_TEAM_DOMAIN },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: args.channelId, name: args.channelName ?? 'ai-approvals' },
    message: {
      type: 'message',
      subtype: 'bot_message',
      text: 'Approval requested',
      ts: args.messageTs,
      bot_id: FAKE_BOT_ID,
      app_id: FAKE_APP_ID,
      user: FAKE_BOT_USER_ID,
      team: FAKE_TEAM_ID,
      blocks: [
        {
          type: 'actions',
          block_id: blockId,
          elements: [
            {
              type: 'button',
              action_id: args.actionId,
              text: { type: 'plain_text', text: args.actionId, emoji: true },
              value: args.value,
            },
          ],
        },
      ],
    },
    state: { values: {} },
    response_url: args.responseUrl,
    actions: [
      {
        type: 'button',
        action_id: args.actionId,
        block_id: blockId,
        text: { type: 'plain_text', text: args.actionId, emoji: true },
        value: args.value,
        action_ts: actionTs,
      },
    ],
  };
}

/** A `view_submission` payload for a modal, shaped like Slack's (see Bolt's `ViewSubmitAction`). */
export function viewSubmissionPayload(args: {
  userId: string;
  userName?: string;
  callbackId: string;
  privateMetadata: string;
  /** As Slack sends them: text inputs carry `value`, selects `selected_option`. */
  values: Record<string, Record<string, { type: 'plain_text_input'; value: string } | { type: 'static_select'; selected_option: { text: { type: 'plain_text'; text: string }; value: string } }>>;
  viewId?: string;
}): Record<string, unknown> {
  const userName = args.userName ?? args.userId.toLowerCase();
  const viewId = args.viewId ?? 'V0FAKEVIEW';
  const blocks = Object.entries(args.values).flatMap(([blockId, actions]) =>
    Object.keys(actions).map((actionId) => ({
      type: 'input',
      block_id: blockId,
      label: { type: 'plain_text', text: blockId, emoji: true },
      optional: false,
      dispatch_action: false,
      element:
        actions[actionId]!.type === 'static_select'
          ? { type: 'static_select', action_id: actionId }
          : { type: 'plain_text_input', action_id: actionId, dispatch_action_config: { trigger_actions_on: ['on_enter_pressed'] } },
    })),
  );
  return {
    type: 'view_submission',
    team: { id: FAKE_TEAM_ID, domain: FAKE_TEAM_DOMAIN },
    user: { id: args.userId, username: userName, name: userName, team_id: FAKE_TEAM_ID },
    api_app_id: FAKE_APP_ID,
    token: 'fake-verification-token',
    trigger_id: triggerId(),
    view: {
      id: viewId,
      team_id: FAKE_TEAM_ID,
      type: 'modal',
      blocks,
      private_metadata: args.privateMetadata,
      callback_id: args.callbackId,
      state: { values: args.values },
      hash: `${1_700_000_000}.fakehash`,
      title: { type: 'plain_text', text: 'Airlock', emoji: true },
      clear_on_close: false,
      notify_on_close: false,
      close: { type: 'plain_text', text: 'Cancel', emoji: true },
      submit: { type: 'plain_text', text: 'Submit', emoji: true },
      previous_view_id: null,
      root_view_id: viewId,
      app_id: FAKE_APP_ID,
      external_id: '',
      app_installed_team_id: FAKE_TEAM_ID,
      bot_id: FAKE_BOT_ID,
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}
