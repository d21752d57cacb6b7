import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactQuery } from '../../src/audit/events.js';
import { scrubEvent } from '../../src/audit/redact.js';

describe('redactQuery', () => {
  it('redacts the value of secret-looking parameters and keeps everything else byte for byte', () => {
    assert.equal(redactQuery('api_key=abc&x=1'), 'api_key=REDACTED&x=1');
    assert.equal(redactQuery('?api_key=abc&x=1'), '?api_key=REDACTED&x=1');
    assert.equal(
      redactQuery('a=%20b&Access_Token=t0k3n&page=2&X-Amz-Signature=ff&flag&sessionId=s;code=c'),
      'a=%20b&Access_Token=REDACTED&page=2&X-Amz-Signature=REDACTED&flag&sessionId=REDACTED;code=REDACTED',
    );
  });

  it('matches names case-insensitively as substrings', () => {
    for (const name of ['TOKEN', 'mykey', 'client_secret', 'Password', 'passwd', 'auth', 'sig', 'jwt', 'credentials']) {
      assert.equal(redactQuery(`${name}=v&q=1`), `${name}=REDACTED&q=1`, name);
    }
  });

  it('sees through percent-encoded and plus-encoded names', () => {
    assert.equal(redactQuery('api%5Fkey=abc'), 'api%5Fkey=REDACTED');
    assert.equal(redactQuery('%74oken=abc'), '%74oken=REDACTED');
    assert.equal(redactQuery('bad%zz=1&q=2'), 'bad%zz=1&q=2');
  });

  it('keeps values containing = whole, leaves empty values and harmless queries alone', () => {
    assert.equal(redactQuery('token=a=b==&x=1'), 'token=REDACTED&x=1');
    assert.equal(redactQuery('token=&x=1'), 'token=&x=1');
    assert.equal(redactQuery('page=2&sort=name'), 'page=2&sort=name');
    assert.equal(redactQuery(''), '');
  });
});

describe('scrubEvent', () => {
  it('drops secret-named fields at any case and depth without touching the input', () => {
    const input = {
      event: 'request',
      Authorization: 'Bearer x',
      cookie: 'a=b',
      'set-cookie': ['c=d'],
      proxy_authorization: 'Basic y',
      token: 't',
      password: 'p',
      headers: { accept: 'application/json', 'X-Api-Key': 'k' },
      report: [{ rule: 'r', action: 'allow' }],
      token_count: 3,
    };
    const out = scrubEvent(input);
    assert.deepEqual(out, {
      event: 'request',
      headers: { accept: 'application/json' },
      report: [{ rule: 'r', action: 'allow' }],
      token_count: 3,
    });
    assert.equal(input.Authorization, 'Bearer x');
    assert.equal(input.headers['X-Api-Key'], 'k');
  });

  it('redacts query and url fields and drops the keys the sink writes itself', () => {
    const out = scrubEvent({ event: 'request', query: 'token=t', url: 'https://h/p?sig=s&a=1', seq: 7, hash: 'h', prev: 'p', time: 't' });
    assert.deepEqual(out, { event: 'request', query: 'token=REDACTED', url: 'https://h/p?sig=REDACTED&a=1' });
  });

  it('returns the same object when there is nothing to scrub', () => {
    const input = { event: 'response', status: 200, rules: ['a'], report: [{ rule: 'a', action: 'allow' }] };
    assert.equal(scrubEvent(input), input);
  });
});

describe('scrubEvent: what a log viewer would interpret, and long fields', () => {
  it('escapes C0/C1 controls, bidi overrides and invisible characters in any string field', () => {
    const out = scrubEvent({ event: 'request', path: '/files/\u202etxt.exe', reason: 'ok\u0085\u001b[2Jdone\u200b', nested: { note: 'a\u2066b' } });
    assert.deepEqual(out, { event: 'request', path: '/files/\\u{202e}txt.exe', reason: 'ok\\u{85}\\u{1b}[2Jdone\\u{200b}', nested: { note: 'a\\u{2066}b' } });
  });

  it('writes a long field as its start and end, with its length and hash beside it', () => {
    const path = `/exports/${'a'.repeat(5000)}/drop-all`;
    const out = scrubEvent({ event: 'request', decision: 'allow', path }) as Record<string, unknown>;
    assert.match(String(out.path), /^\/exports\/a+…a+\/drop-all \(5018 characters\)$/);
    assert.ok(String(out.path).length <= 2048);
    assert.equal(out.path_length, 5018);
    assert.match(String(out.path_sha256), /^[0-9a-f]{64}$/);
  });

  it('redacts secrets in the raw target of a refused request', () => {
    assert.deepEqual(scrubEvent({ event: 'request', target: 'http://h/%zz?token=t&a=1' }), { event: 'request', target: 'http://h/%zz?token=REDACTED&a=1' });
  });
});
