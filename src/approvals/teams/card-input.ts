/**
 * What a card's forms sent back (`activity.value.action.data`: the inputs by id), read as an edit or
 * a grant. Untrusted: every value is checked here or by parseEdit / parseGrant after.
 */
import { parseEdit, queryChanges, type EditSpec } from '../edit.js';
import { headerOf } from '../present.js';
import type { StoredRequest } from '../types.js';
import { INPUT } from './card.js';

function text(data: Record<string, unknown>, id: string): string {
  const v = data[id];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

/**
 * The edit "Edit & approve…" asks for, against the request as it decides now (the card showed its
 * query and editable headers): only what changed is edited. A string says what is wrong.
 */
export function editFromCard(data: Record<string, unknown>, request: StoredRequest, editableHeaders: readonly string[]): EditSpec | string {
  const spec: Record<string, unknown> = {};
  const patch = text(data, INPUT.patch).trim();
  if (patch !== '') {
    try {
      spec.body = JSON.parse(patch) as unknown;
    } catch {
      return 'The body changes are not JSON: give a JSON Patch, an array of operations.';
    }
  }
  const query = queryChanges(request.query, text(data, INPUT.query));
  if (query !== null) spec.query = query;
  const headers: Record<string, string | null> = {};
  editableHeaders.forEach((name, i) => {
    if (!(INPUT.header(i) in data)) return;
    const given = text(data, INPUT.header(i)).trim();
    const now = given === '' ? null : given;
    if (now !== (headerOf(request.headers, name) ?? null)) headers[name] = now;
  });
  if (Object.keys(headers).length > 0) spec.headers = headers;
  if (Object.keys(spec).length === 0) return 'Nothing was changed: use Approve instead.';
  return parseEdit(spec);
}

/** The grant "Approve & grant…" asks for, as parseGrant reads it. */
export function grantFromCard(data: Record<string, unknown>): unknown {
  const pins = text(data, INPUT.grantPin).split('\n').map((l) => l.trim()).filter(Boolean);
  return { for: text(data, INPUT.grantFor), uses: Number(text(data, INPUT.grantUses)), pin: pins };
}
