import type { IncomingMessage, ServerResponse } from 'node:http';
import { PUBLIC, withOverrides, type InvokeResponse } from '@microsoft/teams.api';
import type { IAdaptiveCard } from '@microsoft/teams.cards';
import { App, type IHttpServerAdapter, type HttpRouteHandler } from '@microsoft/teams.apps';
import type { ILogger } from '@microsoft/teams.common';
import type { Logger } from '../../log.js';
import { sendJson } from '../../proxy/respond.js';
import { readBody } from '../../request/body.js';
import type { CompiledPolicy } from '../../policy/types.js';
import type { GrantState } from '../grants.js';
import { approverNameFor, grantAsk, asVotedOn, eligibleFor, selfApproval, type ApprovalChannel, type ApprovalService, type Redecide, type VoteOutcome } from '../service.js';
import { asDecided, type ApprovalRecord, type Eligible } from '../types.js';
import { Reachability } from '../reachability.js';
import { approvalCard, cardSummary, grantCard, VERB } from './card.js';
import { editFromCard, grantFromCard } from './card-input.js';
import { BOT_FRAMEWORK_OPENID_METADATA, BotFrameworkAuth, type ActivityHead } from './inbound-auth.js';
import { TEAMS_MESSAGES_PATH } from './endpoint.js';
import { ClientCredentials, defaultTokenUrl } from './token.js';

export interface TeamsConfig {
  /** The bot's Microsoft App ID (its Entra ID app registration's client id). */
  appId: string;
  /** The app registration's client secret. */
  appSecret: string;
  /** The Entra ID tenant the bot is registered in; activities from other tenants are refused. */
  tenantId: string;
  /** Conversation for rules that name none (`approval.teams`). */
  defaultConversation?: string;
  /** Bot Framework service cards are posted through (Teams' global one unless set). */
  serviceUrl?: string;
  /** Where the Bot Framework's signing keys are announced (tests point it at a local fake). */
  openIdMetadataUrl?: string;
  /** Entra ID token endpoint for the bot's client-credentials token. */
  tokenUrl?: string;
}

export const TEAMS_SERVICE_URL = 'https://smba.trafficmanager.net/teams/';
/** Teams activities are small; a larger body is refused before it is read whole. */
const BODY_LIMIT = 256 * 1024;
const BODY_DEADLINE_MS = 10_000;
const CACHE_MS = 10 * 60 * 1000;

/** Who clicked: their Entra object id (from the authenticated activity) and principal name (from Teams). */
interface Clicker {
  oid: string;
  upn: string | null;
}

type InvokeAnswer = InvokeResponse<'adaptiveCard/action'>;

function cardAnswer(card: IAdaptiveCard): InvokeAnswer {
  return { status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card } };
}

const CODES: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 500: 'InternalError', 503: 'Unavailable' };

/**
 * A refused click. The invoke's HTTP status says why (403: not an approver, 404: gone, 409: already
 * decided…); its body is a Universal Actions error (statusCode 400 or 500), whose message Teams shows
 * the clicker. The card stays as it was.
 */
function errorAnswer(status: number, message: string): InvokeAnswer {
  return { status, body: { statusCode: status >= 500 ? 500 : 400, type: 'application/vnd.microsoft.error', value: { code: CODES[status] ?? 'BadRequest', message, innerHttpError: { statusCode: status, body: { message } } } } };
}

/** HTTP (and Bot Framework SDK) errors worth another attempt: throttling, the service failing, no answer. */
function transient(err: unknown): boolean {
  const e = err as { response?: { status?: number }; isAxiosError?: boolean };
  const status = e.response?.status;
  return status === undefined ? e.isAxiosError === true : status === 429 || status >= 500;
}

/** The SDK's logger over ours: its warnings and errors only (its own debug output is noise). */
function sdkLogger(log: Logger): ILogger {
  const noop = (): void => undefined;
  const logger: ILogger = {
    debug: noop,
    info: noop,
    trace: noop,
    warn: (...msg: unknown[]) => log.warn({ sdk: 'teams' }, msg.map(String).join(' ')),
    error: (...msg: unknown[]) => log.warn({ sdk: 'teams' }, msg.map(String).join(' ')),
    log: noop,
    child: () => logger,
  };
  return logger;
}

/**
 * Approvals in Microsoft Teams, on the Teams SDK (`@microsoft/teams.apps`). Every approval is posted as
 * an Adaptive Card to the rule's conversation, and updated in place on every change, whoever made it
 * (Teams, Slack, the inbox, the API, an expiry). Clicks arrive as `adaptiveCard/action` invokes at
 * `POST /teams/messages` on the admin listener; each one's token is checked (inbound-auth.ts) before
 * the SDK sees it, the clicker is the activity's `from.aadObjectId`, and decisions go through the
 * approval service with the same rules as everywhere else.
 */
export class TeamsChannel implements ApprovalChannel {
  readonly name = 'teams';
  private readonly app: App;
  private readonly auth: BotFrameworkAuth;
  private readonly credentials: ClientCredentials;
  private route: HttpRouteHandler | null = null;
  private readonly link: Reachability;
  private readonly serviceUrl: string;
  private readonly accounts = new Map<string, { upn: string | null; until: number }>();

  constructor(
    private readonly config: TeamsConfig,
    private readonly approvals: ApprovalService,
    /** The policy in force: who may decide is checked against it at every click. */
    private readonly policy: () => CompiledPolicy,
    private readonly log: Logger,
    /** Decides an edited request again (Edit & approve). */
    private readonly redecide: Redecide,
  ) {
    const metadata = config.openIdMetadataUrl ?? BOT_FRAMEWORK_OPENID_METADATA;
    this.auth = new BotFrameworkAuth(config.appId, config.tenantId, metadata);
    this.credentials = new ClientCredentials(config.appId, config.appSecret, config.tokenUrl ?? defaultTokenUrl(config.tenantId));
    this.serviceUrl = config.serviceUrl ?? TEAMS_SERVICE_URL;
    this.link = new Reachability(log, transient);
    // The admin listener delivers requests; the SDK only registers its handler here.
    const adapter: IHttpServerAdapter = { registerRoute: (_method, _path, handler) => void (this.route = handler) };
    this.app = new App({
      clientId: config.appId,
      tenantId: config.tenantId,
      token: (scope) => this.credentials.token(scope),
      cloud: withOverrides(PUBLIC, { openIdMetadataUrl: metadata }),
      serviceUrl: this.serviceUrl,
      httpServerAdapter: adapter,
      messagingEndpoint: TEAMS_MESSAGES_PATH,
      // Never from the environment: every activity is authenticated.
      dangerouslyAllowUnauthenticatedRequests: false,
      logger: sdkLogger(log),
    });
    this.app.on('card.action', async ({ activity }) => {
      try {
        return await this.onAction(activity as unknown as ActionActivity);
      } catch (err) {
        this.log.warn({ err }, 'a Teams card action failed');
        return errorAnswer(500, 'Airlock could not handle this click; nothing was decided. Try again.');
      }
    });
    this.app.on('message', async ({ activity, send }) => {
      // Someone wrote to the bot: tell them the conversation id a policy names to post here.
      const conversation = String(activity.conversation?.id ?? '').split(';')[0];
      await send(`Airlock posts approval requests here when a rule names this conversation: approval.teams: "${conversation}"`);
    });
  }

  /**
   * Registers the SDK's handler, then checks the bot's credentials in the background, retrying with
   * backoff: Teams down or misconfigured never stops the proxy or the other channels.
   */
  async start(): Promise<void> {
    await this.app.initialize();
    this.link.connect(() => this.credentials.token(), 'Teams is not reachable (the bot token could not be had); approvals go on through the API, retrying');
  }

  up(): boolean {
    return this.link.up();
  }

  async stop(): Promise<void> {
    this.link.stop();
  }


  /** `POST /teams/messages` on the admin listener. */
  async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed', message: 'use POST' });
      // The Bot Framework sends small bodies at once: a slow or large one is refused, never waited for.
      const raw = await readBody(req, BODY_LIMIT, BODY_DEADLINE_MS);
      if (!raw.ok) {
        if (raw.reason === 'too_large') return sendJson(res, 413, { error: 'too_large', message: `an activity is at most ${BODY_LIMIT} bytes` });
        if (raw.reason === 'timeout') return sendJson(res, 408, { error: 'request_timeout', message: 'the activity did not arrive in time' });
        return void req.destroy();
      }
      let body: unknown;
      try {
        body = JSON.parse(raw.body.toString('utf8'));
      } catch {
        body = undefined;
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body)) return sendJson(res, 400, { error: 'bad_request', message: 'an activity is a JSON object' });
      const checked = await this.auth.check(req.headers.authorization, body as ActivityHead);
      if (!checked.ok) {
        this.log.warn({ why: checked.why, status: checked.status }, 'a Teams activity was refused');
        return sendJson(res, checked.status, { error: checked.status === 401 ? 'unauthorized' : 'forbidden', message: checked.why });
      }
      if (this.route === null) return sendJson(res, 503, { error: 'not_ready', message: 'the Teams bot is starting' });
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = v;
      const answer = await this.route({ body, headers });
      // Only invokes have a body to answer with; other activities are acknowledged.
      if (answer.body === undefined) res.writeHead(answer.status).end();
      else sendJson(res, answer.status, answer.body);
    } catch (err) {
      this.log.warn({ err }, 'a Teams activity could not be handled');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal', message: 'the activity could not be handled' });
    }
  }

  private activity(card: unknown, summary: string): Record<string, unknown> {
    return { type: 'message', summary, attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }] };
  }

  private editable(r: ApprovalRecord): readonly string[] {
    return this.policy().rules.find((rule) => rule.id === asDecided(r).rule)?.approval?.editableHeaders ?? [];
  }

  private approvalActivity(r: ApprovalRecord): Record<string, unknown> {
    return this.activity(approvalCard(r, { now: Date.now(), editableHeaders: this.editable(r) }), cardSummary(r));
  }

  private async post(conversationId: string, activity: Record<string, unknown>): Promise<{ serviceUrl: string; conversationId: string; activityId: string } | null> {
    const sent = await this.link.call(() => this.app.api.conversations.createActivity(conversationId, activity as never));
    return sent.id ? { serviceUrl: this.serviceUrl, conversationId, activityId: sent.id } : null;
  }

  private async update(ref: { serviceUrl: string; conversationId: string; activityId: string }, activity: Record<string, unknown>): Promise<void> {
    const api = this.app.api.fromServiceUrl({ serviceUrl: ref.serviceUrl });
    await this.link.call(() => api.conversations.updateActivity(ref.conversationId, ref.activityId, activity as never));
  }

  posted(r: ApprovalRecord): boolean {
    return r.teams !== null || (r.teamsConversation ?? this.config.defaultConversation) === undefined;
  }

  async requested(r: ApprovalRecord): Promise<void> {
    const conversation = r.teamsConversation ?? this.config.defaultConversation;
    if (!conversation) {
      this.log.warn({ approval_id: r.id, rule: r.rule }, 'no Teams conversation for this rule (approval.teams); decide it elsewhere');
      return;
    }
    const ref = await this.post(conversation, this.approvalActivity(r));
    if (ref !== null) await this.approvals.setMessage(r.id, 'teams', ref);
  }

  async changed(r: ApprovalRecord): Promise<void> {
    const ref = r.teams ?? (await this.approvals.get(r.id))?.teams;
    if (ref) await this.update(ref, this.approvalActivity(r));
  }

  /** The escalation's group is asked: the card is posted to the escalation's conversation too. */
  async escalated(r: ApprovalRecord): Promise<void> {
    const conversation = r.escalation?.teamsConversation ?? r.teamsConversation ?? this.config.defaultConversation;
    if (conversation) await this.post(conversation, this.approvalActivity(r));
  }

  async grantChanged(g: GrantState): Promise<void> {
    const activity = this.activity(grantCard(g, Date.now()), `Grant ${g.method} ${g.host} (rule ${g.rule})`);
    if (g.teams !== null) return this.update(g.teams, activity);
    // Only a fresh grant is posted: a use racing its announcement must not post a second card.
    if (g.usesLeft !== g.uses || g.revokedAt !== null) return;
    const approval = await this.approvals.get(g.approvalId);
    const conversation = approval?.teamsConversation ?? this.config.defaultConversation;
    if (!conversation) return;
    const ref = await this.post(conversation, activity);
    if (ref !== null) await this.approvals.setGrantMessage(g.id, 'teams', ref);
  }

  /** The clicker's principal name, from Teams (the connector), checked against the authenticated object id. */
  private async clicker(a: ActionActivity, oid: string): Promise<Clicker> {
    const cached = this.accounts.get(oid);
    if (cached && cached.until > Date.now()) return { oid, upn: cached.upn };
    const conversation = String(a.conversation?.id ?? '').split(';')[0]!;
    const api = this.app.api.fromServiceUrl({ serviceUrl: String(a.serviceUrl) });
    const account = await api.conversations.getMemberById(conversation, String(a.from?.id ?? ''));
    if (account.aadObjectId?.toLowerCase() !== oid) throw new Error('Teams returned another account than the one that clicked');
    const upn = (account.userPrincipalName ?? account.email ?? null)?.toLowerCase() ?? null;
    this.accounts.set(oid, { upn, until: Date.now() + CACHE_MS });
    return { oid, upn };
  }

  /** Named in the rule's approver groups by object id or principal name, or as an API approver by that name. */
  private mayDecide(eligible: Eligible, who: Clicker): boolean {
    const teams = eligible.teams ?? [];
    if (teams.includes(who.oid) || (who.upn !== null && teams.includes(who.upn))) return true;
    return who.upn !== null && eligible.api.some((a) => a.toLowerCase() === who.upn);
  }

  private async onAction(a: ActionActivity): Promise<InvokeAnswer> {
    const action = a.value?.action;
    const verb = action?.verb;
    const data = (action?.data ?? {}) as Record<string, unknown>;
    const oid = typeof a.from?.aadObjectId === 'string' ? a.from.aadObjectId.toLowerCase() : null;
    if (oid === null) return errorAnswer(403, 'Only people signed in with an Entra ID account may decide.');
    if (verb === VERB.revokeGrant) return this.revoke(a, oid, String(data.grantId ?? ''));
    const id = typeof data.approvalId === 'string' ? data.approvalId : '';
    const record = await this.approvals.get(id);
    if (record === null) return errorAnswer(404, 'This approval no longer exists.');
    if (verb === VERB.refresh) return cardAnswer(approvalCard(record, { now: Date.now(), editableHeaders: this.editable(record) }));
    let who: Clicker;
    try {
      who = await this.clicker(a, oid);
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'could not read a Teams clicker\'s account');
      return errorAnswer(503, 'Airlock could not read your Teams account, so nothing was decided. Try again.');
    }
    const policy = this.policy();
    const allowed = this.mayDecide(asVotedOn(policy, record).eligible, who);
    // API approvers are named by email: one person is one approver whichever way they decide.
    const name = who.upn !== null ? approverNameFor(policy, who.upn) : `teams:${oid}`;
    const refusal = (r: ApprovalRecord, approver: string): string | null => {
      if (!this.mayDecide(asVotedOn(policy, r).eligible, who) || !allowed) return `you are not an approver of rule ${asDecided(r).rule}`;
      return selfApproval(r, approver) ?? (who.upn !== null ? selfApproval(r, who.upn) : null);
    };
    let outcome: VoteOutcome;
    switch (verb) {
      case VERB.approve:
        outcome = await this.approvals.vote(id, name, 'approve', null, refusal);
        break;
      case VERB.deny: {
        const reason = typeof data.reason === 'string' && data.reason.trim() !== '' ? data.reason.trim().slice(0, 1000) : null;
        outcome = await this.approvals.vote(id, name, 'deny', reason, refusal);
        break;
      }
      case VERB.edit: {
        const edit = editFromCard(data, asDecided(record).request, this.editable(record));
        if (typeof edit === 'string') return errorAnswer(400, edit);
        outcome = await this.approvals.approveWithEdit(id, name, edit, policy, this.redecide, refusal);
        break;
      }
      case VERB.grant:
        return this.approveAndGrant(record, name, data, refusal);
      default:
        return errorAnswer(400, `Unknown action ${String(verb)}.`);
    }
    return outcome.ok ? cardAnswer(approvalCard(outcome.record, { now: Date.now(), editableHeaders: this.editable(outcome.record) })) : errorAnswer(outcome.status, outcome.message);
  }

  private async approveAndGrant(record: ApprovalRecord, name: string, data: Record<string, unknown>, refusal: (r: ApprovalRecord, approver: string) => string | null): Promise<InvokeAnswer> {
    const ask = grantAsk(this.policy(), record, grantFromCard(data));
    if ('error' in ask) return errorAnswer(400, ask.error);
    const outcome = await this.approvals.vote(record.id, name, 'approve', null, refusal);
    if (!outcome.ok) return errorAnswer(outcome.status, outcome.message);
    const made = await this.approvals.grant(outcome.record, name, ask);
    if (!made.ok) this.log.info({ approval_id: record.id, reason: made.message }, 'Teams: approved without a grant');
    return cardAnswer(approvalCard(outcome.record, { now: Date.now(), editableHeaders: this.editable(outcome.record) }));
  }

  private async revoke(a: ActionActivity, oid: string, grantId: string): Promise<InvokeAnswer> {
    const grant = (await this.approvals.listGrants()).find((g) => g.id === grantId);
    if (!grant) return errorAnswer(404, 'This grant can no longer be used.');
    let who: Clicker;
    try {
      who = await this.clicker(a, oid);
    } catch {
      return errorAnswer(503, 'Airlock could not read your Teams account, so nothing was revoked. Try again.');
    }
    const policy = this.policy();
    const name = who.upn !== null ? approverNameFor(policy, who.upn) : `teams:${oid}`;
    const deciders = eligibleFor(policy, policy.rules.find((r) => r.id === grant.rule)?.approval?.approvers ?? []);
    if (name !== grant.by && !this.mayDecide(deciders, who)) return errorAnswer(403, `You are not an approver of rule ${grant.rule}.`);
    const revoked = await this.approvals.revokeGrant(grant.id, name);
    return revoked === null ? errorAnswer(404, 'This grant can no longer be used.') : cardAnswer(grantCard(revoked, Date.now()));
  }
}

/** The parts of an `adaptiveCard/action` invoke read here. */
interface ActionActivity extends ActivityHead {
  from?: { id?: unknown; aadObjectId?: unknown } | null;
  conversation?: { id?: unknown; tenantId?: unknown } | null;
  value?: { action?: { verb?: unknown; data?: unknown } | null } | null;
}
