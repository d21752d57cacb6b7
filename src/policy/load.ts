/**
 * Loading a policy folder: read the files, parse YAML keeping positions, validate each file against
 * the schema, then compile them together. Every problem comes back as `file:line:col message`
 * pointing at the offending node, so an operator can fix a policy without guessing.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document } from 'yaml';
import type { z } from 'zod';
import { PolicyFolder, type PolicySource } from './folder.js';
import { compilePolicy, type Locate, type ParsedPolicyFile, type YamlPath } from './compile.js';
import { policyJsonSchema, PolicyFileSchema } from './schema.js';
import type { CompiledPolicy, PolicyError, SourcePosition } from './types.js';

export type { PolicySource };

export type LoadResult =
  | { ok: true; policy: CompiledPolicy; warnings: PolicyError[] }
  | { ok: false; errors: PolicyError[]; warnings: PolicyError[] };

/** Load every policy file in `dir` (see PolicyFolder for which files those are). */
export async function loadPolicyDir(dir: string): Promise<LoadResult> {
  // Read as it is now (the CLI checks what the operator just wrote): no waiting for the files to settle.
  const read = await new PolicyFolder(dir, 0).read();
  if (!read.ok) return { ok: false, errors: [read.error], warnings: [] };
  if ('retryInMs' in read) return { ok: false, errors: [{ file: dir, line: 0, col: 0, message: 'a policy file changed while it was read' }], warnings: [] };
  return loadPolicySources(read.sources);
}

/** The pure half of loading: parse, validate and compile sources given as text. */
export function loadPolicySources(sources: readonly PolicySource[]): LoadResult {
  if (sources.length === 0) return { ok: false, errors: [{ file: '(policy)', line: 0, col: 0, message: 'no policy files given' }], warnings: [] };
  // Load order is file-name order (code units, not locale): it decides ties between equal actions.
  const sorted = [...sources].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const errors: PolicyError[] = [];
  const warnings: PolicyError[] = [];
  const parsed: ParsedPolicyFile[] = [];
  for (const source of sorted) {
    const result = parseSource(source);
    errors.push(...result.errors);
    warnings.push(...result.warnings);
    if (result.file) parsed.push(result.file);
  }
  if (errors.length > 0) return { ok: false, errors: inFileOrder(errors), warnings: inFileOrder(warnings) };
  const compiled = compilePolicy(parsed, policyVersion(sorted));
  const allWarnings = inFileOrder([...warnings, ...compiled.warnings]);
  return compiled.ok
    ? { ok: true, policy: compiled.policy, warnings: allWarnings }
    : { ok: false, errors: inFileOrder(compiled.errors), warnings: allWarnings };
}

/** Reading order: by file, then line and column, as an editor would list them. */
function inFileOrder(problems: PolicyError[]): PolicyError[] {
  return problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col));
}

/** Short content hash over names and contents: the same files give the same version wherever they are mounted. */
function policyVersion(sources: readonly PolicySource[]): string {
  const hash = createHash('sha256');
  for (const s of sources) hash.update(`${path.basename(s.file)}\0${s.text}\0`);
  return hash.digest('hex').slice(0, 12);
}

interface ParseOutcome {
  file: ParsedPolicyFile | null;
  errors: PolicyError[];
  warnings: PolicyError[];
}

function parseSource({ file, text }: PolicySource): ParseOutcome {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => ({ file, ...lineCounter.linePos(offset) });
  const errors: PolicyError[] = doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message }));
  const warnings: PolicyError[] = doc.warnings.map((w) => ({ ...at(w.pos[0]), message: w.message }));
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) !== undefined) return;
      const hint = node.source.startsWith('.') ? `; quote host patterns that start with "*" ("*${node.source}")` : '';
      errors.push({ ...at(node.range?.[0] ?? 0), message: `unknown YAML alias "*${node.source}"${hint}` });
    },
  });
  if (errors.length > 0) return { file: null, errors, warnings };
  if (doc.contents === null) {
    return { file: null, errors: [{ file, line: 1, col: 1, message: 'the file is empty; a policy file starts with version: 1' }], warnings };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { file: null, errors: [{ file, line: 1, col: 1, message: (err as Error).message }], warnings };
  }
  const locate = makeLocator(doc, at, file);
  const result = PolicyFileSchema.safeParse(data);
  if (!result.success) return { file: null, errors: result.error.issues.flatMap((issue) => issueErrors(issue, data, locate)), warnings };
  return { file: { file, data: result.data, locate }, errors: [], warnings };
}

function makeLocator(doc: Document, at: (offset: number) => SourcePosition, file: string): Locate {
  return (target, mode = 'value') => {
    let node: unknown = doc.contents;
    let best: unknown = node;
    let key: unknown = null;
    let found = 0;
    for (const segment of target) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(segment));
        if (!pair) break;
        key = pair.key;
        node = pair.value;
        // `key:` with no value has no (or an empty null) value node: point at the key.
        const empty = pair.value == null || (isScalar(pair.value) && pair.value.value === null && pair.value.source === '');
        best = empty ? pair.key : pair.value;
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] != null) {
        key = null;
        node = node.items[segment];
        best = node;
      } else {
        break;
      }
      found++;
    }
    const chosen = mode === 'key' && found === target.length && key !== null ? key : best;
    const range = (chosen as { range?: [number, number, number] } | null)?.range;
    return range ? at(range[0]) : { file, line: 1, col: 1 };
  };
}

/** `rules[0].match.methods` */
function formatPath(p: YamlPath): string {
  return p.reduce<string>((s, seg) => (typeof seg === 'number' ? `${s}[${seg}]` : s ? `${s}.${seg}` : seg), '');
}

function issueErrors(issue: z.core.$ZodIssue, data: unknown, locate: Locate): PolicyError[] {
  const p = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
  const where = formatPath(p);
  const prefix = where ? `${where}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(p);
    return issue.keys.map((key) => {
      const suggestion = closest(key, known);
      const hint = suggestion ? ` (did you mean "${suggestion}"?)` : known.length ? ` (expected one of: ${known.join(', ')})` : '';
      return { ...locate([...p, key], 'key'), message: `${prefix}unknown key "${key}"${hint}` };
    });
  }
  if (issue.code === 'invalid_key') {
    return [{ ...locate(p, 'key'), message: `${prefix}${issue.issues[0]?.message ?? issue.message}` }];
  }
  const last = p[p.length - 1];
  const parent = valueAt(data, p.slice(0, -1));
  if (last !== undefined && isPlainObject(parent) && !Object.hasOwn(parent, last)) {
    return [{ ...locate(p), message: `${formatPath(p.slice(0, -1)) || 'file'}: missing required key "${last}"` }];
  }
  // Name the offending value: with many similar lines, "got \"alow\"" finds the typo faster than a position.
  const value = valueAt(data, p);
  const got = ['string', 'number', 'boolean'].includes(typeof value) ? JSON.stringify(value) : null;
  if (issue.code === 'invalid_value') {
    const expected = issue.values.map((v) => String(v)).join(', ');
    return [{ ...locate(p), message: `${prefix}expected ${issue.values.length > 1 ? 'one of ' : ''}${expected}${got ? `, got ${got}` : ''}` }];
  }
  const detail = got && issue.code !== 'invalid_type' ? ` (got ${got})` : '';
  return [{ ...locate(p), message: `${prefix}${issue.message.replace(/^Invalid input: /, '')}${detail}` }];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function valueAt(data: unknown, p: YamlPath): unknown {
  let node = data;
  for (const seg of p) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

type JsonSchemaNode = { properties?: Record<string, JsonSchemaNode>; items?: JsonSchemaNode; additionalProperties?: JsonSchemaNode | boolean; anyOf?: JsonSchemaNode[] };
let jsonSchema: JsonSchemaNode | null = null;

/** The keys allowed at `p`, read from the JSON Schema so suggestions can never drift from the schema. */
function knownKeys(p: YamlPath): string[] {
  jsonSchema ??= policyJsonSchema() as JsonSchemaNode;
  let node: JsonSchemaNode | undefined = jsonSchema;
  for (const seg of p) {
    if (!node) return [];
    node = node.anyOf?.find((n) => n.properties || n.items || typeof n.additionalProperties === 'object') ?? node;
    if (typeof seg === 'number') node = node.items;
    else node = node.properties?.[seg] ?? (typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined);
  }
  return Object.keys(node?.properties ?? {});
}

/** The known key a typo most likely meant: same letters ignoring case, or at most two edits away. */
function closest(typo: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.min(2, Math.floor(typo.length / 2)) + 1;
  for (const k of known) {
    const d = k.toLowerCase() === typo.toLowerCase() ? 0 : editDistance(typo, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
