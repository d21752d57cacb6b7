/**
 * Approving with edits: an approver changes the held request before approving it. Three kinds of
 * change, each checked here before anything is evaluated:
 *
 * - `body`: a JSON Patch (RFC 6902) applied to the JSON body (fast-json-patch; `test` operations too);
 * - `query`: parameters to set (a string) or remove (null), by exact name, other parameters untouched;
 * - `headers`: headers to set or remove, only those the rule lists in `approval.editableHeaders`.
 *
 * The result is a new stored request (content-length recomputed) that is then canonicalized and
 * evaluated again by the caller; its digest is what the approval is bound to from then on.
 */
import jsonPatch, { type Operation } from 'fast-json-patch';
import { hasControlChar } from '../request/canonicalize.js';
import { requestDigest } from './request.js';
import type { StoredRequest } from './types.js';

const { applyPatch, validate } = jsonPatch;

export interface EditSpec {
  body?: Operation[];
  query?: Record<string, string | null>;
  headers?: Record<string, string | null>;
}

export type EditResult = { ok: true; request: StoredRequest; digest: string } | { ok: false; message: string };

/** Most operations, parameters or headers one edit may carry. */
const MAX_CHANGES = 100;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function pairsOf(query: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(query)) if (!out.has(k)) out.set(k, v);
  return out;
}

/**
 * The query edit a form asks for when it showed `shown` and got `given` back: the parameters that
 * changed or went (null), or null when nothing did.
 */
export function queryChanges(shown: string, given: string): Record<string, string | null> | null {
  const query = given.trim().replace(/^\?/, '');
  if (query === shown) return null;
  const before = pairsOf(shown);
  const after = pairsOf(query);
  const changes: Record<string, string | null> = {};
  for (const [k, v] of after) if (before.get(k) !== v) changes[k] = v;
  for (const k of before.keys()) if (!after.has(k)) changes[k] = null;
  return Object.keys(changes).length > 0 ? changes : null;
}

/** The edit as sent (untrusted JSON), checked for shape; or why it is not one. */
export function parseEdit(value: unknown): EditSpec | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'edit must be an object with body, query and/or headers';
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (!['body', 'query', 'headers'].includes(key)) return `edit has an unknown field "${key}" (body, query, headers)`;
  const out: EditSpec = {};
  if (v.body !== undefined) {
    if (!Array.isArray(v.body) || v.body.length === 0) return 'edit.body must be a non-empty JSON Patch (an array of operations)';
    if (v.body.length > MAX_CHANGES) return `edit.body has more than ${MAX_CHANGES} operations`;
    const invalid = validate(v.body as Operation[]);
    if (invalid) return `edit.body is not a valid JSON Patch: ${invalid.message.split('\n')[0]} (operation ${Number(invalid.index) + 1})`;
    out.body = v.body as Operation[];
  }
  for (const field of ['query', 'headers'] as const) {
    const m = v[field];
    if (m === undefined) continue;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return `edit.${field} must be an object of names to values (null removes)`;
    const entries = Object.entries(m as Record<string, unknown>);
    if (entries.length === 0 || entries.length > MAX_CHANGES) return `edit.${field} must name between 1 and ${MAX_CHANGES} ${field === 'query' ? 'parameters' : 'headers'}`;
    for (const [name, val] of entries) {
      if (val !== null && typeof val !== 'string') return `edit.${field}.${name} must be a string, or null to remove it`;
      if (field === 'headers' && !TOKEN.test(name)) return `edit.headers: "${name}" is not a header name`;
      if (field === 'headers' && typeof val === 'string' && hasControlChar(val)) return `edit.headers.${name} holds a control character`;
    }
    out[field] = m as Record<string, string | null>;
  }
  if (out.body === undefined && out.query === undefined && out.headers === undefined) return 'edit changes nothing: give body, query and/or headers';
  return out;
}

function mediaType(headers: readonly string[]): string {
  const i = headers.indexOf('content-type');
  return i >= 0 && i % 2 === 0 ? (headers[i + 1] ?? '').split(';')[0]!.trim().toLowerCase() : '';
}

function isJson(type: string): boolean {
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function paramName(pair: string): string {
  const raw = pair.split('=', 1)[0]!.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The query with named parameters replaced, removed or added; every other pair kept byte for byte. */
function editQuery(query: string, changes: Record<string, string | null>): string {
  const pairs = query === '' ? [] : query.split('&');
  const out: string[] = [];
  const placed = new Set<string>();
  for (const pair of pairs) {
    const name = paramName(pair);
    if (!Object.hasOwn(changes, name)) out.push(pair);
    else if (changes[name] !== null && !placed.has(name)) {
      out.push(`${encodeURIComponent(name)}=${encodeURIComponent(changes[name]!)}`);
      placed.add(name);
    }
  }
  for (const [name, value] of Object.entries(changes)) {
    if (value !== null && !placed.has(name)) out.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  return out.join('&');
}

function editHeaders(headers: readonly string[], changes: Record<string, string | null>): string[] {
  const lower = new Map(Object.entries(changes).map(([k, v]) => [k.toLowerCase(), v]));
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (!lower.has(headers[i]!)) out.push(headers[i]!, headers[i + 1]!);
  for (const [name, value] of lower) if (value !== null) out.push(name, value);
  return out;
}

/** `request` with `edit` applied, or why it cannot be. `editableHeaders`: lower-case names the rule allows. */
export function applyEdit(request: StoredRequest, edit: EditSpec, editableHeaders: readonly string[]): EditResult {
  let body = Buffer.from(request.body, 'base64');
  let headers = request.headers;
  if (edit.headers !== undefined) {
    const refused = Object.keys(edit.headers).find((h) => !editableHeaders.includes(h.toLowerCase()));
    if (refused !== undefined) {
      const allowed = editableHeaders.length > 0 ? `editable: ${editableHeaders.join(', ')}` : 'the rule makes no header editable';
      return { ok: false, message: `header "${refused}" is not editable on this request (${allowed})` };
    }
    headers = editHeaders(headers, edit.headers);
  }
  if (edit.body !== undefined) {
    if (!isJson(mediaType(request.headers))) return { ok: false, message: 'only a JSON body can be edited (its content-type is not JSON)' };
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      return { ok: false, message: 'the body is not valid JSON, so it cannot be patched' };
    }
    try {
      doc = applyPatch(doc, edit.body, true, false, true).newDocument;
    } catch (err) {
      return { ok: false, message: `the patch does not apply: ${(err as Error).message.split('\n')[0]}` };
    }
    body = Buffer.from(JSON.stringify(doc));
  }
  // The body's length is Airlock's to state, whatever was edited.
  const framed = headers.flatMap((v, i, all) => (i % 2 === 0 && v !== 'content-length' ? [v, all[i + 1]!] : []));
  const hadLength = headers.some((v, i) => i % 2 === 0 && v === 'content-length');
  if (body.length > 0 || hadLength) framed.push('content-length', String(body.length));
  const edited: StoredRequest = {
    ...request,
    query: edit.query === undefined ? request.query : editQuery(request.query, edit.query),
    headers: framed,
    body: body.toString('base64'),
  };
  return { ok: true, request: edited, digest: requestDigest(edited) };
}
