import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGlob } from '../../src/policy/glob.js';

function matcher(glob: string): RegExp {
  const r = compileGlob(glob);
  if (!r.ok) assert.fail(`glob ${glob} should compile: ${r.message}`);
  return r.regex;
}

describe('path globs', () => {
  const table: [glob: string, path: string, matches: boolean][] = [
    ['/v1/users', '/v1/users', true],
    ['/v1/users', '/v1/users/', false],
    ['/v1/users', '/V1/users', false], // case-sensitive
    ['/files/*', '/files/report.pdf', true],
    ['/files/*', '/files/.env', true], // leading dots included
    ['/files/*', '/files/a/b', false], // one segment only
    ['/files/*.pdf', '/files/x.pdf', true],
    ['/files/*.pdf', '/files/x.pdfx', false],
    ['/v1/**', '/v1', true],
    ['/v1/**', '/v1/', true],
    ['/v1/**', '/v1/a/b/c', true],
    ['/v1/**', '/v10', false],
    ['/v1/**', '/v2/a', false],
    ['/**', '/', true],
    ['/**', '/anything/at/all', true],
    ['/**/.env', '/.env', true],
    ['/**/.env', '/app/config/.env', true],
    ['/**/.env', '/app/x.env', false],
    ['/a/**/b', '/a/b', true],
    ['/a/**/b', '/a/x/y/b', true],
    ['/a/**/b', '/a/xb', false],
    ['/item/?', '/item/7', true],
    ['/item/?', '/item/77', false],
    ['/item/?', '/item/', false],
    ['/a.b/(x)+[y]', '/a.b/(x)+[y]', true], // regex metacharacters are literal
    ['/a.b', '/aXb', false],
    ['/line/*', '/line/a\nb', true], // decoded paths may hold control characters
    ['/v1/**', '/v1/a\n/b', true],
    ['/caf\u00e9/?', '/caf\u00e9/\u{1F600}', true], // ? is one character, not one UTF-16 unit
  ];
  for (const [glob, path, expected] of table) {
    it(`${glob} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(path)}`, () => {
      assert.equal(matcher(glob).test(path), expected);
    });
  }

  const bad: [glob: string, message: RegExp][] = [
    ['v1/**', /must start with "\/"/],
    ['/a**', /whole segment/],
    ['/**b/c', /whole segment/],
    ['/a//b', /"\/\/"/],
    ['/a/../b', /"\.\." segment/],
    ['/a/./b', /"\." segment/],
  ];
  for (const [glob, message] of bad) {
    it(`rejects ${glob}`, () => {
      const r = compileGlob(glob);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.message, message);
    });
  }
});
