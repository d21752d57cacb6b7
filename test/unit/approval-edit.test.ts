import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyEdit, parseEdit, type EditSpec } from '../../src/approvals/edit.js';
import { requestDigest } from '../../src/approvals/request.js';
import type { StoredRequest } from '../../src/approvals/types.js';

const body = JSON.stringify({ table: 'customers', rows: 5_000_000, columns: ['id', 'email'] });
const request: StoredRequest = {
  method: 'POST',
  scheme: 'https',
  host: 'data.example.com',
  port: 443,
  path: '/exports',
  encodedPath: '/exports',
  query: 'limit=all&q=a+b&name=%C3%A9',
  headers: ['content-type', 'application/json', 'x-export-format', 'csv', 'content-length', String(body.length), 'host', 'data.example.com'],
  body: Buffer.from(body).toString('base64'),
  classification: 'confidential',
};

function edited(spec: EditSpec, editable: string[] = []): StoredRequest {
  const r = applyEdit(request, spec, editable);
  assert.ok(r.ok, r.ok ? '' : r.message);
  assert.equal(r.digest, requestDigest(r.request));
  return r.request;
}
const bodyOf = (r: StoredRequest): unknown => JSON.parse(Buffer.from(r.body, 'base64').toString());
const header = (r: StoredRequest, name: string): string[] => r.headers.flatMap((v, i, all) => (i % 2 === 0 && v === name ? [all[i + 1]!] : []));

describe('applyEdit', () => {
  it('applies a JSON Patch to the body and states the new length', () => {
    const r = edited({ body: [{ op: 'test', path: '/table', value: 'customers' }, { op: 'replace', path: '/rows', value: 10_000 }, { op: 'remove', path: '/columns/1' }] });
    assert.deepEqual(bodyOf(r), { table: 'customers', rows: 10_000, columns: ['id'] });
    assert.deepEqual(header(r, 'content-length'), [String(Buffer.from(r.body, 'base64').length)]);
    assert.deepEqual(header(r, 'host'), ['data.example.com']);
  });

  it('refuses a patch whose test fails or whose path is missing, and a body that is not JSON', () => {
    for (const ops of [[{ op: 'test', path: '/table', value: 'orders' }], [{ op: 'replace', path: '/nope', value: 1 }]] as EditSpec['body'][]) {
      const r = applyEdit(request, { body: ops! }, []);
      assert.equal(r.ok, false);
    }
    const text = { ...request, headers: ['content-type', 'text/plain'] };
    const r = applyEdit(text, { body: [{ op: 'replace', path: '/rows', value: 1 }] }, []);
    assert.deepEqual(r, { ok: false, message: 'only a JSON body can be edited (its content-type is not JSON)' });
  });

  it('cannot reach the prototype through a patch', () => {
    const r = applyEdit(request, { body: [{ op: 'add', path: '/__proto__/polluted', value: true }] }, []);
    assert.equal(r.ok, false);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('sets, adds and removes query parameters by decoded name, keeping every other pair byte for byte', () => {
    assert.equal(edited({ query: { limit: '10000' } }).query, 'limit=10000&q=a+b&name=%C3%A9');
    assert.equal(edited({ query: { limit: null, 'new key': 'x y' } }).query, 'q=a+b&name=%C3%A9&new%20key=x%20y');
    assert.equal(edited({ query: { name: 'é2' } }).query, 'limit=all&q=a+b&name=%C3%A92');
    assert.equal(edited({ query: { constructor: 'x' } }).query, 'limit=all&q=a+b&name=%C3%A9&constructor=x');
  });

  it('edits only the headers the rule makes editable, case-insensitively', () => {
    const r = edited({ headers: { 'X-Export-Format': 'parquet', 'x-dry-run': 'true' } }, ['x-export-format', 'x-dry-run']);
    assert.deepEqual(header(r, 'x-export-format'), ['parquet']);
    assert.deepEqual(header(r, 'x-dry-run'), ['true']);
    assert.deepEqual(header(edited({ headers: { 'x-export-format': null } }, ['x-export-format']), 'x-export-format'), []);
    const refused = applyEdit(request, { headers: { 'x-export-format': 'json' } }, []);
    assert.deepEqual(refused, { ok: false, message: 'header "x-export-format" is not editable on this request (the rule makes no header editable)' });
  });
});

describe('parseEdit', () => {
  it('accepts body, query and headers and names what is wrong otherwise', () => {
    assert.deepEqual(parseEdit({ query: { a: '1' } }), { query: { a: '1' } });
    const cases: [unknown, RegExp][] = [
      [null, /must be an object/],
      [{}, /changes nothing/],
      [{ rows: 1 }, /unknown field "rows"/],
      [{ body: [] }, /non-empty JSON Patch/],
      [{ body: [{ op: 'frob', path: '/a' }] }, /not a valid JSON Patch/],
      [{ query: { a: 1 } }, /must be a string, or null/],
      [{ headers: { 'bad name': 'x' } }, /not a header name/],
      [{ headers: { 'x-a': 'line\nbreak' } }, /control character/],
    ];
    for (const [value, message] of cases) {
      const r = parseEdit(value);
      assert.equal(typeof r, 'string', JSON.stringify(value));
      assert.match(r as string, message);
    }
  });
});
