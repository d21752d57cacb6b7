/**
 * The scrubbing every audit event goes through before it is written: secrets (credentials,
 * tokens, cookies) must never reach the audit file.
 */
import { hash } from 'node:crypto';
import { visibleElided } from '../text/visible.js';
import type { AuditEvent } from './events.js';

/** Written instead of a secret query parameter's value. */
const REDACTED = 'REDACTED';

/**
 * Parameter names that look like they carry a secret. Substring match, case-insensitive: it errs
 * towards redacting too much (`author`, `zipcode` are redacted too), which is the safe side for an audit.
 */
const SECRET_PARAM = /token|key|secret|passw|pwd|auth|sig|session|code|credential|jwt|bearer|cookie|saml|ticket|assertion|otp/i;

/** `name=value` pairs; `;` counts as a separator too because some servers split on it. */
const PARAM = /([^&;=]*)=([^&;]*)/g;

function isSecretName(name: string): boolean {
  if (SECRET_PARAM.test(name)) return true;
  // An encoded name (`api%5Fkey`, `access+token`) must not slip through.
  if (!name.includes('%') && !name.includes('+')) return false;
  try {
    return SECRET_PARAM.test(decodeURIComponent(name.replace(/\+/g, ' ')));
  } catch {
    return false; // malformed %-escape: the raw name was already tested
  }
}

/**
 * Replaces the value of every query parameter whose name looks secret with `REDACTED`, keeping
 * every other byte as it was (order, encoding, parameters without `=`, a leading `?`).
 * Empty values stay empty: they hide nothing and show the parameter was sent blank.
 */
export function redactQuery(query: string): string {
  // Fast path for the common case: nothing that could be a secret name, encoded or not.
  if (query === '' || (!query.includes('%') && !SECRET_PARAM.test(query))) return query;
  return query.replace(PARAM, (pair: string, name: string, value: string) =>
    value !== '' && isSecretName(name) ? `${name}=${REDACTED}` : pair,
  );
}

/**
 * Field names dropped wherever they appear (any depth up to MAX_DEPTH), compared lower-cased with
 * `_` read as `-`. Exact names, not substrings: `token_count` or `reason` must survive.
 */
const SECRET_FIELDS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'token',
  'access-token',
  'refresh-token',
  'id-token',
  'password',
  'passwd',
  'secret',
  'client-secret',
  'api-key',
  'apikey',
  'x-api-key',
  'private-key',
  'credentials',
]);

/** Keys the sink writes itself; a caller's value would produce a duplicate key and confuse the chain. */
const RESERVED_FIELDS = new Set(['time', 'seq', 'prev', 'hash']);

/** Nesting deeper than this is written as-is (and bounds the walk on cyclic values). */
const MAX_DEPTH = 4;

/** Field names come from code, so there are few: remembering the verdict keeps scrubbing cheap per write. */
const fieldVerdicts = new Map<string, boolean>();

function isSecretField(key: string): boolean {
  let secret = fieldVerdicts.get(key);
  if (secret === undefined) {
    secret = SECRET_FIELDS.has(key.toLowerCase().replace(/_/g, '-'));
    // Bounded in case some caller passes data-derived keys (e.g. a header map).
    if (fieldVerdicts.size < 10_000) fieldVerdicts.set(key, secret);
  }
  return secret;
}

/** Redacts the query part of a URL-like string, leaving the rest untouched. */
function redactUrl(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q + 1) + redactQuery(url.slice(q + 1));
}

/** Longer string fields are written as their start and end (see `shown`), with their length and hash. */
const MAX_FIELD = 2048;

/** What a terminal or log viewer would interpret or hide (src/text/visible.ts): tested before any copy is made. */
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/;

/**
 * An agent-supplied string as the audit trail writes it: control, bidi and invisible characters
 * escaped (JSON escapes only C0), and, when longer than MAX_FIELD, its middle elided.
 */
function shown(s: string): string {
  if (s.length <= MAX_FIELD && !INVISIBLE.test(s)) return s;
  return visibleElided(s, MAX_FIELD);
}

/** Returns `value` itself when nothing needed scrubbing, otherwise a scrubbed copy (inputs are never mutated). */
function scrubValue(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const scrubbed = scrubValue(item, depth + 1);
      if (scrubbed !== item) (copy ??= value.slice())[i] = scrubbed;
    }
    return copy ?? value;
  }
  // Only plain objects are walked: Dates, Buffers, errors… are serialized as they are.
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const obj = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
    const item = obj[key];
    if (isSecretField(key) || (depth === 0 && RESERVED_FIELDS.has(key))) {
      copy ??= { ...obj };
      delete copy[key];
      continue;
    }
    let scrubbed: unknown;
    if (typeof item === 'string') {
      scrubbed = shown(key === 'query' ? redactQuery(item) : key === 'url' || key === 'target' ? redactUrl(item) : item);
      if (item.length > MAX_FIELD && depth === 0) {
        // What was cut is still identifiable: its length, and the hash of the whole value.
        copy ??= { ...obj };
        copy[`${key}_length`] = item.length;
        copy[`${key}_sha256`] = hash('sha256', item, 'hex');
      }
    } else {
      scrubbed = scrubValue(item, depth + 1);
    }
    if (scrubbed !== item) (copy ??= { ...obj })[key] = scrubbed;
  }
  return copy ?? obj;
}

/**
 * What the sink applies to every event: drops secret-named fields and the sink's own keys, redacts
 * secret query parameters in `query`, `url` and `target` fields, makes strings safe to read (invisible
 * characters escaped, long ones cut in the middle with `_length` and `_sha256` beside them).
 * Allocates only when something changes.
 */
export function scrubEvent(event: AuditEvent): AuditEvent {
  return scrubValue(event, 0) as AuditEvent;
}
