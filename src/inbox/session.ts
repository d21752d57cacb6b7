/**
 * The inbox's cookies: values signed with HMAC-SHA256 under a key derived from the state key, so any
 * approvals replica accepts a session another one opened, and nobody without the key can forge one.
 * Sessions are HttpOnly, SameSite=Lax (the identity provider redirects back with a GET), Secure when
 * the inbox is served over https, and carry the CSRF token every form must echo.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Session {
  email: string;
  name: string;
  /** The identity provider's groups of this person (matched against approver groups' idpGroups). */
  groups: string[];
  /** Echoed by every state-changing form. */
  csrf: string;
  /** Expiry, ms since the epoch. */
  exp: number;
}

export const SESSION_COOKIE = 'airlock_session';
export const LOGIN_COOKIE = 'airlock_login';
export const SESSION_MS = 8 * 60 * 60 * 1000;

export class CookieSigner {
  constructor(private readonly key: Buffer) {}

  sign(value: object): string {
    const body = Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  /** The signed value if the signature holds and it has not expired (`exp`), else null. */
  verify<T extends { exp: number }>(cookie: string | undefined, now: number): T | null {
    if (cookie === undefined) return null;
    const dot = cookie.lastIndexOf('.');
    if (dot <= 0) return null;
    const body = cookie.slice(0, dot);
    const given = Buffer.from(cookie.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.mac(body), 'base64url');
    if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
    try {
      const value = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as T;
      return typeof value.exp === 'number' && value.exp > now ? value : null;
    } catch {
      return null;
    }
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

export function newSession(email: string, name: string, groups: readonly string[], now: number): Session {
  return { email, name, groups: [...groups], csrf: randomBytes(24).toString('base64url'), exp: now + SESSION_MS };
}

/** The cookies of a request, by name (the first of each). */
export function cookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

export function setCookie(name: string, value: string, opts: { secure: boolean; maxAgeS: number }): string {
  return `${name}=${value}; Path=/inbox; HttpOnly; SameSite=Lax; Max-Age=${opts.maxAgeS}${opts.secure ? '; Secure' : ''}`;
}
