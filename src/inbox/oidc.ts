/**
 * Sign-in to the inbox with the organisation's OpenID Connect provider (authorization code with PKCE,
 * state and nonce; openid-client). The provider's metadata is fetched on first use and again after a
 * failure, so a provider that is down at start only delays sign-in. An approver is named by the
 * verified email the provider reports, as approver groups name API approvers.
 */
import * as client from 'openid-client';
import { isLoopbackHttp } from '../net/secure-url.js';

export interface OidcSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
}

/** What a sign-in in progress keeps until the provider sends the browser back. */
export interface LoginTransaction {
  state: string;
  nonce: string;
  verifier: string;
  /** Where to go once signed in (a path under /inbox). */
  next: string;
  exp: number;
}

export class OidcSignIn {
  private config: Promise<client.Configuration> | null = null;

  constructor(private readonly settings: OidcSettings) {}

  private configuration(): Promise<client.Configuration> {
    if (this.config === null) {
      const issuer = new URL(this.settings.issuer);
      // Plain http only for a provider on loopback (tests, local development).
      const insecure = isLoopbackHttp(issuer);
      this.config = client.discovery(issuer, this.settings.clientId, this.settings.clientSecret, undefined, insecure ? { execute: [client.allowInsecureRequests] } : undefined);
      this.config.catch(() => (this.config = null));
    }
    return this.config;
  }

  /** Where to send the browser, and what to keep (signed, in a cookie) until it comes back. */
  async start(redirectUri: string, next: string, now: number): Promise<{ url: string; transaction: LoginTransaction }> {
    const config = await this.configuration();
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, transaction: { state, nonce, verifier, next, exp: now + 10 * 60_000 } };
  }

  /** The signed-in person from the provider's answer, or an error saying why not. */
  async finish(callbackUrl: URL, t: LoginTransaction): Promise<{ email: string; name: string; groups: string[] }> {
    const config = await this.configuration();
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, { pkceCodeVerifier: t.verifier, expectedState: t.state, expectedNonce: t.nonce, idTokenExpected: true });
    const idToken = tokens.claims();
    if (idToken === undefined) throw new Error('the identity provider sent no ID token');
    // Providers may keep email and name out of the ID token: then they come from the userinfo endpoint.
    const claims: Record<string, unknown> = typeof idToken.email === 'string' ? idToken : await client.fetchUserInfo(config, tokens.access_token, idToken.sub);
    const email = typeof claims.email === 'string' ? claims.email.toLowerCase() : null;
    if (email === null) throw new Error('the identity provider sent no email for this account');
    if (claims.email_verified === false) throw new Error(`the identity provider has not verified ${email}`);
    const name = typeof claims.name === 'string' ? claims.name : email;
    const groups = Array.isArray(claims.groups) ? claims.groups.filter((g): g is string => typeof g === 'string') : [];
    return { email, name, groups };
  }
}
