/**
 * Signed chain heads: a trail rewritten by someone who recomputed every hash fails verification
 * with the public key; Airlock's own trail passes.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { sealLine, GENESIS } from '../../src/audit/chain.js';
import { loadHeadSigner, loadVerifyKeys } from '../../src/audit/signing.js';
import { createAuditSink } from '../../src/audit/sink.js';
import { verifyAuditFile } from '../../src/audit/verify.js';
import { airlockCli, startTestAirlock } from '../helpers/harness.js';

let dir: string;
let keyFile: string;
let pubFile: string;
let otherPubFile: string;

async function writePair(name: string): Promise<{ key: string; pub: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = join(dir, 'keys', `${name}.pem`);
  const pub = join(dir, 'keys', `${name}.pub.pem`);
  await writeFile(key, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { key, pub };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-audit-signing-'));
  await mkdir(join(dir, 'keys'));
  await mkdir(join(dir, 'trail'));
  ({ key: keyFile, pub: pubFile } = await writePair('airlock'));
  otherPubFile = (await writePair('other')).pub;
});
after(() => rm(dir, { recursive: true, force: true }));

let n = 0;
/** A trail of `events` request lines written by a sink that signs with the test key; signed at close. */
async function signedTrail(events: number): Promise<string> {
  const file = join(dir, 'trail', `t${n++}.jsonl`);
  const sink = await createAuditSink({ destination: file, signer: await loadHeadSigner(keyFile, file) });
  for (let i = 0; i < events; i++) sink.write({ event: 'request', request_id: `r${i}`, decision: 'allow', path: `/v1/${i}` });
  await sink.close();
  return file;
}

/** The attacker's tool: new content for some lines, then every seq, prev and hash recomputed. */
function rechain(lines: string[]): string {
  let prev = GENESIS;
  return lines
    .map((text, seq) => {
      const { seq: _s, prev: _p, hash: _h, ...fields } = JSON.parse(text) as Record<string, unknown>;
      const sealed = sealLine(JSON.stringify(fields), seq, prev);
      prev = sealed.hash;
      return sealed.line;
    })
    .join('\n') + '\n';
}

const linesOf = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).split('\n').filter(Boolean);
const keys = (...files: string[]) => loadVerifyKeys(files);

describe('signed audit chain heads', () => {
  it('Airlock signs the head at close: the trail verifies with its public key, and says the signature went unchecked without it', async () => {
    const file = await signedTrail(3);
    const lines = await linesOf(file);
    assert.equal(lines.length, 4);
    const last = JSON.parse(lines[3]!) as Record<string, unknown>;
    assert.equal(last.event, 'chain_signed');
    assert.equal(last.signed_seq, 2);
    assert.deepEqual(await verifyAuditFile(file, { keys: await keys(pubFile) }), { ok: true, lines: 4, head: { seq: 3, hash: (JSON.parse((await readFile(file, 'utf8')).trimEnd().split('\n').at(-1)!) as { hash: string }).hash }, problems: [], notes: [] });
    const unchecked = await verifyAuditFile(file);
    assert.equal(unchecked.ok, true);
    assert.match(unchecked.notes.map((x) => x.message).join('\n'), /1 chain signature\(s\) not checked/);
  });

  it('a rewritten trail with every hash recomputed fails: at a signature that no longer signs its head, or one that does not verify, or with no signature at all', async () => {
    const lines = await linesOf(await signedTrail(3));
    const edited = lines.map((l, i) => (i === 1 ? l.replace('"/v1/1"', '"/v1/harmless"') : l));
    const k = await keys(pubFile);
    const rechained = join(dir, 'trail', 'rechained.jsonl');
    await writeFile(rechained, rechain(edited));
    assert.equal((await verifyAuditFile(rechained)).ok, false, 'the old signature names the old head');
    assert.match((await verifyAuditFile(rechained, { keys: k })).problem!.message, /must sign the line just before it/);

    // The attacker also points the signature at the new head: the signature itself fails.
    const chained = rechain(edited).split('\n').filter(Boolean);
    const head = JSON.parse(chained[2]!) as { seq: number; hash: string };
    const resigned = [...chained.slice(0, 3), chained[3]!.replace(/"signed_hash":"[0-9a-f]+"/, `"signed_hash":"${head.hash}"`)];
    const resignedFile = join(dir, 'trail', 'resigned.jsonl');
    await writeFile(resignedFile, rechain(resigned));
    assert.equal((await verifyAuditFile(resignedFile)).ok, true, 'the chain alone cannot tell');
    const caught = await verifyAuditFile(resignedFile, { keys: k });
    assert.deepEqual([caught.problem?.line, caught.problem?.kind], [4, 'signature']);
    assert.match(caught.problem!.message, /does not verify/);

    // Or drops the signatures altogether.
    const stripped = join(dir, 'trail', 'stripped.jsonl');
    await writeFile(stripped, rechain(edited.slice(0, 3)));
    assert.match((await verifyAuditFile(stripped, { keys: k })).problem!.message, /no chain_signed line/);
  });

  it('a trail signed by another key does not verify; several keys (rotation) verify with any of them', async () => {
    const file = await signedTrail(2);
    assert.equal((await verifyAuditFile(file, { keys: await keys(otherPubFile) })).ok, false);
    assert.equal((await verifyAuditFile(file, { keys: await keys(otherPubFile, pubFile) })).ok, true);
  });

  it('signs at each interval when lines were written since, not when nothing happened; lines after the last signature are noted', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      const file = join(dir, 'trail', 'interval.jsonl');
      const sink = await createAuditSink({ destination: file, signer: await loadHeadSigner(keyFile, file), signIntervalMs: 1000 });
      sink.write({ event: 'request', request_id: 'a' });
      mock.timers.tick(1000);
      mock.timers.tick(1000);
      sink.write({ event: 'request', request_id: 'b' });
      await sink.flush();
      const mid = await linesOf(file);
      assert.deepEqual(mid.map((l) => (JSON.parse(l) as { event: string }).event), ['request', 'chain_signed', 'request']);
      const result = await verifyAuditFile(file, { keys: await keys(pubFile) });
      assert.equal(result.ok, true);
      assert.match(result.notes[0]!.message, /lines 3–3 follow the last signature/);
      await sink.close();
      assert.equal((await linesOf(file)).length, 4);
    } finally {
      mock.timers.reset();
    }
  });

  it('refuses a key beside the audit file, a key that is not Ed25519, and a missing key file', async () => {
    const trail = join(dir, 'keys', 'audit.jsonl');
    await assert.rejects(loadHeadSigner(keyFile, trail), /in the audit file's folder/);
    const rsa = join(dir, 'keys', 'rsa.pem');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await assert.rejects(loadHeadSigner(rsa, 'stdout'), /is a rsa key; an Ed25519 key is required/);
    await assert.rejects(loadHeadSigner(join(dir, 'nope.pem'), 'stdout'), /ENOENT/);
    await assert.rejects(loadVerifyKeys([rsa]), /Ed25519 key is required/);
  });

  it('airlock serve --audit-signing-key: its trail ends with a signed head when it stops', async () => {
    const al = await startTestAirlock({ 'policy.yaml': 'version: 1\nrules: []\n' }, { auditSigningKey: keyFile });
    await al.airlock.close(0);
    const events = (await linesOf(al.auditFile)).map((l) => (JSON.parse(l) as { event: string }).event);
    assert.deepEqual([events[0], events.at(-1)], ['policy_loaded', 'chain_signed']);
    assert.equal((await verifyAuditFile(al.auditFile, { keys: await keys(pubFile) })).ok, true);
    await rm(dirname(al.auditFile), { recursive: true, force: true });
  });

  it('airlock audit verify --public-key: exit 0 with signatures valid, 1 for a rewritten trail, 2 for an unreadable key', async () => {
    const file = await signedTrail(2);
    const ok = await airlockCli(['audit', 'verify', file, '--public-key', pubFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: 3 events, chain intact, signatures valid$/m);
    const bad = await airlockCli(['audit', 'verify', file, '--public-key', otherPubFile]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /line 3: signature: /);
    const missing = await airlockCli(['audit', 'verify', file, '--public-key', join(dir, 'nope.pem')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /public key .*nope\.pem: ENOENT/);
  });
});
