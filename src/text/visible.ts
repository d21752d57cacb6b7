/**
 * Text that came from an agent, made safe to show to a person (a terminal, a log viewer, Slack): what
 * a display would interpret or hide — C0/C1 controls, DEL, bidi overrides and isolates, zero-width and
 * other invisible formatting characters — is written as a visible `\u{…}` escape; and text too long to
 * show whole keeps its start and its end, with the length said, so nothing can hide at the end.
 */

/** Bidi marks, overrides and isolates, zero-width characters, soft hyphen, line/paragraph separators, BOM. */
function isFormatChar(c: number): boolean {
  return (
    c === 0x061c || c === 0x00ad || c === 0x180e || (c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) ||
    (c >= 0x2060 && c <= 0x206f) || c === 0xfeff || (c >= 0xfff9 && c <= 0xfffb)
  );
}

/** Whether code point `c` is something a display would interpret or not show. */
export function isInvisible(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || isFormatChar(c);
}

/** One character as shown: itself, or `\n`, `\t`, `\u{…}`; newlines and tabs kept when `multiline`. */
export function visibleChar(ch: string, multiline = false): string {
  if (multiline && (ch === '\n' || ch === '\t')) return ch;
  if (ch === '\n') return '\\n';
  if (ch === '\t') return '\\t';
  const c = ch.codePointAt(0)!;
  return isInvisible(c) ? `\\u{${c.toString(16)}}` : ch;
}

/** `s` with every invisible or interpreted character escaped. */
export function visible(s: string, multiline = false): string {
  let out = '';
  for (const ch of s) out += visibleChar(ch, multiline);
  return out;
}

/**
 * `pieces` (the shown form of each character) joined into at most `max` characters: when too long, the
 * start and the end are kept around `…`, followed by the length in characters, never splitting a piece.
 */
export function elideMiddle(pieces: readonly string[], max: number): string {
  let total = 0;
  for (const p of pieces) total += p.length;
  if (total <= max) return pieces.join('');
  const note = ` (${pieces.length} characters)`;
  const budget = Math.max(0, max - note.length - 1);
  let head = '';
  let i = 0;
  while (i < pieces.length && head.length + pieces[i]!.length <= Math.ceil(budget * 0.6)) head += pieces[i++]!;
  let tail = '';
  let j = pieces.length - 1;
  while (j >= i && head.length + tail.length + pieces[j]!.length <= budget) tail = pieces[j--]! + tail;
  return `${head}…${tail}${note}`;
}

/** `s` shown with `visible`, at most `max` characters, its middle elided when longer. */
export function visibleElided(s: string, max: number): string {
  return elideMiddle([...s].map((ch) => visibleChar(ch)), max);
}
