import assert from 'node:assert/strict';
import { brotliCompressSync, deflateSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { inspectBody, type InspectedBody } from '../../src/inspect/body.js';
import { duplicateKey, parseJsonPath, valuesAt } from '../../src/inspect/json.js';
import { HeaderList } from '../../src/request/headers.js';

const LIMIT = 64 * 1024;

function view(body: Buffer | string, headers: string[] = [], form: string[] = []): InspectedBody | string {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const r = inspectBody(bytes, true, new HeaderList(headers.map((h, i) => (i % 2 === 0 ? h.toLowerCase() : h))), '', { limit: LIMIT, inspectedForm: new Set(form), graphql: false });
  return r.ok ? r.body : `400 ${r.message}`;
}

describe('JSON paths', () => {
  const doc = { rows: 5, items: [{ id: 'a', tags: ['x'] }, { id: 'b' }], 'a/b': 1, 'm~n': 2, __proto__x: 3 };
  const at = (p: string): unknown[] => {
    const path = parseJsonPath(p);
    if ('error' in path) throw new Error(path.error);
    return valuesAt(doc, path);
  };
  it('addresses values by JSON Pointer, with * over arrays and objects', () => {
    assert.deepEqual(at('/rows'), [5]);
    assert.deepEqual(at('/items/1/id'), ['b']);
    assert.deepEqual(at('/items/*/id'), ['a', 'b']);
    assert.deepEqual(at('/items/*/tags/*'), ['x']);
    assert.deepEqual(at('/a~1b'), [1]);
    assert.deepEqual(at('/m~0n'), [2]);
    assert.deepEqual(at(''), [doc]);
    assert.deepEqual(at('/items/2/id'), []);
    assert.deepEqual(at('/items/01/id'), [], 'RFC 6901: no leading zeros');
    assert.deepEqual(at('/items/-'), []);
    assert.deepEqual(at('/nope/deeper'), []);
    assert.deepEqual(at('/constructor'), [], 'own members only');
    assert.deepEqual(valuesAt({ a: 1, b: 2 }, parseJsonPath('/*') as string[]), [1, 2]);
  });
  it('refuses what is not a pointer', () => {
    assert.match((parseJsonPath('rows') as { error: string }).error, /must be empty or start with "\//);
    assert.match((parseJsonPath('/a~2') as { error: string }).error, /"~" must be followed by 0/);
  });
  it('finds a key repeated in one object, at any depth, and only there', () => {
    assert.equal(duplicateKey('{"a":1,"a":2}'), 'a');
    assert.equal(duplicateKey('{"x":{"op":"read", "op" :"delete"}}'), 'op');
    assert.equal(duplicateKey('{"a":1,"\\u0061":2}'), 'a', 'the same key spelled with an escape');
    assert.equal(duplicateKey('{"a":{"a":1},"b":[{"a":1},{"a":2}]}'), null);
    assert.equal(duplicateKey('{"s":"a\\"b","t":"{\\"a\\":1,\\"a\\":2}"}'), null, 'inside strings is not structure');
    assert.equal(duplicateKey('["a","a"]'), null);
  });
});

describe('inspectBody', () => {
  it('reads declared JSON, and undeclared JSON by its first character', () => {
    assert.deepEqual((view('{"rows":5}', ['Content-Type', 'application/json; charset=utf-8']) as InspectedBody).json, { value: { rows: 5 } });
    assert.deepEqual((view('  [1,2]', ['Content-Type', 'text/plain']) as InspectedBody).json, { value: [1, 2] });
    assert.deepEqual((view('\uFEFF{"a":1}', ['Content-Type', 'application/vnd.api+json']) as InspectedBody).json, { value: { a: 1 } });
    const plain = view('hello', ['Content-Type', 'text/plain']) as InspectedBody;
    assert.equal(plain.json, null);
    assert.equal(plain.unreadable, null);
  });

  it('marks unreadable what cannot be read faithfully', () => {
    assert.match((view('{"rows":', ['Content-Type', 'application/json']) as InspectedBody).unreadable!, /declared JSON but does not parse/);
    assert.match((view('{"op":"read","op":"delete"}', ['Content-Type', 'application/json']) as InspectedBody).unreadable!, /repeats the key "op"/);
    assert.match((view(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), ['Content-Type', 'application/json']) as InspectedBody).unreadable!, /not valid UTF-8/);
    assert.match((view('x', ['Content-Encoding', 'compress']) as InspectedBody).unreadable!, /unknown Content-Encoding "compress"/);
    assert.match((view('not gzip', ['Content-Encoding', 'gzip']) as InspectedBody).unreadable!, /not valid gzip/);
    const big = inspectBody(Buffer.alloc(10), false, new HeaderList([]), '', { limit: LIMIT, inspectedForm: new Set(), graphql: false });
    assert.ok(big.ok && /larger than the 65536 bytes/.test(big.body.unreadable!));
    const undecodable = view('{"a":1}', ['Content-Type', 'text/plain']) as InspectedBody;
    assert.equal(undecodable.unreadable, null, 'undeclared, parsing JSON is only an attempt');
  });

  it('decodes gzip, deflate, br and zstd, and gzip then br in order', () => {
    const json = Buffer.from('{"rows":5000000}');
    for (const [coding, bytes] of [
      ['gzip', gzipSync(json)],
      ['deflate', deflateSync(json)],
      ['br', brotliCompressSync(json)],
      ['zstd', zstdCompressSync(json)],
      ['gzip, br', brotliCompressSync(gzipSync(json))],
    ] as const) {
      const v = view(bytes, ['Content-Type', 'application/json', 'Content-Encoding', coding]) as InspectedBody;
      assert.deepEqual(v.json, { value: { rows: 5000000 } }, coding);
    }
  });

  it('never inflates beyond the limit: a 20 MB gzip bomb of about 20 KB is refused, not expanded', () => {
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20), { level: 9 });
    assert.ok(bomb.length < 40 * 1024, `the bomb is ${bomb.length} bytes`);
    const before = process.memoryUsage().arrayBuffers;
    const v = view(bomb, ['Content-Type', 'application/json', 'Content-Encoding', 'gzip']) as InspectedBody;
    assert.match(v.unreadable!, /gzip-decoded body is larger than the 65536 bytes/);
    assert.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024);
  });

  it('reads form fields a rule inspects, refusing pollution like queries', () => {
    const form = ['Content-Type', 'application/x-www-form-urlencoded'];
    const v = view('Action=Delete%20User&x=1&x=2', form, ['action']) as InspectedBody;
    assert.deepEqual([...v.form!], [['action', 'Delete User']]);
    assert.match(view('Action=a&action=b', form, ['action']) as string, /^400 form field "action" appears more than once/);
    assert.equal((view('Action=a', ['Content-Type', 'text/plain'], ['action']) as InspectedBody).form, null, 'only a body labelled as a form is one');
  });
});
