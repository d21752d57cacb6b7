/**
 * Path canonicalisation: one decoded form for matching and one encoded form for forwarding, so
 * that what the policy sees is exactly what the upstream receives (Envoy/Istio lessons: reject
 * %2F/%5C/%00, decode unreserved, merge slashes, resolve dot segments).
 */

import type { PathCharacter } from '../policy/exceptions.js';

export type PathResult = { ok: true; path: string; encodedPath: string } | { ok: false; message: string; status?: 414 };

/** Longer paths, or paths of more segments, are refused with 414: nothing legitimate needs them. */
export const MAX_PATH_LENGTH = 8192;
export const MAX_PATH_SEGMENTS = 256;

const NONE: ReadonlySet<PathCharacter> = new Set();

/**
 * Encoded characters that some upstreams decode before routing (`/admin%3Bx` is `/admin` to a server
 * that strips path parameters after decoding, `%3F` and `%23` end the path for one that decodes
 * first), and non-ASCII ones (fullwidth `ａｄｍｉｎ` is `admin` to one that normalises Unicode):
 * refused unless the policy's `exceptions` allow them for the host.
 */
const AMBIGUOUS: Readonly<Record<number, PathCharacter>> = { 0x3b: ';', 0x3f: '?', 0x23: '#' };

// Per-ASCII-byte class of a raw path character.
const FORBIDDEN = 0; // whitespace, controls, `\`, `#`, `?` (the caller splits the query off first)
const RAW = 1; // pchar or `/`: stays as is
const ENCODE = 2; // printable but not allowed raw in a path (`"<>[]^`{|}`): percent-encoded upstream
const PERCENT = 3;

const CLASS = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") {
  CLASS[c.charCodeAt(0)] = RAW;
}
for (const c of '"<>[]^`{|}') CLASS[c.charCodeAt(0)] = ENCODE;
// `/admin;x/secret` is `/admin/secret` to servers that strip path parameters (Tomcat, Spring) but
// not to a rule on `/admin/**`: a raw `;` is refused. (`%3B` is a literal semicolon to every server.)
const SEMICOLON = 0x3b;
CLASS[SEMICOLON] = FORBIDDEN;
CLASS[0x25] = PERCENT;

const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;

const HEX = '0123456789ABCDEF';
// A `%` left in the decoded path followed by two hex digits means the client double-encoded
// something: an upstream that decodes once more would see a different path than the policy did.
const DOUBLE_ENCODED = /%[0-9A-Fa-f]{2}/;

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * `raw` is the path part of a request target (no query, no fragment); it must start with `/`.
 * `allowed`: the encoded characters the host's exceptions let through.
 */
export function canonicalPath(raw: string, allowed: ReadonlySet<PathCharacter> = NONE): PathResult {
  if (raw.charCodeAt(0) !== SLASH) return { ok: false, message: 'path must start with "/"' };
  if (raw.length > MAX_PATH_LENGTH) return { ok: false, status: 414, message: `path is longer than ${MAX_PATH_LENGTH} characters` };
  let simple = true;
  const len = raw.length;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    const cls = c < 128 ? CLASS[c] : FORBIDDEN;
    if (cls === FORBIDDEN) return { ok: false, message: forbiddenMessage(c) };
    if (cls !== RAW) simple = false;
    else if (c === SLASH && simple && isSlashOrDotSegmentAt(raw, i + 1)) simple = false;
  }
  if (simple) return segmentCount(raw) > MAX_PATH_SEGMENTS ? tooManySegments() : { ok: true, path: raw, encodedPath: raw };
  const r = slowPath(raw, allowed);
  return r.ok && segmentCount(r.encodedPath) > MAX_PATH_SEGMENTS ? tooManySegments() : r;
}

function segmentCount(path: string): number {
  let n = 0;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) n++;
  return n;
}

function tooManySegments(): PathResult {
  return { ok: false, status: 414, message: `path has more than ${MAX_PATH_SEGMENTS} segments` };
}

/** True when the segment starting at `i` is empty (`//`) or `.`/`..`. */
function isSlashOrDotSegmentAt(raw: string, i: number): boolean {
  if (i >= raw.length) return false;
  const c = raw.charCodeAt(i);
  if (c === SLASH) return true;
  if (c !== DOT) return false;
  const end = i + 1 < raw.length && raw.charCodeAt(i + 1) === DOT ? i + 2 : i + 1;
  return end >= raw.length || raw.charCodeAt(end) === SLASH;
}

function forbiddenMessage(c: number): string {
  if (c === 0x5c) return 'path contains a backslash';
  if (c === SEMICOLON) return 'path contains ";" (path parameters are read differently by different servers; encode it as %3B)';
  if (c >= 128) return 'path contains a raw non-ASCII character (percent-encoded, it needs a policy exception for the host)';
  return 'path contains whitespace or a control character';
}

function slowPath(raw: string, allowed: ReadonlySet<PathCharacter>): PathResult {
  // 1. Re-encode canonically: unreserved decoded, other escapes upper-case, ENCODE chars escaped.
  let enc = '';
  const len = raw.length;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    const cls = CLASS[c];
    if (cls === RAW) {
      enc += raw[i];
    } else if (cls === ENCODE) {
      enc += `%${HEX[c >> 4]}${HEX[c & 15]}`;
    } else {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { ok: false, message: 'path contains an invalid percent escape' };
      const b = (hi << 4) | lo;
      const esc = `%${HEX[hi]}${HEX[lo]}`;
      if (b === SLASH) return { ok: false, message: 'path contains an encoded slash (%2F)' };
      if (b === 0x5c) return { ok: false, message: 'path contains an encoded backslash (%5C)' };
      if (b < 0x20 || b === 0x7f) return { ok: false, message: `path contains an encoded control character (${esc})` };
      const ambiguous = AMBIGUOUS[b] ?? (b >= 0x80 ? 'non-ascii' : undefined);
      if (ambiguous !== undefined && !allowed.has(ambiguous)) {
        const what = b >= 0x80 ? `an encoded non-ASCII character (${esc}…)` : `an encoded "${ambiguous}" (${esc})`;
        return { ok: false, message: `path contains ${what}, which some servers decode before routing; a policy exception can allow it for this host` };
      }
      enc += UNRESERVED[b] === 1 ? String.fromCharCode(b) : esc;
      i += 2;
    }
  }

  // 2. Merge slashes and resolve dot segments. `/` can never be encoded here, so segments are
  //    the same in the encoded and the decoded form.
  const parts = enc.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i] as string;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return { ok: false, message: 'path goes above the root ("..")' };
      out.pop();
    } else {
      out.push(seg);
    }
  }
  const last = parts[parts.length - 1];
  // RFC 3986 §5.2.4: a path ending in `/`, `/.` or `/..` still names a directory.
  const trailing = out.length > 0 && (last === '' || last === '.' || last === '..');
  const encodedPath = `/${out.join('/')}${trailing ? '/' : ''}`;

  // 3. Decode for matching; decodeURIComponent throws on invalid UTF-8 (overlong, surrogates, truncated).
  let path: string;
  try {
    path = decodeURIComponent(encodedPath);
  } catch {
    return { ok: false, message: 'path percent-encoding is not valid UTF-8' };
  }
  if (encodedPath.includes('%25') && DOUBLE_ENCODED.test(path)) {
    return { ok: false, message: 'path contains a double-encoded percent escape (%25XX)' };
  }
  return { ok: true, path, encodedPath };
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1; // also NaN past the end of the string
}
