/**
 * The bot's own token for calling the Bot Framework connector (posting and updating cards, reading a
 * clicker's account): OAuth 2.0 client credentials at the bot's tenant's Entra ID token endpoint
 * (openid-client), scope `https://api.botframework.com/.default`. Tokens are kept until five minutes
 * before they expire; concurrent callers share one request.
 */
import * as client from 'openid-client';
import { isLoopbackHttp, secureUrl } from '../../net/secure-url.js';

export const BOT_FRAMEWORK_SCOPE = 'https://api.botframework.com/.default';
const EARLY_MS = 5 * 60_000;

export function defaultTokenUrl(tenantId: string): string {
  return `https://login.microsoftonline.com/${encodeURIComponent(tenantId)}/oauth2/v2.0/token`;
}

export class ClientCredentials {
  private readonly config: client.Configuration;
  private readonly tokens = new Map<string, { token: string; until: number }>();
  private readonly pending = new Map<string, Promise<string>>();

  constructor(appId: string, secret: string, tokenUrl: string) {
    const url = secureUrl(tokenUrl, 'the Teams token endpoint (TEAMS_TOKEN_URL)');
    this.config = new client.Configuration({ issuer: url.origin, token_endpoint: url.href }, appId, secret);
    if (isLoopbackHttp(url)) client.allowInsecureRequests(this.config);
  }

  /** A token for `scope` (the SDK asks for the Bot Framework's). */
  token(scope: string | string[] = BOT_FRAMEWORK_SCOPE): Promise<string> {
    const key = Array.isArray(scope) ? scope.join(' ') : scope;
    const cached = this.tokens.get(key);
    if (cached && cached.until > Date.now()) return Promise.resolve(cached.token);
    let p = this.pending.get(key);
    if (!p) {
      p = client
        .clientCredentialsGrant(this.config, { scope: key })
        .then((t) => {
          this.tokens.set(key, { token: t.access_token, until: Date.now() + (t.expires_in ?? 3600) * 1000 - EARLY_MS });
          return t.access_token;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }
}
