import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bodyPreview, isSecretKey, maskSecretsInText, truncateUtf8 } from '../../src/approvals/redact-body.js';

const preview = (body: string | Buffer, contentType?: string, maxBytes?: number) =>
  bodyPreview(typeof body === 'string' ? Buffer.from(body) : body, contentType, maxBytes);

describe('isSecretKey', () => {
  it('covers every field name the audit trail drops, in any spelling', () => {
    // src/audit/redact.ts SECRET_FIELDS (not exported), plus other casings of the same names.
    const names = [
      'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'token', 'access-token', 'refresh-token',
      'id-token', 'password', 'passwd', 'secret', 'client-secret', 'api-key', 'apikey', 'x-api-key', 'private-key',
      'credentials', 'accessToken', 'refresh_token', 'X_API_KEY', 'APIKey', 'apiKey', 'clientSecret', 'db.password',
      'AWS_SECRET_ACCESS_KEY', 'githubToken', 'basic_auth', 'session_id', 'sessionId', 'X-Amz-Signature', 'pass',
    ];
    for (const name of names) assert.equal(isSecretKey(name), true, name);
  });

  it('leaves names an approver needs to read alone', () => {
    for (const name of ['max_tokens', 'token_count', 'token_type', 'author', 'assignee', 'sort_key', 'public_key', 'keywords', 'code', 'description', 'id', 'zipcode', '']) {
      assert.equal(isSecretKey(name), false, name);
    }
  });
});

describe('bodyPreview: JSON', () => {
  it('replaces the values of secret keys at any depth and writes the rest compactly', () => {
    const body = `{
      "user": "bob", "password": "hunter2",
      "nested": { "api_key": 123, "list": [1, 2, { "access_token": "t0k" }] },
      "max_tokens": 100, "ok": true
    }`;
    assert.deepEqual(preview(body, 'application/json'), {
      text: '{"user":"bob","password":"REDACTED","nested":{"api_key":"REDACTED","list":[1,2,{"access_token":"REDACTED"}]},"max_tokens":100,"ok":true}',
      truncated: false,
      redacted: true,
    });
  });

  it('hides whole objects and arrays under a secret key; keeps null, empty strings and empty containers', () => {
    const p = preview('{"credentials": {"user": "a", "pass": "b"}, "tokens": ["x", "y"], "secret": null, "token": "", "auth": {}, "next": 1}', 'application/json');
    assert.equal(p.text, '{"credentials":"REDACTED","tokens":"REDACTED","secret":null,"token":"","auth":{},"next":1}');
    assert.equal(p.redacted, true);
  });

  it('shows the tokens as sent: every digit of a number, duplicate keys, escapes', () => {
    const p = preview('{"n": 12345678901234567890, "amount": 1, "amount": 1000000, "s": "caf\\u00e9"}', 'application/json');
    assert.equal(p.text, '{"n":12345678901234567890,"amount":1,"amount":1000000,"s":"caf\\u00e9"}');
    assert.equal(p.redacted, false);
  });

  it('reads escaped key names before judging them', () => {
    assert.equal(preview('{"pass\\u0077ord": "x"}', 'application/json').text, '{"pass\\u0077ord":"REDACTED"}');
  });

  it('masks secrets inside string values (headers, env files, JSON in a string)', () => {
    const p = preview(
      JSON.stringify({ cmd: 'curl -H "Authorization: Bearer abcdefghijkl" x', env: 'DB_PASSWORD=hunter2\nX=1', inner: '{"password": "p4ss"}' }),
      'application/json',
    );
    assert.doesNotMatch(p.text, /abcdefghijkl|hunter2|p4ss/);
    assert.equal(JSON.parse(p.text).env, 'DB_PASSWORD=REDACTED\nX=1');
    assert.equal(p.redacted, true);
  });

  it('recognises JSON by content type (with parameters, +json) or by its shape', () => {
    const body = '{ "token": "t" }';
    for (const type of ['application/json; charset=utf-8', 'application/vnd.api+json', 'text/plain', undefined]) {
      assert.equal(preview(body, type).text, '{"token":"REDACTED"}', String(type));
    }
  });

  it('reads NDJSON (one value per line)', () => {
    assert.equal(preview('{"a":1}\n{"secret":"s"}\n', 'application/x-ndjson').text, '{"a":1}\n{"secret":"REDACTED"}');
  });

  it('falls back to text masking for a body that is not JSON after all', () => {
    const p = preview('{"password": "hunter2", oops}', 'application/json');
    assert.equal(p.text, '{"password": "REDACTED", oops}');
    assert.equal(p.redacted, true);
  });

  it('truncates on a UTF-8 boundary, after redaction', () => {
    const p = preview(`{"a": "${'é'.repeat(400)}", "password": "hunter2"}`, 'application/json', 50);
    assert.equal(p.truncated, true);
    assert.ok(Buffer.byteLength(p.text) <= 50);
    assert.equal(p.text, `{"a":"${'é'.repeat(22)}`);
    assert.doesNotMatch(p.text, /\ufffd/);
  });

  it('never shows part of a long secret, however the preview is cut', () => {
    const secret = 'S'.repeat(5000);
    for (const max of [5, 20, 30, 512]) {
      const p = preview(`{"x": 1, "password": "${secret}", "after": [1]}`, 'application/json', max);
      assert.doesNotMatch(p.text, /SS/, String(max));
      assert.ok(Buffer.byteLength(p.text) <= max);
    }
  });

  it('copes with deep nesting and large bodies', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const p = preview(deep, 'application/json', 20);
    assert.equal(p.text, '['.repeat(20));
    assert.equal(p.truncated, true);

    const big = `{"secret": ["${'x'.repeat(2 * 1024 * 1024)}"], "a": 1}`;
    const q = preview(big, 'application/json', 100);
    assert.equal(q.text.startsWith('{"secret":"REDACTED"'), true);
    assert.equal(q.truncated, true);
  });
});

describe('bodyPreview: forms', () => {
  it('redacts like a query string (the audit rule)', () => {
    const p = preview('client_id=app&client_secret=s3cr3t&grant_type=authorization_code&code=abc', 'application/x-www-form-urlencoded');
    assert.deepEqual(p, {
      text: 'client_id=app&client_secret=REDACTED&grant_type=authorization_code&code=REDACTED',
      truncated: false,
      redacted: true,
    });
  });

  it('truncates', () => {
    const p = preview(`q=${'a'.repeat(1000)}&password=x`, 'application/x-www-form-urlencoded; charset=UTF-8', 100);
    assert.equal(p.text, `q=${'a'.repeat(98)}`);
    assert.equal(p.truncated, true);
  });
});

describe('bodyPreview: text', () => {
  it('masks credential header lines, secret pairs and well-known token shapes', () => {
    const text = [
      'Authorization: Basic dXNlcjpwYXNz',
      'Cookie: a=1; sid=2',
      'password: hunter2',
      'export API_KEY="k e y"',
      "db_pass='x y'",
      'curl -H "X-Thing: Bearer abcdefghijklmnop" https://h/?token=t0k&page=2',
      'see url=https://h/cb?access_token=t1&ok=1',
      'key AKIAIOSFODNN7EXAMPLE here',
      'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-part',
      'dsn postgres://user:pw@db:5432/x',
      'slack xoxb-1234567890-abcdefghij',
      'gh ghp_abcdefghijklmnopqrstuvwxyz0123456789',
      'openai sk-proj-abcdefghijklmnopqrstuvwxyz',
      '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----',
    ].join('\n');
    const p = preview(text, 'text/plain');
    assert.equal(p.redacted, true);
    for (const secret of ['dXNlcjpwYXNz', 'sid=2', 'hunter2', 'k e y', 'x y', 'abcdefghijklmnop', 't0k', 't1', 'AKIAIOSFODNN7EXAMPLE', 'eyJhbGci', ':pw@', 'xoxb-1234', 'ghp_abc', 'sk-proj', 'MIIEow']) {
      assert.equal(p.text.includes(secret), false, secret);
    }
    assert.match(p.text, /^Authorization: REDACTED$/m);
    assert.match(p.text, /^password: REDACTED$/m);
    assert.match(p.text, /page=2/);
    assert.match(p.text, /postgres:\/\/user:REDACTED@db:5432\/x/);
  });

  it('masks secret fields of a multipart body', () => {
    const body = '--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n--b\r\nContent-Disposition: form-data; name="user"\r\n\r\nbob\r\n--b--';
    const p = preview(body, 'multipart/form-data; boundary=b');
    assert.doesNotMatch(p.text, /hunter2/);
    assert.match(p.text, /bob/);
  });

  it('leaves ordinary prose alone', () => {
    const text = 'The author asked for max_tokens=100 and a sort_key: name. Token counts look fine.';
    assert.deepEqual(preview(text, 'text/plain'), { text, truncated: false, redacted: false });
    assert.equal(maskSecretsInText('nothing here').redacted, false);
  });

  it('truncates to maxBytes', () => {
    const p = preview('x'.repeat(600), 'text/plain');
    assert.equal(p.text, 'x'.repeat(512));
    assert.equal(p.truncated, true);
  });
});

describe('bodyPreview: personal data', () => {
  it('masks valid card numbers, IBANs and SSNs in JSON strings, JSON numbers and text, and nothing that fails their checks', () => {
    assert.equal(
      preview('{"card":"4111 1111 1111 1111","n":4111111111111111,"iban":"DE89 3704 0044 0532 0130 00","ssn":"123-45-6789","order":"4111 1111 1111 1112"}', 'application/json').text,
      '{"card":"[card …1111]","n":"[card …1111]","iban":"[IBAN DE…3000]","ssn":"[SSN]","order":"4111 1111 1111 1112"}',
    );
    const text = preview('pay 5500-0000-0000-0004 from GB82WEST12345698765432', 'text/plain');
    assert.equal(text.text, 'pay [card …0004] from [IBAN GB…5432]');
    assert.equal(text.redacted, true);
    assert.equal(preview('card=4111111111111111&to=bob@example.com', 'application/x-www-form-urlencoded').text, 'card=[card …1111]&to=bob@example.com');
  });

  it('leaves emails and phone numbers for the approver to read', () => {
    assert.equal(preview('{"to":"alice@example.com","tel":"+1 415 555 2671"}', 'application/json').redacted, false);
  });
});

describe('bodyPreview: binary and empty', () => {
  it('summarises bodies that are not UTF-8 text', () => {
    assert.deepEqual(preview(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), 'image/png'), {
      text: '<10 bytes of binary data>',
      truncated: false,
      redacted: false,
    });
    assert.equal(preview(Buffer.from('abc\u0000def'), 'text/plain').text, '<7 bytes of binary data>');
    assert.equal(preview(Buffer.from([0xff, 0xfe, 0x41]), 'application/json').text, '<3 bytes of binary data>');
  });

  it('shows an empty body as empty', () => {
    assert.deepEqual(preview(Buffer.alloc(0), 'application/json'), { text: '', truncated: false, redacted: false });
  });
});

describe('truncateUtf8', () => {
  it('never cuts a character', () => {
    assert.deepEqual(truncateUtf8('a😀b', 4), { text: 'a', truncated: true });
    assert.deepEqual(truncateUtf8('a😀b', 5), { text: 'a😀', truncated: true });
    assert.deepEqual(truncateUtf8('a😀b', 6), { text: 'a😀b', truncated: false });
    assert.deepEqual(truncateUtf8('éé', 3), { text: 'é', truncated: true });
    assert.deepEqual(truncateUtf8('abc', 0), { text: '', truncated: true });
  });
});
