import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { policyJsonSchema } from '../../src/policy/schema.js';
import { fieldReference, HEAD_FILE, policyReferenceText, REFERENCE_FILE } from '../../src/policy/write-reference.js';

describe('docs/policy-reference.md', () => {
  it('is generated from the head file and the current zod schema (run `npm run docs`)', async () => {
    const head = await readFile(HEAD_FILE, 'utf8');
    assert.equal(await readFile(REFERENCE_FILE, 'utf8'), policyReferenceText(head));
  });

  it('lists every field of the schema, nested ones included', () => {
    const text = fieldReference();
    for (const heading of ['### Top level', '### `defaults`', '### `classification`', '### `identities.<name>`',
      '### `approvers.<name>`', '### `routes[]`', '### `tls`', '### `destinations`', '### `rules[]`', '### `rules[].match`',
      '### `rules[].match.headers.<name>`', '### `rules[].match.classification`', '### `rules[].approval`', '### `tests[]`',
      '### `tests[].request`']) {
      assert.ok(text.includes(`\n${heading}\n`), heading);
    }
    const top = Object.keys((policyJsonSchema() as { properties: Record<string, unknown> }).properties);
    for (const key of top) assert.match(text, new RegExp(`^\\| \\[?\`${key}\``, 'm'), key);
    assert.match(text, /^\| `mode` \| string \| `enforce` \| `enforce`, `report` \|/m);
    assert.match(text, /^\| `wait` \| string \| `55s` \|/m);
  });

  it('shows types, defaults, enums and descriptions, and escapes table cells', () => {
    const text = fieldReference({
      type: 'object',
      description: 'Root.',
      required: ['a'],
      properties: {
        a: { type: 'string', enum: ['x', 'y'], description: 'A | B.' },
        b: { type: 'integer', minimum: 1, maximum: 9, default: 3, description: 'Bee.' },
        c: { anyOf: [{ type: 'string', pattern: '^a|b$' }, { type: 'null' }], description: 'Sea.' },
        d: { type: 'array', items: { type: 'object', properties: { e: { type: 'boolean', description: 'E.' } } }, description: 'Dee.' },
      },
    }, {});
    assert.match(text, /^\| `a` \| string \| required \| `x`, `y` \| A \\\| B\. \|$/m);
    assert.match(text, /^\| `b` \| integer \| `3` \| 1–9 \| Bee\. \|$/m);
    assert.match(text, /^\| `c` \| string or null \| — \| matches `\^a\\\|b\$` \| Sea\. \|$/m);
    assert.match(text, /^\| \[`d`\]\(#d\) \| list of object \| — \| {2}\| Dee\. \|$/m);
    assert.match(text, /^### `d\[\]`\n\nDee\.\n\n\| field/m);
    assert.throws(() => fieldReference({ type: 'object', properties: { a: { type: 'string', description: 'A.' } } }, { a: 'Other.' }), /described in the schema/);
    assert.throws(() => fieldReference({ type: 'object', properties: {} }, { gone: 'G.' }), /not a field/);
    assert.match(text, /^\| `e` \| boolean \| — \| {2}\| E\. \|$/m);
  });
});
