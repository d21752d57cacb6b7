/**
 * A local Bot Framework for Teams, as the bot sees it:
 * - OpenID metadata (`/v1/.well-known/openidconfiguration`) and its JWKS (`/v1/.well-known/keys`) with a
 *   locally generated RSA key, endorsed for `msteams`, as login.botframework.com serves them;
 * - an Entra ID token endpoint (`/<tenant>/oauth2/v2.0/token`) that gives the bot a token for its client
 *   credentials (client_secret_post), scope `https://api.botframework.com/.default`;
 * - a connector (`/v3/conversations/...`) that records posted and updated activities and answers
 *   member lookups from a roster, refusing calls without the bot's token.
 * `click` posts an `adaptiveCard/action` invoke to the bot, signed with the key exactly as the Bot
 * Framework signs them (RS256, iss https://api.botframework.com, aud = the bot's app id, serviceurl),
 * with options to get each part wrong.
 */
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { SignJWT, exportJWK } from 'jose';

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const APP_ID = '6f1c9a7e-0b3d-4d1f-9e21-4a3b2c1d0e9f';
export const APP_SECRET = 'teams-client-secret';
const ISSUER = 'https://api.botframework.com';

export interface TeamsUser {
  /** Teams user id (`29:…`), as activities name the sender. */
  id: string;
  aadObjectId: string;
  userPrincipalName: string;
  name: string;
}

export interface ConnectorCall {
  index: number;
  method: string;
  path: string;
  conversationId: string;
  activityId: string | null;
  body: Record<string, unknown>;
}

export interface ClickOptions {
  /** Sign with another key (same kid): not the Bot Framework's. */
  key?: KeyObject;
  audience?: string;
  issuer?: string;
  /** Seconds from now; negative for a token already expired. */
  expiresIn?: number;
  /** The token's serviceurl claim (default: the activity's). */
  serviceUrlClaim?: string;
  /** The activity's serviceUrl (default: this fake's). */
  serviceUrl?: string;
  tenantId?: string;
  /** The tenant in channelData, when it should differ from the conversation's. */
  channelDataTenantId?: string;
  /** No Authorization header at all. */
  unsigned?: boolean;
  conversationId?: string;
  replyToId?: string;
  data?: Record<string, unknown>;
}

export interface FakeTeams {
  /** Base URL of everything here; the connector's serviceUrl is `${url}/`. */
  url: string;
  serviceUrl: string;
  openIdMetadataUrl: string;
  tokenUrl: string;
  calls: ConnectorCall[];
  users: Map<string, TeamsUser>;
  /** How many tokens the token endpoint gave out. */
  tokensIssued: number;
  /** Wait for a connector call (`POST`: posted, `PUT`: updated) at or after index `from`. */
  waitFor(method: 'POST' | 'PUT', from?: number, timeoutMs?: number): Promise<ConnectorCall>;
  /** Post an Action.Execute invoke from `user` to the bot at `botUrl`. */
  click(botUrl: string, user: TeamsUser, verb: string, approvalId: string, opts?: ClickOptions): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A token as the Bot Framework would sign it (for other activities). */
  sign(opts?: ClickOptions & { serviceUrlFor?: string }): Promise<string>;
  /** A key pair that is not the Bot Framework's. */
  otherKey: KeyObject;
  close(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  if ((req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  return JSON.parse(text) as Record<string, unknown>;
}

export async function startFakeTeams(): Promise<FakeTeams> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { privateKey: otherKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { privateKey: entraKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'fake-bf-key-1';
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256', endorsements: ['msteams', 'skype'] };
  const issuedTokens = new Set<string>();
  const calls: ConnectorCall[] = [];
  const users = new Map<string, TeamsUser>();
  const waiters = new Set<{ method: string; from: number; resolve: (c: ConnectorCall) => void }>();
  let nextActivity = 1;
  let url = '';

  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'GET' && path === '/v1/.well-known/openidconfiguration') {
        return send(200, { issuer: ISSUER, authorization_endpoint: `${url}/v1/auth`, jwks_uri: `${url}/v1/.well-known/keys`, id_token_signing_alg_values_supported: ['RS256'], token_endpoint_auth_methods_supported: ['private_key_jwt'] });
      }
      if (req.method === 'GET' && path === '/v1/.well-known/keys') return send(200, { keys: [jwk] });
      if (req.method === 'POST' && path === `/${TENANT}/oauth2/v2.0/token`) {
        const form = await readJson(req);
        if (form.grant_type !== 'client_credentials' || form.client_id !== APP_ID || form.client_secret !== APP_SECRET) {
          return send(401, { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.' });
        }
        if (form.scope !== 'https://api.botframework.com/.default') return send(400, { error: 'invalid_scope' });
        // Entra ID access tokens are JWTs (the SDK reads them as such).
        const now = Math.floor(Date.now() / 1000);
        const token = await new SignJWT({ appid: APP_ID, tid: TENANT, idtyp: 'app' })
          .setProtectedHeader({ alg: 'RS256', kid: 'fake-entra-key', typ: 'JWT' })
          .setIssuer(`https://login.microsoftonline.com/${TENANT}/v2.0`)
          .setAudience('https://api.botframework.com')
          .setIssuedAt(now)
          .setExpirationTime(now + 3599)
          .setJti(randomUUID())
          .sign(entraKey);
        issuedTokens.add(token);
        fake.tokensIssued++;
        return send(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
      }
      const conv = /^\/v3\/conversations\/([^/]+)\/(activities|members)(?:\/([^/]+))?$/.exec(path);
      if (conv) {
        const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
        if (!auth || !issuedTokens.has(auth[1]!)) return send(401, { error: { code: 'Unauthorized', message: 'Authorization has been denied for this request.' } });
        const conversationId = decodeURIComponent(conv[1]!);
        const item = conv[3] === undefined ? null : decodeURIComponent(conv[3]);
        if (conv[2] === 'members' && req.method === 'GET' && item !== null) {
          const user = users.get(item);
          if (!user) return send(404, { error: { code: 'MemberNotFoundInConversation', message: 'member not found' } });
          const [givenName, surname] = user.name.split(' ');
          return send(200, { id: user.id, name: user.name, aadObjectId: user.aadObjectId, userPrincipalName: user.userPrincipalName, email: user.userPrincipalName, givenName, surname, tenantId: TENANT, userRole: 'user' });
        }
        if (conv[2] === 'activities' && (req.method === 'POST' || req.method === 'PUT')) {
          const body = await readJson(req);
          const activityId = req.method === 'POST' && item === null ? `1700000000${String(nextActivity++).padStart(3, '0')}` : item;
          const call: ConnectorCall = { index: calls.length, method: req.method, path, conversationId, activityId, body };
          calls.push(call);
          for (const w of [...waiters]) {
            if (w.method === call.method && call.index >= w.from) {
              waiters.delete(w);
              w.resolve(call);
            }
          }
          return send(req.method === 'POST' ? 201 : 200, { id: activityId });
        }
      }
      send(404, { error: { code: 'NotFound', message: `${req.method} ${path}` } });
    })().catch((err: unknown) => send(500, { error: String(err) }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  url = `http://127.0.0.1:${port}`;
  const serviceUrl = `${url}/`;

  async function sign(opts: ClickOptions & { serviceUrlFor?: string } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ serviceurl: opts.serviceUrlClaim ?? opts.serviceUrlFor ?? serviceUrl, appid: 'd6d49420-f39b-4df7-a1dc-d59a935871db' })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(opts.issuer ?? ISSUER)
      .setAudience(opts.audience ?? APP_ID)
      .setNotBefore(now - 300)
      .setIssuedAt(now - 300)
      .setExpirationTime(now + (opts.expiresIn ?? 3600))
      .sign(opts.key ?? privateKey);
  }

  const fake: FakeTeams = {
    url,
    serviceUrl,
    openIdMetadataUrl: `${url}/v1/.well-known/openidconfiguration`,
    tokenUrl: `${url}/${TENANT}/oauth2/v2.0/token`,
    calls,
    users,
    tokensIssued: 0,
    otherKey,
    sign,
    waitFor(method, from = 0, timeoutMs = 5000) {
      const found = calls.find((c) => c.index >= from && c.method === method);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = {
          method,
          from,
          resolve: (c: ConnectorCall) => {
            clearTimeout(timer);
            resolve(c);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`fake Teams: no ${method} to the connector within ${timeoutMs} ms (from index ${from}); calls since: [${calls.slice(from).map((c) => c.method).join(', ')}]`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    async click(botUrl, user, verb, approvalId, opts = {}) {
      const activityServiceUrl = opts.serviceUrl ?? serviceUrl;
      const conversationId = opts.conversationId ?? '19:approvals@thread.tacv2';
      const activity = {
        type: 'invoke',
        name: 'adaptiveCard/action',
        id: `f:${randomUUID()}`,
        timestamp: new Date().toISOString(),
        localTimestamp: new Date().toISOString(),
        channelId: 'msteams',
        serviceUrl: activityServiceUrl,
        from: { id: user.id, name: user.name, aadObjectId: user.aadObjectId },
        conversation: { id: `${conversationId};messageid=${opts.replyToId ?? '1700000000001'}`, conversationType: 'channel', isGroup: true, tenantId: opts.tenantId ?? TENANT },
        recipient: { id: `28:${APP_ID}`, name: 'Airlock' },
        replyToId: opts.replyToId ?? '1700000000001',
        entities: [{ type: 'clientInfo', locale: 'en-GB', country: 'GB', platform: 'Web', timezone: 'Europe/London' }],
        channelData: { tenant: { id: opts.channelDataTenantId ?? opts.tenantId ?? TENANT }, source: { name: 'message' }, legacy: { replyToId: 'legacy' } },
        value: { action: { type: 'Action.Execute', verb, data: { approvalId, ...opts.data } }, trigger: 'manual' },
        locale: 'en-GB',
      };
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Microsoft-SkypeBotApi (Microsoft-BotFramework 3.0)' };
      if (!opts.unsigned) headers.authorization = `Bearer ${await sign({ ...opts, serviceUrlFor: activityServiceUrl })}`;
      const res = await fetch(botUrl, { method: 'POST', headers, body: JSON.stringify(activity) });
      const text = await res.text();
      return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return fake;
}
