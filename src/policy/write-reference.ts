/**
 * docs/policy-reference.md = docs/policy-reference.head.md (hand-written semantics and examples) +
 * a field reference generated here from the policy file's JSON Schema (schema.ts), so the reference
 * cannot drift from what Airlock validates. `npm run docs` writes the file; a unit test checks that the
 * committed file is current.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { policyJsonSchema } from './schema.js';

/** A JSON Schema node as zod 4 emits it (draft-07). Only what the reference shows is typed. */
interface Node {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  pattern?: string;
  format?: string;
  minLength?: number;
  minItems?: number;
  minimum?: number;
  maximum?: number;
  items?: Node;
  properties?: Record<string, Node>;
  required?: string[];
  propertyNames?: Node;
  additionalProperties?: Node | boolean;
  anyOf?: Node[];
}

/**
 * Descriptions for fields whose schema has none. Each entry must name a field that exists and has no
 * `description` in the schema (the generator throws otherwise), so once schema.ts describes a field its
 * entry here has to go: there is never a second, diverging text.
 */
const SUPPLEMENTARY: Record<string, string> = {
  defaults: 'Policy-wide defaults.',
  'classification.header': 'Request header that carries the level.',
  identities: 'Who may call through the proxy, by identity id.',
  'identities.<name>.groups': 'Groups this identity belongs to, referenced by rules as `group:NAME`.',
  approvers: 'Approver groups, by name.',
  rules: 'The rules. Rule ids are unique across all files.',
  'rules[].description': 'What the rule is for; the reason given when the rule has no `reason`.',
  'tests[].request': 'The request to decide.',
  'tests[].request.method': 'HTTP method (upper-cased).',
  'tests[].request.headers': 'Header name to value.',
  'tests[].expect': 'The action the request must get.',
};

/** Patterns shown by name instead of as a regular expression. Unknown patterns are shown as they are. */
const PATTERN_NAMES: Record<string, string> = {
  '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$': 'an id: 1–128 letters, digits, `.`, `_`, `-`, starting with a letter or digit',
  "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$": 'an HTTP token (RFC 9110)',
  '^[1-9][0-9]{0,8}(?:ms|s|m|h|d)$': 'a duration: a positive whole number and `ms`, `s`, `m`, `h` or `d`',
  '^sha256:[0-9a-f]{64}$': '`sha256:` and 64 lower-case hex digits',
  '^\\/.*': 'starts with `/`',
};

interface Row {
  path: string;
  name: string;
  node: Node;
  required: boolean;
}

interface Section {
  path: string;
  description: string | undefined;
  rows: Row[];
}

/** Markdown inline code, safe inside a table cell whatever the text holds. */
function code(text: string): string {
  const fence = text.includes('`') ? '``' : '`';
  const pad = text.includes('`') ? ' ' : '';
  return `${fence}${pad}${text.replaceAll('|', '\\|')}${pad}${fence}`;
}

/** Text for a table cell: no line breaks, pipes escaped (outside code spans, which escape their own). */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/(?<!\\)\|/g, '\\|');
}

function nonNull(node: Node): { node: Node; nullable: boolean } {
  if (node.anyOf === undefined) return { node, nullable: false };
  const rest = node.anyOf.filter((n) => n.type !== 'null');
  // Alternatives of different kinds (a string, a map or a list) are listed by kind.
  if (rest.length > 1) {
    const kinds = rest.map((n) => (n.type === 'array' ? 'list' : isMap(n) ? 'map' : String(n.type ?? 'any')));
    return { node: { type: kinds, description: node.description, default: node.default }, nullable: rest.length < node.anyOf.length };
  }
  const inner = { ...rest[0]!, description: node.description ?? rest[0]!.description, default: node.default ?? rest[0]!.default };
  return { node: inner, nullable: rest.length < node.anyOf.length };
}

function isMap(node: Node): boolean {
  return node.type === 'object' && node.properties === undefined && typeof node.additionalProperties === 'object';
}

function typeOf(raw: Node): string {
  const { node, nullable } = nonNull(raw);
  let t: string;
  if (node.const !== undefined) t = code(JSON.stringify(node.const));
  else if (node.type === 'array') t = `list of ${typeOf(node.items ?? {})}`;
  else if (isMap(node)) t = `map: ${node.propertyNames?.pattern === undefined ? 'string' : 'name'} → ${typeOf(node.additionalProperties as Node)}`;
  // A union of scalar types is written as a list of type names (`["string", "number", …]`).
  else if (Array.isArray(node.type)) t = node.type.join(' or ');
  else t = node.type ?? 'any';
  return nullable ? `${t} or null` : t;
}

/** Allowed values and constraints of a node (for lists and maps: of their entries). */
function allowed(raw: Node): string {
  const { node } = nonNull(raw);
  const parts: string[] = [];
  if (node.const !== undefined) parts.push(code(JSON.stringify(node.const)));
  if (node.enum !== undefined) parts.push(node.enum.map((v) => code(String(v))).join(', '));
  if (node.pattern !== undefined) parts.push(PATTERN_NAMES[node.pattern] ?? `matches ${code(node.pattern)}`);
  if (node.minLength !== undefined && node.pattern === undefined) parts.push('not empty');
  const max = node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
  if (node.minimum !== undefined && max !== undefined) parts.push(`${node.minimum}–${max}`);
  else if (node.minimum !== undefined) parts.push(`at least ${node.minimum}`);
  if (node.type === 'array') {
    if (node.minItems !== undefined) parts.push(`at least ${node.minItems} ${node.minItems === 1 ? 'entry' : 'entries'}`);
    const inner = allowed(node.items ?? {});
    if (inner !== '') parts.push(`each: ${inner}`);
  }
  if (isMap(node)) {
    const key = node.propertyNames === undefined ? '' : allowed(node.propertyNames);
    if (key !== '') parts.push(`names: ${key}`);
    const value = allowed(node.additionalProperties as Node);
    if (value !== '') parts.push(`values: ${value}`);
  }
  return parts.join('; ');
}

function describe(path: string, node: Node, supplementary: Record<string, string>): string {
  const own = node.description ?? nonNull(node).node.description;
  const extra = supplementary[path];
  if (own !== undefined && extra !== undefined) {
    throw new Error(`${path} is described in the schema now: remove its entry from SUPPLEMENTARY in write-reference.ts`);
  }
  return own ?? extra ?? '';
}

/** The object schema a field's entries have, if any: an object, a list of objects, or a map of objects. */
function objectOf(raw: Node): { node: Node; suffix: string } | undefined {
  const { node } = nonNull(raw);
  if (node.type === 'object' && node.properties !== undefined) return { node, suffix: '' };
  if (node.type === 'array' && node.items !== undefined) {
    const inner = objectOf(node.items);
    return inner && { node: inner.node, suffix: `[]${inner.suffix}` };
  }
  if (isMap(node)) {
    const inner = objectOf(node.additionalProperties as Node);
    return inner && { node: inner.node, suffix: `.<name>${inner.suffix}` };
  }
  return undefined;
}

/** Every object in the schema, depth first in schema order, each with its fields. */
function sections(root: Node, supplementary: Record<string, string>): { sections: Section[]; seen: Set<string> } {
  const out: Section[] = [];
  const seen = new Set<string>();
  const walk = (path: string, node: Node, description: string | undefined) => {
    const required = new Set(node.required ?? []);
    const rows: Row[] = [];
    const nested: [string, Node, string][] = [];
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const childPath = path === '' ? name : `${path}.${name}`;
      seen.add(childPath);
      rows.push({ path: childPath, name, node: child, required: required.has(name) });
      const obj = objectOf(child);
      if (obj !== undefined) {
        const objPath = childPath + obj.suffix;
        seen.add(objPath);
        nested.push([objPath, obj.node, describe(childPath, child, supplementary)]);
      }
    }
    out.push({ path, description, rows });
    for (const [p, n, d] of nested) walk(p, n, d);
  };
  walk('', root, undefined);
  return { sections: out, seen };
}

function defaultOf(row: Row): string {
  const { node } = nonNull(row.node);
  const value = row.node.default ?? node.default;
  if (value !== undefined) return code(typeof value === 'string' ? value : JSON.stringify(value));
  return row.required ? 'required' : '—';
}

function table(section: Section, supplementary: Record<string, string>): string {
  const lines = ['| field | type | default | allowed values | description |', '|---|---|---|---|---|'];
  for (const row of section.rows) {
    const name = objectOf(row.node) === undefined ? code(row.name) : `[${code(row.name)}](#${anchor(section.path === '' ? row.name : row.path, row.node)})`;
    lines.push(`| ${name} | ${cell(typeOf(row.node))} | ${defaultOf(row)} | ${cell(allowed(row.node))} | ${cell(describe(row.path, row.node, supplementary))} |`);
  }
  return lines.join('\n');
}

/** GitHub's heading anchor for the section of a field that holds objects. */
function anchor(path: string, node: Node): string {
  const heading = path + (objectOf(node)?.suffix ?? '');
  return heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The generated part of docs/policy-reference.md: a table per object of the policy file schema. */
export function fieldReference(schema: Record<string, unknown> = policyJsonSchema(), supplementary = SUPPLEMENTARY): string {
  const { sections: all, seen } = sections(schema as Node, supplementary);
  for (const path of Object.keys(supplementary)) {
    if (!seen.has(path)) throw new Error(`SUPPLEMENTARY names ${path}, which is not a field of the policy schema`);
  }
  const parts = [
    '<!-- Generated from src/policy/schema.ts by `npm run docs`; edit the schema or docs/policy-reference.head.md, not this section. -->',
    '',
    '## Field reference',
    '',
    '"default" is the value used when the field is left out; "required" fields must be given; "—" means',
    'the field is optional and has no default value. For lists and maps, "allowed values" applies to',
    'each entry. Every object is strict: a key not listed here is an error.',
  ];
  for (const s of all) {
    parts.push('', s.path === '' ? '### Top level' : `### ${code(s.path)}`, '');
    const description = s.path === '' ? (schema as Node).description : s.description;
    if (description) parts.push(description, '');
    parts.push(table(s, supplementary));
  }
  return parts.join('\n') + '\n';
}

/** The whole of docs/policy-reference.md, from the hand-written head and the schema. */
export function policyReferenceText(head: string, schema?: Record<string, unknown>): string {
  return head.trimEnd() + '\n\n' + fieldReference(schema);
}

export const HEAD_FILE = fileURLToPath(new URL('../../docs/policy-reference.head.md', import.meta.url));
export const REFERENCE_FILE = fileURLToPath(new URL('../../docs/policy-reference.md', import.meta.url));

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await writeFile(REFERENCE_FILE, policyReferenceText(await readFile(HEAD_FILE, 'utf8')));
  console.log(`wrote ${REFERENCE_FILE}`);
}
