/**
 * The text detectors scan, built from what a request sends: its query parameters and its body as the
 * upstream will read them. A JSON body is scanned member by member after JSON decoding (so `\u0034111…`
 * is the digit it stands for, and a private key's escaped newlines are newlines), each string or long
 * integer as `key: value` so that rules reading a name beside a value (`aws_secret_access_key: …`)
 * still can; a form body field by field after URL decoding; any other body as text. Each piece keeps
 * its place, so a finding can say where it was — a JSON Pointer, `form:NAME`, `query:NAME` or
 * `offset:N` — without repeating the value. Places are only spelled out for findings.
 */
import type { InspectedBody } from './body.js';

/** A place: a JSON member (`parent` its container's place, -1 the root) or a named field (`parent` -2). */
interface Places {
  readonly parent: readonly number[];
  readonly key: readonly (string | number)[];
}

export interface ScanText {
  /** The pieces, separated by newlines. */
  readonly text: string;
  /** Where each piece starts in `text`, ascending. */
  readonly starts: readonly number[];
  /** Each piece's place in `places`; -1 for a body scanned as text (its findings are given as offsets). */
  readonly pieces: readonly number[];
  readonly places: Places;
}

/** Nothing any detector finds is shorter (`a@b.io`): shorter pieces are not worth scanning. */
const SHORTEST_FINDING = 6;
const ROOT = -1;
const NAMED = -2;
const TEXT = -1;

class Builder {
  private readonly parts: string[] = [];
  readonly starts: number[] = [];
  readonly pieces: number[] = [];
  readonly places = { parent: [] as number[], key: [] as (string | number)[] };
  private length = 0;

  place(parent: number, key: string | number): number {
    this.places.parent.push(parent);
    this.places.key.push(key);
    return this.places.parent.length - 1;
  }

  add(place: number, piece: string): void {
    if (piece.length < SHORTEST_FINDING) return;
    this.starts.push(this.length);
    this.pieces.push(place);
    this.parts.push(piece);
    this.length += piece.length + 1;
  }

  build(): ScanText {
    return { text: this.parts.join('\n'), starts: this.starts, pieces: this.pieces, places: this.places };
  }
}

/** Integers this large could be card numbers written as JSON numbers; smaller ones cannot be anything detected. */
const LONG_NUMBER = 1e12;

/** A member's value as scanned text, or null for a container or something too short to matter. */
function scalarText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && Math.abs(value) >= LONG_NUMBER) return String(value);
  return null;
}

function addJson(b: Builder, place: number, value: unknown): void {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const s = scalarText(v);
      if (s !== null) {
        if (s.length >= SHORTEST_FINDING) b.add(b.place(place, i), s);
      } else if (v !== null && typeof v === 'object') addJson(b, b.place(place, i), v);
    }
  } else if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      const s = scalarText(v);
      // Keys carry data too (`{"4111 1111 1111 1111": …}`), and give a value its context.
      if (s !== null) {
        if (s.length >= SHORTEST_FINDING || k.length >= SHORTEST_FINDING) b.add(b.place(place, k), `${k}: ${s}`);
      } else if (v !== null && typeof v === 'object') {
        const p = b.place(place, k);
        b.add(p, k);
        addJson(b, p, v);
      } else if (k.length >= SHORTEST_FINDING) b.add(b.place(place, k), k);
    }
  } else {
    // A body that is a bare JSON string or number: its findings are offsets.
    const s = scalarText(value);
    if (s !== null) b.add(TEXT, s);
  }
}

function addPairs(b: Builder, prefix: string, encoded: string): void {
  for (const [name, value] of new URLSearchParams(encoded)) b.add(b.place(NAMED, `${prefix}${placeKey(name)}`), `${name}: ${value}`);
}

/** The scan text of a request: its query string `rawQuery`, and its body (`text`, seen as `body`). */
export function scanTextOf(rawQuery: string, body: InspectedBody, text: string, mediaType: string): ScanText {
  const b = new Builder();
  if (rawQuery !== '') addPairs(b, 'query:', rawQuery);
  if (body.json !== null) addJson(b, ROOT, body.json.value);
  else if (mediaType === 'application/x-www-form-urlencoded') addPairs(b, 'form:', text);
  else b.add(TEXT, text);
  return b.build();
}

/** The index of the piece `offset` falls in. */
export function pieceAt(scan: ScanText, offset: number): number {
  const { starts } = scan;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * A key as part of a place. Places are shown to people and written to the audit trail, so a key that
 * could itself be what was found (long, four digits in a row, an `@`) is shown as `…`.
 */
function placeKey(key: string): string {
  if (key.length > 40 || /\d{4}|@/.test(key)) return '…';
  return key.includes('~') || key.includes('/') ? key.replace(/~/g, '~0').replace(/\//g, '~1') : key;
}

/** Deep nesting makes long pointers: the end says most. */
const MAX_PLACE = 200;

/** The place of `offset` in the scan text, as a finding reports it. */
export function placeOf(scan: ScanText, offset: number): string {
  const piece = pieceAt(scan, offset);
  let at = scan.pieces[piece] ?? TEXT;
  if (at === TEXT) return `offset:${offset - (scan.starts[piece] ?? 0)}`;
  const { parent, key } = scan.places;
  if (parent[at] === NAMED) return String(key[at]);
  const keys: string[] = [];
  for (; at !== ROOT; at = parent[at]!) {
    const k = key[at]!;
    keys.push(typeof k === 'number' ? String(k) : placeKey(k));
  }
  const pointer = `/${keys.reverse().join('/')}`;
  return pointer.length > MAX_PLACE ? `…${pointer.slice(-MAX_PLACE)}` : pointer;
}
