/**
 * Who may deliver activities to the bot: the Bot Framework, and nobody else. Every incoming activity
 * carries a JWT that must be
 * - signed (RS256) by a key from the Bot Framework's OpenID metadata (its `jwks_uri`), and endorsed
 *   for the activity's channel (`msteams`) when the key lists endorsements;
 * - issued by `https://api.botframework.com` for this bot (audience: its app id), and not expired
 *   (five minutes of clock skew, as the Bot Framework allows);
 * - for the activity's own `serviceUrl` (its `serviceurl` claim): a token taken from one delivery
 *   cannot send replies elsewhere.
 * Entra ID tokens (another issuer), which the SDK also accepts for agentic identities, are refused:
 * clicks come from Teams through the Bot Framework only. The activity must also come from this
 * bot's tenant. The SDK checks the token again after this.
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import { secureUrl } from '../../net/secure-url.js';

export const BOT_FRAMEWORK_ISSUER = 'https://api.botframework.com';
export const BOT_FRAMEWORK_OPENID_METADATA = 'https://login.botframework.com/v1/.well-known/openidconfiguration';
const CLOCK_TOLERANCE_S = 300;
const METADATA_TTL_MS = 24 * 60 * 60 * 1000;

/** The parts of an activity the token is checked against. */
export interface ActivityHead {
  serviceUrl?: unknown;
  channelId?: unknown;
  conversation?: { tenantId?: unknown } | null;
  channelData?: { tenant?: { id?: unknown } | null } | null;
}

export type InboundCheck = { ok: true; claims: JWTPayload } | { ok: false; status: 401 | 403; why: string };

type KeySet = ReturnType<typeof createRemoteJWKSet>;

export class BotFrameworkAuth {
  private keys: { set: KeySet; until: number } | null = null;
  private loading: Promise<KeySet> | null = null;

  constructor(
    private readonly appId: string,
    private readonly tenantId: string,
    private readonly metadataUrl: string = BOT_FRAMEWORK_OPENID_METADATA,
  ) {
    secureUrl(metadataUrl, 'the Bot Framework OpenID metadata URL');
  }

  /** The key set named by the OpenID metadata, read again once a day. */
  private async keySet(): Promise<KeySet> {
    if (this.keys !== null && this.keys.until > Date.now()) return this.keys.set;
    this.loading ??= (async () => {
      try {
        const res = await fetch(this.metadataUrl, { signal: AbortSignal.timeout(10_000) });
        if (!res.ok) throw new Error(`the Bot Framework OpenID metadata answered ${res.status}`);
        const meta = (await res.json()) as { jwks_uri?: unknown };
        if (typeof meta.jwks_uri !== 'string') throw new Error('the Bot Framework OpenID metadata has no jwks_uri');
        const set = createRemoteJWKSet(secureUrl(meta.jwks_uri, 'the Bot Framework jwks_uri'), { cacheMaxAge: METADATA_TTL_MS, cooldownDuration: 5 * 60_000 });
        this.keys = { set, until: Date.now() + METADATA_TTL_MS };
        return set;
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async check(authorization: string | undefined, activity: ActivityHead): Promise<InboundCheck> {
    const m = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '');
    if (!m) return { ok: false, status: 401, why: 'no Bearer token' };
    const token = m[1]!;
    if (activity.channelId !== 'msteams') return { ok: false, status: 403, why: `channel ${String(activity.channelId)} is not Teams` };
    if (typeof activity.serviceUrl !== 'string' || activity.serviceUrl === '') return { ok: false, status: 401, why: 'the activity has no serviceUrl' };
    let keys: KeySet;
    try {
      keys = await this.keySet();
    } catch (err) {
      // Nobody can be authenticated without the keys: refused, as an unauthenticated request is.
      return { ok: false, status: 401, why: `signing keys unavailable: ${(err as Error).message}` };
    }
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, { issuer: BOT_FRAMEWORK_ISSUER, audience: this.appId, algorithms: ['RS256'], clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['exp'] }));
    } catch (err) {
      const why = err instanceof errors.JOSEError ? `${err.code}: ${err.message}` : (err as Error).message;
      return { ok: false, status: 401, why };
    }
    if (claims.serviceurl !== activity.serviceUrl) return { ok: false, status: 401, why: 'the token was issued for another serviceUrl' };
    const { kid } = decodeProtectedHeader(token);
    const key = keys.jwks()?.keys.find((k) => k.kid === kid) as { endorsements?: unknown } | undefined;
    if (Array.isArray(key?.endorsements) && !key.endorsements.includes('msteams')) return { ok: false, status: 401, why: 'the signing key is not endorsed for Teams' };
    // Every place the activity names its tenant must name this bot's: one field right and the other
    // wrong is refused, whichever of them a reader looks at.
    const named = [activity.conversation?.tenantId, activity.channelData?.tenant?.id].filter((t) => t !== undefined && t !== null);
    const ours = this.tenantId.toLowerCase();
    if (named.length === 0 || named.some((t) => typeof t !== 'string' || t.toLowerCase() !== ours)) {
      return { ok: false, status: 403, why: `the activity comes from tenant ${named.map(String).join(' / ') || '(none)'}, not this bot's (${this.tenantId})` };
    }
    return { ok: true, claims };
  }
}
