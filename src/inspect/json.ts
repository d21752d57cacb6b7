// JSON bodies as rules see them: paths into the document, and the duplicate-key check. Pure.
//
// A path is a JSON Pointer (RFC 6901: `/items/0/rows`, `~1` for `/` and `~0` for `~` in a key),
// with one addition: a segment `*` stands for every element of an array (or every member of an
// object), so `/items/*/rows` addresses the `rows` of every item. The empty path is the whole document.

/** Path segments; `null` is the `*` wildcard (plain data: compiled policies are cloned across threads). */
export type JsonPath = readonly (string | null)[];

export function parseJsonPath(text: string): JsonPath | { error: string } {
  if (text === '') return [];
  if (!text.startsWith('/')) return { error: `JSON path "${text}" must be empty or start with "/" (a JSON Pointer, RFC 6901)` };
  const segments: (string | null)[] = [];
  for (const raw of text.slice(1).split('/')) {
    if (/~[^01]|~$/.test(raw)) return { error: `JSON path "${text}": "~" must be followed by 0 (for ~) or 1 (for /)` };
    segments.push(raw === '*' ? null : raw.replaceAll('~1', '/').replaceAll('~0', '~'));
  }
  return segments;
}

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/** Every value `path` addresses in `doc` (several through wildcards; none when it leads nowhere). */
export function valuesAt(doc: unknown, path: JsonPath): unknown[] {
  let current: unknown[] = [doc];
  for (const seg of path) {
    const next: unknown[] = [];
    for (const node of current) {
      if (node === null || typeof node !== 'object') continue;
      if (Array.isArray(node)) {
        if (seg === null) next.push(...node);
        else if (ARRAY_INDEX.test(seg) && Number(seg) < node.length) next.push(node[Number(seg)]);
      } else if (seg === null) {
        next.push(...Object.values(node));
      } else if (Object.hasOwn(node, seg)) {
        next.push((node as Record<string, unknown>)[seg]);
      }
    }
    current = next;
  }
  return current;
}

/**
 * The first key that appears twice in one object of `text` (already known to be valid JSON), or
 * null. JSON.parse keeps the last copy; other parsers keep the first or refuse the document, so an
 * inspected document with a repeated key is read two ways.
 */
export function duplicateKey(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x22 /* " */) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c /* \ */ ? 2 : 1;
      const keys = stack[stack.length - 1];
      if (keys) {
        // A string directly inside an object is a key when a colon follows it.
        let j = end + 1;
        while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r')) j++;
        if (text[j] === ':') {
          const key = JSON.parse(text.slice(i, end + 1)) as string;
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = end;
    }
  }
  return null;
}
