/**
 * Who is calling: proxy credentials (`HTTP_PROXY=http://ID:TOKEN@host:port` makes clients send
 * `Proxy-Authorization: Basic base64(ID:TOKEN)`), else the sidecar's static identity, else anonymous.
 * Pure: no I/O. Messages never contain the token.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { CompiledPolicy, Identity, IdentityConfig } from '../policy/types.js';

export type IdentifyResult = { ok: true; identity: Identity | null } | { ok: false; message: string };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const KNOWN_SCHEMES = new Set(['bearer', 'digest', 'negotiate', 'ntlm', 'hoba', 'mutual', 'oauth', 'dpop', 'gnap', 'privatetoken', 'scram-sha-1', 'scram-sha-256', 'vapid', 'aws4-hmac-sha256']);
const MALFORMED = 'malformed Proxy-Authorization header: expected Basic base64(id:token)';

/** "sha256:<hex>", what operators put in an identity's `tokens:`. */
export function hashToken(token: string): string {
  return `sha256:${sha256(token).toString('hex')}`;
}

/** Whether a caller without credentials must be refused with 407. */
export function credentialsRequired(staticIdentity: string | null, policy: CompiledPolicy): boolean {
  if (staticIdentity !== null) return false;
  for (const id of policy.identities.values()) if (id.tokenSha256.length > 0) return true;
  return false;
}

/**
 * `proxyAuthorization` is the raw Proxy-Authorization value(s) (string[] when sent more than once,
 * which is refused). Valid credentials win over the static identity; invalid ones are refused
 * even when a static identity is configured.
 */
export function identify(
  proxyAuthorization: string | string[] | undefined,
  staticIdentity: string | null,
  policy: CompiledPolicy,
): IdentifyResult {
  let header = proxyAuthorization;
  if (Array.isArray(header)) {
    if (header.length > 1) return { ok: false, message: 'more than one Proxy-Authorization header' };
    header = header[0];
  }
  if (header === undefined) {
    if (staticIdentity === null) return { ok: true, identity: null };
    const c = policy.identities.get(staticIdentity);
    // A static id missing from the policy is still that caller, just without owner or groups.
    return { ok: true, identity: c === undefined ? { id: staticIdentity, groups: [] } : publicIdentity(c) };
  }

  const value = header.trim();
  const space = value.indexOf(' ');
  const scheme = space < 0 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'basic') {
    // Named only when it is a known scheme: a client that sent a bare token must not see it echoed.
    const shown = KNOWN_SCHEMES.has(scheme.toLowerCase()) ? ` "${scheme}"` : '';
    return { ok: false, message: `unsupported Proxy-Authorization scheme${shown}: use Basic (HTTP_PROXY=http://ID:TOKEN@host:port)` };
  }
  const b64 = space < 0 ? '' : value.slice(space + 1).trim();
  if (!BASE64.test(b64) || b64.length % 4 !== 0) return { ok: false, message: MALFORMED };
  let decoded: string;
  try {
    decoded = utf8.decode(Buffer.from(b64, 'base64'));
  } catch {
    return { ok: false, message: MALFORMED };
  }
  const colon = decoded.indexOf(':');
  if (colon <= 0) return { ok: false, message: MALFORMED };
  const rawId = decoded.slice(0, colon);
  const rawToken = decoded.slice(colon + 1);

  // Some clients send the URL's userinfo still percent-encoded; others decode it first.
  const id = percentDecode(rawId) ?? rawId;
  const refused = { ok: false as const, message: `invalid proxy credentials for identity ${JSON.stringify(id.slice(0, 64))}` };
  const config = policy.identities.get(id);
  if (config === undefined) return refused;
  const decodedToken = percentDecode(rawToken);
  const candidates = [sha256(rawToken)];
  if (decodedToken !== null && decodedToken !== rawToken) candidates.push(sha256(decodedToken));
  for (const want of config.tokenSha256) {
    for (const got of candidates) {
      if (want.length === got.length && timingSafeEqual(want, got)) {
        return { ok: true, identity: publicIdentity(config) };
      }
    }
  }
  return refused;
}

/** The identity without its token digests, so they never travel into audit events or logs. */
function publicIdentity(c: IdentityConfig): Identity {
  return c.owner === undefined ? { id: c.id, groups: c.groups } : { id: c.id, owner: c.owner, groups: c.groups };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function percentDecode(s: string): string | null {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
