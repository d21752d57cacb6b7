/**
 * A request's body as the policy sees it, built once it has been read: the inspected view (JSON,
 * form, GraphQL, JSON-RPC), what the policy's detectors find in it, and the classification those
 * findings raise it to. Used by the proxy and by `policy test` / `policy explain` alike.
 */
import { inspectBody, mediaType } from '../inspect/body.js';
import { scanTextOf } from '../inspect/scan-text.js';
import { mayCarryOverride, multipartOverride, OVERRIDE_REFUSED, overrideField } from '../request/method-override.js';
import type { CanonicalRequest, CompiledPolicy } from './types.js';

export type BodyViewResult = { ok: true } | { ok: false; message: string };

/**
 * Set `req.body` from `bytes` (the whole body when `complete`, else its first `limit` bytes), and raise
 * `req.classification` to the highest level a detector's finding calls for. A body that could not be
 * read cannot be shown to be harmless: with detectors configured it counts as the highest level.
 */
export async function setBodyView(req: CanonicalRequest, bytes: Buffer, complete: boolean, policy: CompiledPolicy, limit: number): Promise<BodyViewResult> {
  const v = inspectBody(bytes, complete, req.headers, req.query, { limit, inspectedForm: policy.inspectedForm, graphql: policy.inspectsGraphql });
  if (!v.ok) return v;
  const override = formOverride(req, v.text, bytes);
  if (override !== null) return { ok: false, message: override };
  const cls = policy.classification;
  if (cls === null || cls.detect.size === 0) {
    req.body = v.body;
    return { ok: true };
  }
  if (v.text === null) {
    req.body = v.body;
    req.classification = cls.levels[cls.levels.length - 1]!;
    return { ok: true };
  }
  // The detectors (and the rule sets and metadata they load) are loaded only by policies that use them.
  const { detect } = await import('../inspect/detect.js');
  const findings = await detect(scanTextOf(req.query, v.body, v.text, mediaType(req.headers)), cls.detect);
  req.body = { ...v.body, findings };
  let rank = req.classification === null ? -1 : cls.levels.indexOf(req.classification);
  for (const f of findings) rank = Math.max(rank, cls.levels.indexOf(cls.detect.get(f.detector)!));
  if (rank >= 0) req.classification = cls.levels[rank]!;
  return { ok: true };
}

/**
 * Whether the body must be read before the request is decided whatever the rules say: a form, which
 * could carry a `_method` override, to a host whose exceptions do not allow overrides.
 */
export function bodyNeededForOverride(req: CanonicalRequest): boolean {
  if (req.exceptions.methodOverride || !mayCarryOverride(mediaType(req.headers))) return false;
  const cl = req.headers.get('content-length');
  return req.headers.get('transfer-encoding') !== undefined || (cl !== undefined && cl !== '0');
}

/** Why a form body is refused for its `_method` field, or null. */
function formOverride(req: CanonicalRequest, text: string | null, bytes: Buffer): string | null {
  if (!bodyNeededForOverride(req)) return null;
  const type = mediaType(req.headers);
  if (type === 'application/x-www-form-urlencoded') {
    // A form too large (or too encoded) to read could hide the field anywhere.
    if (text === null) return OVERRIDE_REFUSED('a form body Airlock cannot read in full (it could hold a _method field)');
    return overrideField(text) ? OVERRIDE_REFUSED('a _method form field') : null;
  }
  // Multipart: the parts Airlock read (an upload larger than the limit is read up to it).
  return multipartOverride(text ?? bytes.toString('latin1')) ? OVERRIDE_REFUSED('a _method form part') : null;
}
