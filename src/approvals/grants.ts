/**
 * Bounded grants: an approver may approve a request and, with it, let the same identity do the same
 * action again for a while or a number of times — same rule, method, scheme, host and port, and the
 * same values in the fields the approver pins (a body JSON Pointer such as `/table`, or a query
 * parameter written `?name`). A rule caps what may be granted (`approval.grants`); nothing is ever
 * granted without an approver asking for it, and a grant past the cap is refused, never clamped.
 */
import jsonPatch from 'fast-json-patch';
import { duplicateKey } from '../inspect/json.js';
import type { SlackMessageRef, StoredRequest, TeamsMessageRef } from './types.js';

const { getValueByPointer } = jsonPatch;

export interface Grant {
  id: string;
  /** The approval it was given with. */
  approvalId: string;
  identity: string | null;
  rule: string;
  method: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** Pinned fields and the JSON text of the value each had in the approved request. */
  pins: { field: string; value: string }[];
  by: string;
  createdAt: number;
  expiresAt: number;
  /** Uses granted in all (the approved request itself is not one of them). */
  uses: number;
  /** MAC under the state key (state-seal.ts). */
  seal: string;
}

/** A grant with what is left of it, as stored. */
export interface GrantState extends Grant {
  usesLeft: number;
  revokedAt: number | null;
  revokedBy: string | null;
  /** The Slack message that announces it, once posted. */
  slack: SlackMessageRef | null;
  /** The Teams card that announces it, once posted. */
  teams: TeamsMessageRef | null;
}

export interface GrantAsk {
  durationMs: number;
  uses: number;
  pins: string[];
}

const MAX_PINS = 10;

/** The grant asked for in an approval (untrusted JSON) against the rule's caps, or why it cannot be. */
export function parseGrant(value: unknown, caps: { maxDurationMs: number; maxUses: number } | undefined, parseDuration: (s: string) => number | null): GrantAsk | string {
  if (caps === undefined) return 'this rule allows no grants (approval.grants)';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'grant must be an object: {"for": "30m", "uses": 3, "pin": ["/table"]}';
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) if (!['for', 'uses', 'pin'].includes(key)) return `grant has an unknown field "${key}" (for, uses, pin)`;
  if (typeof v.for !== 'string') return 'grant.for is required: a duration such as 30m';
  const durationMs = parseDuration(v.for);
  if (durationMs === null || durationMs <= 0) return `grant.for: expected a duration such as 30m, got "${v.for}"`;
  if (durationMs > caps.maxDurationMs) return `grant.for (${v.for}) is longer than this rule allows (${caps.maxDurationMs / 60_000} min)`;
  const uses = v.uses === undefined ? caps.maxUses : v.uses;
  if (typeof uses !== 'number' || !Number.isInteger(uses) || uses < 1) return 'grant.uses must be a whole number of at least 1';
  if (uses > caps.maxUses) return `grant.uses (${uses}) is more than this rule allows (${caps.maxUses})`;
  const pins = v.pin === undefined ? [] : v.pin;
  if (!Array.isArray(pins) || pins.length > MAX_PINS || pins.some((p) => typeof p !== 'string' || !(p.startsWith('/') || (p.startsWith('?') && p.length > 1)))) {
    return `grant.pin must be up to ${MAX_PINS} fields: body JSON Pointers ("/table") or query parameters ("?db")`;
  }
  return { durationMs, uses, pins: pins as string[] };
}

/**
 * The JSON body, or undefined when it has none or is read two ways: a repeated key is kept last by
 * JSON.parse and first by other parsers, so a pinned field in it would match what the upstream may not
 * see (the same check body rules make).
 */
function bodyJson(request: StoredRequest): unknown {
  const text = Buffer.from(request.body, 'base64').toString('utf8');
  try {
    const doc: unknown = JSON.parse(text);
    return duplicateKey(text) === null ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** What an approver may pick for a grant's duration (each offered up to the rule's cap). */
export const GRANT_DURATIONS: readonly [string, number][] = [
  ['15m', 15 * 60_000],
  ['30m', 30 * 60_000],
  ['1h', 60 * 60_000],
  ['4h', 4 * 60 * 60_000],
  ['8h', 8 * 60 * 60_000],
  ['24h', 24 * 60 * 60_000],
  ['7d', 7 * 24 * 60 * 60_000],
];

function words(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return `${Math.round(ms / 60_000)}m`;
}

/** The durations offered for a grant under a rule's cap, the cap itself included. */
export function grantDurationChoices(maxDurationMs: number): string[] {
  const options = GRANT_DURATIONS.filter(([, ms]) => ms <= maxDurationMs).map(([text]) => text);
  return options.includes(words(maxDurationMs)) ? options : [...options, words(maxDurationMs)];
}

function queryValue(query: string, name: string): string | undefined {
  for (const [k, v] of new URLSearchParams(query)) if (k === name) return v;
  return undefined;
}

/** The value of a pinned field in a request, as JSON text; undefined when it has none. */
function pinned(request: StoredRequest, field: string, body: () => unknown): string | undefined {
  if (field.startsWith('?')) {
    const v = queryValue(request.query, field.slice(1));
    return v === undefined ? undefined : JSON.stringify(v);
  }
  const doc = body();
  if (doc === undefined) return undefined;
  try {
    const v: unknown = getValueByPointer(doc, field);
    return v === undefined ? undefined : JSON.stringify(v);
  } catch {
    return undefined;
  }
}

/** The pins of a grant from the approved request, or why a field cannot be pinned (absent there). */
export function pinsOf(request: StoredRequest, fields: readonly string[]): Grant['pins'] | string {
  let doc: unknown;
  const body = (): unknown => (doc ??= bodyJson(request));
  const out: Grant['pins'] = [];
  for (const field of fields) {
    const value = pinned(request, field, body);
    if (value === undefined) return `cannot pin ${field}: the approved request has no such field`;
    out.push({ field, value });
  }
  return out;
}

/** Whether `request` (decided by `rule`) is covered by `grant`: same action, same pinned values. */
export function grantCovers(grant: Grant, rule: string | null, request: StoredRequest): boolean {
  if (grant.rule !== rule || grant.method !== request.method || grant.scheme !== request.scheme || grant.host !== request.host || grant.port !== request.port) return false;
  let doc: unknown;
  const body = (): unknown => (doc ??= bodyJson(request));
  return grant.pins.every((p) => pinned(request, p.field, body) === p.value);
}
