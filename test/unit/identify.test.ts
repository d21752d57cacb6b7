import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CompiledPolicy, IdentityConfig } from '../../src/policy/types.js';
import { credentialsRequired, hashToken, identify, type IdentifyResult } from '../../src/request/identify.js';

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

function makePolicy(identities: IdentityConfig[]): CompiledPolicy {
  return {
    version: 'test',
    files: [],
    defaultAction: 'deny',
    rules: [],
    classification: null,
    inspectedHeaders: new Set(),
    inspectedQuery: new Set(),
    identities: new Map(identities.map((i) => [i.id, i])),
    approverGroups: new Map(),
    routes: [],
    tests: [],
  } as unknown as CompiledPolicy; // only the fields canonicalize/identify read; the rule index is not needed
}

const TOKEN = 's3cret-t0ken';
const policy = makePolicy([
  { id: 'billing-bot', owner: 'alice@example.com', groups: ['finance-agents'], tokenSha256: [digest('old-token'), digest(TOKEN)] },
  { id: 'sidecar-bot', groups: ['sidecars'], tokenSha256: [] },
  { id: 'pct-bot', groups: [], tokenSha256: [digest('a:b%c')] },
]);
const tokenless = makePolicy([{ id: 'sidecar-bot', groups: [], tokenSha256: [] }]);

const basic = (userpass: string, scheme = 'Basic'): string => `${scheme} ${Buffer.from(userpass).toString('base64')}`;

function refused(r: IdentifyResult, includes: string, secret?: string): void {
  if (r.ok) assert.fail(`expected refusal, got ${JSON.stringify(r.identity)}`);
  assert.ok(r.message.includes(includes), `message "${r.message}" should contain "${includes}"`);
  if (secret !== undefined) assert.ok(!r.message.includes(secret), 'message must not echo the token');
}

describe('identify', () => {
  it('accepts valid Basic credentials (any of the identity tokens) and drops the digests', () => {
    const want = { ok: true, identity: { id: 'billing-bot', owner: 'alice@example.com', groups: ['finance-agents'] } };
    assert.deepEqual(identify(basic(`billing-bot:${TOKEN}`), null, policy), want);
    assert.deepEqual(identify(basic('billing-bot:old-token'), null, policy), want);
    assert.deepEqual(identify(basic(`billing-bot:${TOKEN}`, 'bAsIc'), null, policy), want);
    assert.deepEqual(identify([basic(`billing-bot:${TOKEN}`)], null, policy), want);
  });

  it('decodes percent-encoded ids and tokens, and still accepts a token with a literal %', () => {
    assert.equal(identify(basic(`billing%2Dbot:s3cret%2Dt0ken`), null, policy).ok, true);
    assert.equal(identify(basic('pct-bot:a:b%c'), null, policy).ok, true); // not valid percent-encoding: taken as is
    assert.equal(identify(basic('pct-bot:a%3Ab%25c'), null, policy).ok, true);
  });

  it('refuses a wrong token without echoing it', () => {
    refused(identify(basic('billing-bot:guess-123'), null, policy), 'invalid proxy credentials for identity "billing-bot"', 'guess-123');
    refused(identify(basic('billing-bot:'), null, policy), 'invalid proxy credentials');
  });

  it('refuses an unknown id with the same message as a wrong token', () => {
    refused(identify(basic(`nobody:${TOKEN}`), null, policy), 'invalid proxy credentials for identity "nobody"', TOKEN);
  });

  it('refuses credentials for an identity that has no tokens', () => {
    refused(identify(basic('sidecar-bot:anything'), null, policy), 'invalid proxy credentials', 'anything');
  });

  it('refuses malformed headers', () => {
    const cases = ['Basic', 'Basic ', 'Basic !!!notbase64', 'Basic YWJj', `Basic ${Buffer.from('no-colon').toString('base64')}`,
      `Basic ${Buffer.from(':tok').toString('base64')}`, 'Basic YmlsbGluZy1ib3Q6eA', `Basic ${Buffer.from([0x62, 0x3a, 0xff]).toString('base64')}`];
    for (const h of cases) refused(identify(h, null, policy), 'malformed Proxy-Authorization');
  });

  it('refuses other schemes', () => {
    refused(identify(`Bearer ${TOKEN}`, null, policy), 'unsupported Proxy-Authorization scheme "Bearer"', TOKEN);
    refused(identify('Digest username="x"', null, policy), 'scheme "Digest"');
    // a bare token is not echoed back as if it were a scheme name
    refused(identify(TOKEN, null, policy), 'unsupported Proxy-Authorization scheme', TOKEN);
  });

  it('refuses more than one Proxy-Authorization header', () => {
    const h = basic(`billing-bot:${TOKEN}`);
    refused(identify([h, h], null, policy), 'more than one Proxy-Authorization');
  });

  it('is anonymous without credentials or a static identity', () => {
    assert.deepEqual(identify(undefined, null, policy), { ok: true, identity: null });
  });

  it('uses the static identity when no credentials are sent', () => {
    assert.deepEqual(identify(undefined, 'sidecar-bot', policy), { ok: true, identity: { id: 'sidecar-bot', groups: ['sidecars'] } });
    assert.deepEqual(identify(undefined, 'not-in-policy', policy), { ok: true, identity: { id: 'not-in-policy', groups: [] } });
  });

  it('lets valid credentials win over the static identity, and refuses wrong ones anyway', () => {
    const r = identify(basic(`billing-bot:${TOKEN}`), 'sidecar-bot', policy);
    assert.equal(r.ok && r.identity?.id, 'billing-bot');
    refused(identify(basic('billing-bot:wrong'), 'sidecar-bot', policy), 'invalid proxy credentials');
  });
});

describe('credentialsRequired', () => {
  it('is true only without a static identity and with some identity having tokens', () => {
    assert.equal(credentialsRequired(null, policy), true);
    assert.equal(credentialsRequired('sidecar-bot', policy), false);
    assert.equal(credentialsRequired(null, tokenless), false);
    assert.equal(credentialsRequired(null, makePolicy([])), false);
  });
});

describe('hashToken', () => {
  it('is sha256:<hex> of the token, matching what identify compares', () => {
    assert.equal(hashToken('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const p = makePolicy([{ id: 'x', groups: [], tokenSha256: [Buffer.from(hashToken('tok').slice('sha256:'.length), 'hex')] }]);
    assert.equal(identify(basic('x:tok'), null, p).ok, true);
  });
});
