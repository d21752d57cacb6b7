/**
 * What an approver should know before deciding, from facts Airlock has (no guessing): how big the
 * request is, how many records its top-level arrays carry, where it goes, its classification and why,
 * what detectors found, and how this identity's earlier requests under this rule were decided.
 * Computed once, when the approval is created, and kept with it.
 */
import type { CompiledPolicy } from '../policy/types.js';
import type { StoredRequest } from './types.js';

/** How many decisions of each kind, for one identity under one rule, in the window before this request. */
export interface History {
  approved: number;
  denied: number;
  expired: number;
}

export const HISTORY_WINDOW_MS = 30 * 24 * 60 * 60 * 1000;

export interface Impact {
  bodyBytes: number;
  /** Top-level arrays of a JSON body and their lengths (`""` when the body itself is an array). */
  arrays: { path: string; count: number }[];
  /** scheme://host:port, as dialled. */
  destination: string;
  classification: string | null;
  /** Why that classification: the header as sent (or its absence), and detectors that raised it. */
  classificationWhy: string | null;
  history: History;
}

const MAX_ARRAYS = 10;

function topLevelArrays(body: Buffer, headers: readonly string[]): Impact['arrays'] {
  const i = headers.indexOf('content-type');
  const type = i >= 0 && i % 2 === 0 ? (headers[i + 1] ?? '').split(';')[0]!.trim().toLowerCase() : '';
  if (!(type === 'application/json' || type.endsWith('+json')) || body.length === 0) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  if (Array.isArray(doc)) return [{ path: '', count: doc.length }];
  if (doc === null || typeof doc !== 'object') return [];
  return Object.entries(doc as Record<string, unknown>)
    .filter((e): e is [string, unknown[]] => Array.isArray(e[1]))
    .slice(0, MAX_ARRAYS)
    .map(([key, value]) => ({ path: `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, count: value.length }));
}

function classificationWhy(request: StoredRequest, policy: CompiledPolicy): string | null {
  const cc = policy.classification;
  if (cc === null) return null;
  const at = request.headers.findIndex((v, i) => i % 2 === 0 && v === cc.header);
  const parts = [at >= 0 ? `${cc.header}: ${request.headers[at + 1]}` : `no ${cc.header} header (counts as ${cc.missing})`];
  const raised = (request.findings ?? []).filter((f) => cc.detect.has(f.detector));
  if (raised.length > 0) parts.push(`detectors found ${raised.map((f) => `${f.detector} ×${f.count}`).join(', ')}`);
  return parts.join('; ');
}

export function impactOf(request: StoredRequest, policy: CompiledPolicy, history: History): Impact {
  const body = Buffer.from(request.body, 'base64');
  return {
    bodyBytes: body.length,
    arrays: topLevelArrays(body, request.headers),
    destination: `${request.scheme}://${request.host.includes(':') ? `[${request.host}]` : request.host}:${request.port}`,
    classification: request.classification,
    classificationWhy: classificationWhy(request, policy),
    history,
  };
}

/** One line for people: "first time" or the counts. */
export function describeHistory(h: History): string {
  const total = h.approved + h.denied + h.expired;
  if (total === 0) return 'first request of this identity under this rule in 30 days';
  return `in 30 days: ${h.approved} approved, ${h.denied} denied, ${h.expired} expired`;
}
