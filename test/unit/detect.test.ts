import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rules as presetRules } from '@secretlint/secretlint-rule-preset-recommend';
import { detect } from '../../src/inspect/detect.js';
import type { Finding } from '../../src/inspect/finding.js';
import { DETECTORS, type DetectorId } from '../../src/inspect/detector-ids.js';
import { NO_BODY, type InspectedBody } from '../../src/inspect/body.js';
import { scanTextOf } from '../../src/inspect/scan-text.js';
import { SECRET_KEYWORDS } from '../../src/inspect/secret-keywords.js';

const ALL = new Set<DetectorId>(DETECTORS);

/** What the detectors find in a plain-text body. */
async function inText(text: string): Promise<Finding[]> {
  return detect(scanTextOf('', NO_BODY, text, 'text/plain'), ALL);
}
const detectorsIn = async (text: string): Promise<string[]> => (await inText(text)).map((f) => f.detector);

function jsonBody(value: unknown): InspectedBody {
  return { ...NO_BODY, json: { value } };
}

// Test credentials are assembled at run time so that no scanner reads this file as holding any.
const GITHUB_TOKEN = ['ghp', 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0dF3gH6'].join('_');
const SLACK_TOKEN = ['xoxb', '123456789012', '1234567890123', 'AbCdEfGhIjKlMnOpQrStUvWx'].join('-');
const STRIPE_KEY = ['sk', 'live', '4eC39HqLyjWDarjtT1zdp7dc'].join('_');
const AWS_KEY_ID = ['AKIA', 'Z7Q3N5XWJ2KD4M8P'].join('');
const PEM = ['-----BEGIN RSA PRIVATE KEY-----', 'MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qPJSTl1p3iCOs2dBcYu2qj7vAbXx', 'MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qPJSTl1p3iCOs2dBcYu2qj7vAbXx', '-----END RSA PRIVATE KEY-----'].join('\n');
const jwtPart = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const JWT = `${jwtPart({ alg: 'HS256', typ: 'JWT' })}.${jwtPart({ sub: '1234567890', name: 'agent' })}.c2lnbmF0dXJlLWJ5dGVz`;

describe('detectors: true and false positives', () => {
  const table: [string, string, DetectorId | null][] = [
    ['card with spaces', 'pay with 4111 1111 1111 1111 today', 'payment-card'],
    ['card with dashes', 'card=5500-0000-0000-0004', 'payment-card'],
    ['card bare (Amex, 15 digits)', 'amex 378282246310005.', 'payment-card'],
    ['16 digits failing Luhn', 'order 4111 1111 1111 1112', null],
    ['16 digits of no issuer', 'ref 1234567890123456', null],
    ['13-digit timestamp', 'at 1732924800000 ms', null],
    ['IBAN grouped', 'to DE89 3704 0044 0532 0130 00 please', 'iban'],
    ['IBAN compact', 'GB82WEST12345698765432', 'iban'],
    ['IBAN failing mod-97', 'DE89 3704 0044 0532 0130 01', null],
    ['US SSN', 'ssn 123-45-6789', 'us-ssn'],
    ['SSN with area 000', '000-12-3456', null],
    ['SSN with group 00', '123-00-4567', null],
    ['nine bare digits', '123456789', null],
    ['an ISO date', '2026-11-30', null],
    ['email', 'write to alice.smith+tag@example.co.uk', 'email'],
    ['no domain dot', 'user@localhost', null],
    ['a handle', 'ping @alice about it', null],
    ['phone, international', 'call +1 415 555 2671', 'phone'],
    ['phone, UK', 'call +44 20 7946 0958', 'phone'],
    ['no country code', 'call 415 555 2671', null],
    ['invalid number', 'call +1 000 000 0000', null],
    ['GitHub token', `token ${GITHUB_TOKEN}`, 'secret'],
    ['Slack token', SLACK_TOKEN, 'secret'],
    ['Stripe key', STRIPE_KEY, 'secret'],
    ['AWS access key id', AWS_KEY_ID, 'secret'],
    ['private key', PEM, 'secret'],
    ['JWT', `Authorization: Bearer ${JWT}`, 'secret'],
    ['JWT-shaped without alg', `${jwtPart({ typ: 'x' })}.${jwtPart({ a: 1 })}.sig`, null],
    ['prose', 'the quick brown fox jumps over the lazy dog 42 times', null],
  ];
  for (const [name, text, expected] of table) {
    it(`${name}: ${expected ?? 'nothing'}`, async () => {
      assert.deepEqual(await detectorsIn(text), expected === null ? [] : [expected]);
    });
  }
});

describe('findings', () => {
  it('count every match, say where the first were, and never carry the value', async () => {
    const f = await inText('a 4111 1111 1111 1111 b 5500 0000 0000 0004 c');
    assert.deepEqual(f, [{ detector: 'payment-card', count: 2, where: ['offset:2', 'offset:24'] }]);
    assert.doesNotMatch(JSON.stringify(f), /4111|5500/);
  });

  it('name the kind of secret, not the secret', async () => {
    const [f] = await inText(`${GITHUB_TOKEN} and ${JWT}`);
    assert.equal(f?.detector, 'secret');
    assert.equal(f?.count, 2);
    assert.deepEqual([...(f?.kinds ?? [])].sort(), ['GITHUB_TOKEN', 'JWT']);
    assert.ok(!JSON.stringify(f).includes(GITHUB_TOKEN.slice(4)));
  });

  it('in a JSON body, are placed by JSON Pointer, keys included, after JSON decoding', async () => {
    const body = jsonBody({ items: [{ card: '4111 1111 1111 1111' }, { 'a/b': { 'pay 5500 0000 0000 0004': 1 } }], n: 4111111111111111 });
    const f = await detect(scanTextOf('', body, '', 'application/json'), new Set(['payment-card']));
    // A key that could be what was found is not repeated in the place.
    assert.deepEqual(f, [{ detector: 'payment-card', count: 3, where: ['/items/0/card', '/items/1/a~1b/…', '/n'] }]);
    const underKey = await detect(scanTextOf('', jsonBody({ 'alice@example.com': { card: '4111 1111 1111 1111' } }), '', 'application/json'), new Set(['payment-card']));
    assert.deepEqual(underKey[0]?.where, ['/…/card']);
    // `\u0034` is "4": what the upstream reads is what is scanned.
    const escaped = JSON.parse('{"c":"\\u0034111 1111 1111 1111"}') as unknown;
    assert.equal((await detect(scanTextOf('', jsonBody(escaped), '', 'application/json'), ALL))[0]?.detector, 'payment-card');
  });

  it('in a private key inside a JSON string (its newlines escaped on the wire)', async () => {
    const f = await detect(scanTextOf('', jsonBody({ key: PEM }), '', 'application/json'), ALL);
    assert.deepEqual(f.map((x) => [x.detector, x.where]), [['secret', ['/key']]]);
  });

  it('in a form or the query, are placed by field and parameter name', async () => {
    const f = await detect(scanTextOf('email=bob%40example.com&x=1', NO_BODY, 'note=hi&card=4111%201111%201111%201111', 'application/x-www-form-urlencoded'), ALL);
    assert.deepEqual(f.map((x) => [x.detector, x.where]), [['payment-card', ['form:card']], ['email', ['query:email']]]);
  });

  it('a sender cannot switch the secret rules off with a secretlint comment', async () => {
    assert.deepEqual(await detectorsIn(`// secretlint-disable\n${GITHUB_TOKEN}\n// secretlint-enable`), ['secret']);
    assert.deepEqual(await detectorsIn(`${GITHUB_TOKEN} // secretlint-disable-line`), ['secret']);
  });

  it('only the detectors asked for run', async () => {
    const f = await detect(scanTextOf('', NO_BODY, `4111 1111 1111 1111 alice@example.com ${GITHUB_TOKEN}`, 'text/plain'), new Set(['email']));
    assert.deepEqual(f.map((x) => x.detector), ['email']);
  });
});

describe('the secret keyword prefilter', () => {
  it('has keywords for every rule of the preset but the comment filter, and for no other', () => {
    const ids = presetRules.map((r) => r.meta.id).filter((id) => id !== '@secretlint/secretlint-rule-filter-comments');
    assert.deepEqual(Object.keys(SECRET_KEYWORDS).sort(), [...ids].sort());
  });

  it('lets through what the rules find: credentials in URLs and connection strings', async () => {
    assert.ok((await detectorsIn('postgres://app:s3cr3t-pw@db.internal:5432/app')).includes('secret'));
    assert.ok((await detectorsIn('https://deploy:hunter2hunter2@git.example.com/repo.git')).includes('secret'));
  });
});
