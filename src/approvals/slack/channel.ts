import type { IncomingMessage, ServerResponse } from 'node:http';
import { App, LogLevel, type BlockAction, type ButtonAction } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Logger } from '../../log.js';
import type { CompiledPolicy } from '../../policy/types.js';
import { grantAsk, asVotedOn, eligibleFor, selfApproval, type ApprovalChannel, type ApprovalService, type Redecide } from '../service.js';
import { EDIT_ACTION, EDIT_BODY_BLOCK, EDIT_MODAL, editFromModal, editModal } from './edit-modal.js';
import { GRANT_ACTION, GRANT_FOR_BLOCK, GRANT_MODAL, GRANT_USES_BLOCK, grantFromModal, grantMessage, grantModal, REVOKE_GRANT_ACTION } from './grants.js';
import type { GrantState } from '../grants.js';
import { asDecided, type ApprovalRecord } from '../types.js';
import { SlackHttpReceiver } from './receiver.js';
import { Reachability } from '../reachability.js';
import {
  APPROVE_ACTION,
  DENY_ACTION,
  DENY_REASON_ACTION,
  DENY_REASON_BLOCK,
  DENY_REASON_INPUT,
  DENY_REASON_MODAL,
  approvalOutcomeMessage,
  approvalRequestMessage,
  denyReasonModal,
} from './message.js';

export interface SlackConfig {
  botToken: string;
  /** HTTP delivery (`POST /slack/events` on the admin listener). */
  signingSecret?: string;
  /** Socket Mode (no public URL): an app-level token, xapp-… */
  appToken?: string;
  /** Web API base URL (default Slack's own); tests point it at a local fake. */
  apiUrl?: string;
  /** Channel for rules that name none. */
  defaultChannel?: string;
}

/** Slack's own tolerance for request timestamps, in both directions (Bolt checks only the past). */
const MAX_SKEW_S = 300;
const CACHE_MS = 10 * 60 * 1000;
/** Slack errors that say "try again", as opposed to a mistake that another attempt repeats (channel_not_found, …). */
const TRANSIENT = new Set(['slack_webapi_http_error', 'slack_webapi_request_error', 'slack_webapi_rate_limited_error']);
const TRANSIENT_PLATFORM = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited']);

function transient(err: unknown): boolean {
  const e = err as { code?: string; data?: { error?: string } };
  if (e.code !== undefined && TRANSIENT.has(e.code)) return true;
  return e.code === 'slack_webapi_platform_error' && TRANSIENT_PLATFORM.has(e.data?.error ?? '');
}

/** Who clicked: their Slack id and, when Slack tells it, their email (how API approvers are named). */
interface Clicker {
  id: string;
  email: string | null;
}

/**
 * Approvals in Slack, on Bolt, delivered over HTTP or Socket Mode. New approvals are posted to the
 * rule's channel with Approve / Deny / Deny with reason; every change (a vote here or through the API,
 * an expiry, the execution) updates the message in place. Only approvers of the rule may click; the
 * requester, its owner and anyone else get an ephemeral explanation and nothing changes. Decisions go
 * through the approval service, so double clicks, replays and racing replicas are harmless.
 */
export class SlackChannel implements ApprovalChannel {
  readonly name = 'slack';
  private readonly app: App;
  private readonly receiver: SlackHttpReceiver | null;
  /** Whether Slack answered the last call (auth.test at start, then every post and update). */
  private readonly link: Reachability;
  private readonly emails = new Map<string, { email: string | null; until: number }>();
  private readonly groups = new Map<string, { members: Set<string>; until: number }>();
  /** Signatures of payloads already handled over HTTP: a replay within the timestamp window is ignored. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly config: SlackConfig,
    private readonly approvals: ApprovalService,
    /** The policy in force: who may decide is checked against it at every click. */
    private readonly policy: () => CompiledPolicy,
    private readonly log: Logger,
    /** Decides an edited request again (Edit & approve). */
    private readonly redecide: Redecide,
  ) {
    this.link = new Reachability(log, transient);
    const clientOptions = {
      ...(config.apiUrl ? { slackApiUrl: config.apiUrl } : {}),
      // Posting and updating are retried (Slack down, rate limits); a decision never waits on them.
      retryConfig: { retries: 5, factor: 2, minTimeout: 200, maxTimeout: 5000 },
    };
    // Token verification is Airlock's (start): Bolt's runs auth.test in the constructor and nobody
    // awaits it, so a Slack that is down at start would end the process with an unhandled rejection.
    const common = { token: config.botToken, clientOptions, logLevel: LogLevel.ERROR, tokenVerificationEnabled: false };
    if (config.appToken) {
      this.receiver = null;
      this.app = new App({ ...common, appToken: config.appToken, socketMode: true });
    } else {
      if (!config.signingSecret) throw new Error('Slack over HTTP needs SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)');
      this.receiver = new SlackHttpReceiver(config.signingSecret, log);
      this.app = new App({ ...common, receiver: this.receiver });
    }
    this.app.error(async (err) => this.log.warn({ err }, 'slack handler failed'));
    this.registerHandlers();
  }

  /**
   * Connects (Socket Mode) or checks the token (HTTP mode) in the background, retrying with backoff
   * while Slack is unreachable: a channel that is down never stops the proxy, and decisions go on
   * through the approvals API meanwhile. `up()` and `airlock_channel_up` tell.
   */
  start(): Promise<void> {
    this.link.connect(() => (this.receiver ? this.app.client.auth.test() : this.app.start()), 'Slack is not reachable; approvals go on through the API, retrying');
    return Promise.resolve();
  }

  up(): boolean {
    return this.link.up();
  }

  async stop(): Promise<void> {
    this.link.stop();
    if (!this.receiver) await this.app.stop().catch(() => undefined);
  }


  /** `POST /slack/events` on the admin listener (HTTP mode). */
  handleHttp(req: IncomingMessage, res: ServerResponse): void {
    if (!this.receiver) {
      res.writeHead(404).end();
      return;
    }
    const ts = Number(req.headers['x-slack-request-timestamp']);
    if (!Number.isFinite(ts) || Math.abs(Date.now() / 1000 - ts) > MAX_SKEW_S) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('stale or future request timestamp');
      return;
    }
    const signature = String(req.headers['x-slack-signature'] ?? '');
    const now = Date.now();
    for (const [sig, until] of this.seen) if (until < now) this.seen.delete(sig);
    if (this.seen.has(signature)) {
      // Answered, so Slack stops retrying; but a payload is acted on once.
      res.writeHead(200).end();
      return;
    }
    // Remembered only once Bolt has verified it: a forged signature must not block the real one.
    res.once('finish', () => {
      if (res.statusCode === 200 && signature) this.seen.set(signature, now + 2 * MAX_SKEW_S * 1000);
    });
    void this.receiver.handle(req, res);
  }

  async requested(r: ApprovalRecord): Promise<void> {
    const channel = r.channel ?? this.config.defaultChannel;
    if (!channel) {
      this.log.warn({ approval_id: r.id, rule: r.rule }, 'no Slack channel for this rule (approval.channel); decide it through the API');
      return;
    }
    const message = approvalRequestMessage(r, { now: Date.now() });
    // No unfurling and no link_names: nothing an agent wrote may turn into a preview or a mention.
    const posted = await this.link.call(() => this.app.client.chat.postMessage({ channel, ...message, unfurl_links: false, unfurl_media: false }));
    if (posted.ts && posted.channel) await this.approvals.setMessage(r.id, 'slack', { channel: posted.channel, ts: posted.ts });
  }

  /**
   * The escalation's group is asked: the request (with its buttons) is posted to the escalation's
   * channel, naming the people now asked; the original message is updated by `changed`.
   */
  async escalated(r: ApprovalRecord): Promise<void> {
    const channel = r.escalation?.channel ?? r.channel ?? this.config.defaultChannel;
    if (!channel) return;
    const message = approvalRequestMessage(r, { now: Date.now() });
    await this.link.call(() => this.app.client.chat.postMessage({ channel, ...message, unfurl_links: false, unfurl_media: false }));
  }

  /** A new grant is announced where its approval was asked; later changes update that message. */
  async grantChanged(g: GrantState): Promise<void> {
    const message = grantMessage(g, Date.now());
    if (g.slack !== null) {
      const ref = g.slack;
      await this.link.call(() => this.app.client.chat.update({ channel: ref.channel, ts: ref.ts, ...message }));
      return;
    }
    // Only a fresh grant is posted: a use racing its announcement must not post a second message.
    if (g.usesLeft !== g.uses || g.revokedAt !== null) return;
    const channel = (await this.approvals.get(g.approvalId))?.channel ?? this.config.defaultChannel;
    if (!channel) return;
    const posted = await this.link.call(() => this.app.client.chat.postMessage({ channel, ...message, unfurl_links: false, unfurl_media: false }));
    if (posted.ts && posted.channel) await this.approvals.setGrantMessage(g.id, 'slack', { channel: posted.channel, ts: posted.ts });
  }

  posted(r: ApprovalRecord): boolean {
    return r.slack !== null || (r.channel ?? this.config.defaultChannel) === undefined;
  }

  async changed(r: ApprovalRecord): Promise<void> {
    const ref = r.slack ?? (await this.approvals.get(r.id))?.slack;
    if (!ref) return;
    const message = r.state === 'pending' ? approvalRequestMessage(r, { now: Date.now() }) : approvalOutcomeMessage(r, { now: Date.now() });
    await this.link.call(() => this.app.client.chat.update({ channel: ref.channel, ts: ref.ts, ...message }));
  }

  private registerHandlers(): void {
    for (const [actionId, verdict] of [
      [APPROVE_ACTION, 'approve'],
      [DENY_ACTION, 'deny'],
    ] as const) {
      this.app.action<BlockAction<ButtonAction>>(actionId, async ({ ack, body, action, client }) => {
        await ack();
        await this.decide(client, action.value ?? '', body.user.id, verdict, null, body.channel?.id ?? null);
      });
    }
    this.app.action<BlockAction<ButtonAction>>(DENY_REASON_ACTION, async ({ ack, body, action, client }) => {
      await ack();
      const channel = body.channel?.id ?? '';
      const ts = body.message?.ts ?? '';
      await client.views.open({ trigger_id: body.trigger_id, view: denyReasonModal(action.value ?? '', channel, ts) });
    });
    this.app.action<BlockAction<ButtonAction>>(EDIT_ACTION, async ({ ack, body, action, client }) => {
      await ack();
      const record = await this.approvals.get(action.value ?? '');
      const channel = body.channel?.id ?? null;
      if (record === null || record.state !== 'pending') {
        if (channel) await client.chat.postEphemeral({ channel, user: body.user.id, text: `This request is already ${record?.state ?? 'gone'}.` });
        return;
      }
      const decided = asDecided(record);
      const editable = this.policy().rules.find((r) => r.id === decided.rule)?.approval?.editableHeaders ?? [];
      await client.views.open({ trigger_id: body.trigger_id, view: editModal(decided, editable, channel ?? '', body.message?.ts ?? '') });
    });
    this.app.view(EDIT_MODAL, async ({ ack, body, view, client }) => {
      const asked = editFromModal(view.state.values, view.private_metadata);
      if ('error' in asked) {
        await ack({ response_action: 'errors', errors: { [asked.block]: asked.error } });
        return;
      }
      const record = await this.approvals.get(asked.id);
      const clicker = await this.clicker(client, body.user.id);
      const allowed = record !== null && (await this.mayDecide(client, asVotedOn(this.policy(), record).eligible, clicker));
      const name = clicker.email ?? `slack:${body.user.id}`;
      // Whether the editor may decide the edited request too (its rule may have other approvers).
      const mayVote = (r: ApprovalRecord, approver: string): string | null =>
        allowed && this.mayDecideNow(r.eligible, clicker) ? selfApproval(r, approver) : `you are not an approver of rule ${r.rule}`;
      const outcome = await this.approvals.approveWithEdit(asked.id, name, asked.edit, this.policy(), this.redecide, mayVote);
      if (!outcome.ok) {
        await ack({ response_action: 'errors', errors: { [EDIT_BODY_BLOCK]: outcome.message.slice(0, 2000) } });
        return;
      }
      await ack();
    });
    this.app.action<BlockAction<ButtonAction>>(GRANT_ACTION, async ({ ack, body, action, client }) => {
      await ack();
      const record = await this.approvals.get(action.value ?? '');
      const channel = body.channel?.id ?? null;
      if (record === null || record.state !== 'pending' || record.grantCaps === null) {
        if (channel) await client.chat.postEphemeral({ channel, user: body.user.id, text: record?.state === 'pending' ? 'This rule allows no grants.' : `This request is already ${record?.state ?? 'gone'}.` });
        return;
      }
      await client.views.open({ trigger_id: body.trigger_id, view: grantModal(record, channel ?? '') });
    });
    this.app.view(GRANT_MODAL, async ({ ack, body, view, client }) => {
      const asked = grantFromModal(view.state.values, view.private_metadata);
      if ('error' in asked) {
        await ack({ response_action: 'errors', errors: { [asked.block]: asked.error } });
        return;
      }
      const record = await this.approvals.get(asked.id);
      if (record === null || record.state !== 'pending') {
        await ack({ response_action: 'errors', errors: { [GRANT_FOR_BLOCK]: `This request is already ${record?.state ?? 'gone'}.` } });
        return;
      }
      const ask = grantAsk(this.policy(), record, asked.grant);
      if ('error' in ask) {
        await ack({ response_action: 'errors', errors: { [ask.incomplete ? GRANT_FOR_BLOCK : GRANT_USES_BLOCK]: ask.error } });
        return;
      }
      const clicker = await this.clicker(client, body.user.id);
      const allowed = await this.mayDecide(client, asVotedOn(this.policy(), record).eligible, clicker);
      const name = clicker.email ?? `slack:${body.user.id}`;
      const outcome = await this.approvals.vote(asked.id, name, 'approve', null, (r, approver) => (allowed ? selfApproval(r, approver) : `you are not an approver of rule ${asDecided(r).rule}`));
      if (!outcome.ok) {
        await ack({ response_action: 'errors', errors: { [GRANT_FOR_BLOCK]: outcome.message.slice(0, 2000) } });
        return;
      }
      await ack();
      const made = await this.approvals.grant(outcome.record, name, ask);
      if (!made.ok && asked.channel) await client.chat.postEphemeral({ channel: asked.channel, user: body.user.id, text: `Approved, but no grant: ${made.message}` });
    });
    this.app.action<BlockAction<ButtonAction>>(REVOKE_GRANT_ACTION, async ({ ack, body, action, client }) => {
      await ack();
      const tell = async (text: string): Promise<void> => {
        if (body.channel?.id) await client.chat.postEphemeral({ channel: body.channel.id, user: body.user.id, text });
      };
      const grant = (await this.approvals.listGrants()).find((g) => g.id === action.value);
      if (!grant) return tell('This grant can no longer be used.');
      const clicker = await this.clicker(client, body.user.id);
      const name = clicker.email ?? `slack:${body.user.id}`;
      const settings = this.policy().rules.find((r) => r.id === grant.rule)?.approval;
      const deciders = eligibleFor(this.policy(), settings?.approvers ?? []);
      if (name !== grant.by && !(await this.mayDecide(client, deciders, clicker))) {
        return tell(`You are not an approver of rule ${grant.rule}.`);
      }
      if ((await this.approvals.revokeGrant(grant.id, name)) === null) await tell('This grant can no longer be used.');
    });
    this.app.view(DENY_REASON_MODAL, async ({ ack, body, view, client }) => {
      const reason = view.state.values[DENY_REASON_BLOCK]?.[DENY_REASON_INPUT]?.value?.trim() ?? '';
      if (reason === '') {
        await ack({ response_action: 'errors', errors: { [DENY_REASON_BLOCK]: 'Say why, so the agent and its owner know.' } });
        return;
      }
      await ack();
      const meta = JSON.parse(view.private_metadata) as { id: string; channel: string };
      await this.decide(client, meta.id, body.user.id, 'deny', reason, meta.channel || null);
    });
  }

  private async decide(client: WebClient, id: string, userId: string, verdict: 'approve' | 'deny', reason: string | null, channel: string | null): Promise<void> {
    const tell = async (text: string): Promise<void> => {
      if (channel) await client.chat.postEphemeral({ channel, user: userId, text });
    };
    const record = await this.approvals.get(id);
    if (!record) return tell('This approval no longer exists.');
    const clicker = await this.clicker(client, userId);
    const allowed = await this.mayDecide(client, asVotedOn(this.policy(), record).eligible, clicker);
    // API approvers are named by email: the same person is one approver whichever way they decide.
    const name = clicker.email ?? `slack:${userId}`;
    const outcome = await this.approvals.vote(id, name, verdict, reason, (r, approver) =>
      allowed ? selfApproval(r, approver) : `you are not an approver of rule ${asDecided(r).rule}`,
    );
    if (!outcome.ok) await tell(outcome.message);
  }

  /** mayDecide without asking Slack: listed by id or email, or in a user group already looked up. */
  private mayDecideNow(eligible: ApprovalRecord['eligible'], who: Clicker): boolean {
    for (const entry of eligible.slack) {
      if (entry === who.id) return true;
      if (entry.includes('@') && who.email !== null && entry.toLowerCase() === who.email) return true;
      if (/^S[A-Z0-9]+$/.test(entry) && this.cachedGroup(entry)?.has(who.id) === true) return true;
    }
    return who.email !== null && eligible.api.some((a) => a.toLowerCase() === who.email);
  }

  private async mayDecide(client: WebClient, eligible: ApprovalRecord['eligible'], who: Clicker): Promise<boolean> {
    if (this.mayDecideNow(eligible, who)) return true;
    const groups = eligible.slack.filter((entry) => /^S[A-Z0-9]+$/.test(entry));
    if (groups.length === 0) return false;
    for (const g of groups) await this.groupMembers(client, g);
    return this.mayDecideNow(eligible, who);
  }

  private cachedGroup(group: string): Set<string> | null {
    const cached = this.groups.get(group);
    return cached && cached.until > Date.now() ? cached.members : null;
  }


  private async clicker(client: WebClient, id: string): Promise<Clicker> {
    const cached = this.emails.get(id);
    if (cached && cached.until > Date.now()) return { id, email: cached.email };
    let email: string | null = null;
    try {
      const info = await client.users.info({ user: id });
      email = info.user?.profile?.email?.toLowerCase() ?? null;
    } catch (err) {
      this.log.warn({ err, user: id }, 'could not look up a Slack user; deciding on the user id alone');
    }
    this.emails.set(id, { email, until: Date.now() + CACHE_MS });
    return { id, email };
  }

  private async groupMembers(client: WebClient, group: string): Promise<Set<string>> {
    const cached = this.cachedGroup(group);
    if (cached) return cached;
    const res = await client.usergroups.users.list({ usergroup: group });
    const members = new Set(res.users ?? []);
    this.groups.set(group, { members, until: Date.now() + CACHE_MS });
    return members;
  }
}
