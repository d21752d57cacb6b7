import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { Command } from 'commander';
import { sealLine } from '../../src/audit/chain.js';
import { createAuditSink } from '../../src/audit/sink.js';
import { parseCheckpoint, verifyAuditFile } from '../../src/audit/verify.js';
import { registerAuditCommands } from '../../src/cli/audit.js';

let dir: string;
/** Lines of a verified five-event file, without trailing newline. */
let good: string[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-audit-verify-'));
  const file = join(dir, 'good.jsonl');
  const sink = await createAuditSink({ destination: file });
  for (let i = 0; i < 5; i++) {
    sink.write({ event: 'request', request_id: `r${i}`, identity: 'billing-bot', method: 'GET', host: 'api.internal', path: `/v1/${i}`, decision: 'allow' });
  }
  await sink.close();
  good = (await readFile(file, 'utf8')).split('\n').slice(0, -1);
  assert.equal(good.length, 5);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let count = 0;
/** Writes lines (1-based order as given) to a fresh file and returns its path. */
async function fileOf(lines: string[], trailingNewline = true): Promise<string> {
  const file = join(dir, `case-${count++}.jsonl`);
  await writeFile(file, lines.join('\n') + (trailingNewline && lines.length > 0 ? '\n' : ''));
  return file;
}

const line = (n: number): string => good[n - 1] as string;

describe('verifyAuditFile', () => {
  it('accepts an intact chain, and says its head (the checkpoint the next file continues from)', async () => {
    const last = JSON.parse(line(5)) as { seq: number; hash: string };
    assert.deepEqual(await verifyAuditFile(await fileOf(good)), { ok: true, lines: 5, head: { seq: last.seq, hash: last.hash }, problems: [], notes: [] });
  });

  it('verifies a rotated file alone from the previous file\'s head (--after), and names a gap or a wrong checkpoint', async () => {
    const first = await verifyAuditFile(await fileOf(good.slice(0, 2)));
    assert.ok(first.ok && first.head);
    const rest = await fileOf(good.slice(2));
    assert.equal((await verifyAuditFile(rest)).problem?.kind, 'removed', 'alone, it starts mid-chain');
    const continued = await verifyAuditFile(rest, { after: first.head });
    assert.equal(continued.ok, true, JSON.stringify(continued.problems));
    assert.equal(continued.head?.seq, 4);
    const gap = await verifyAuditFile(await fileOf(good.slice(3)), { after: first.head });
    assert.deepEqual([gap.problem?.line, gap.problem?.kind], [1, 'removed']);
    assert.match(gap.problem?.message ?? '', /1 event missing between the checkpoint and line 1/);
    const wrong = await verifyAuditFile(rest, { after: { seq: first.head.seq, hash: 'f'.repeat(64) } });
    assert.deepEqual([wrong.problem?.line, wrong.problem?.kind], [1, 'edited']);
    assert.equal(parseCheckpoint(`${first.head.seq}:${first.head.hash}`)?.hash, first.head.hash);
    assert.equal(parseCheckpoint('12:xyz'), null);
  });

  it('accepts an empty file as 0 events', async () => {
    assert.deepEqual(await verifyAuditFile(await fileOf([])), { ok: true, lines: 0, problems: [], notes: [] });
  });

  it('names an edited line', async () => {
    const lines = [...good];
    lines[2] = line(3).replace('"path":"/v1/2"', '"path":"/v1/x"');
    const result = await verifyAuditFile(await fileOf(lines));
    assert.equal(result.ok, false);
    assert.deepEqual(result.problem && { line: result.problem.line, kind: result.problem.kind }, { line: 3, kind: 'edited' });
  });

  it('names a line replaced wholesale with a self-consistent hash', async () => {
    const original = JSON.parse(line(3)) as Record<string, unknown>;
    const { seq, prev, hash: _hash, ...fields } = original;
    const forged = sealLine(JSON.stringify({ ...fields, decision: 'deny' }), seq as number, prev as string).line;
    const result = await verifyAuditFile(await fileOf([line(1), line(2), forged, line(4), line(5)]));
    assert.equal(result.problem?.line, 3);
    assert.equal(result.problem?.kind, 'edited');
    assert.match(result.problem?.message ?? '', /line 4 expects/);
  });

  it('names a removed line and how many events are missing', async () => {
    const result = await verifyAuditFile(await fileOf([line(1), line(2), line(4), line(5)]));
    assert.deepEqual(result.problem, {
      line: 3,
      kind: 'removed',
      message: '1 event missing before line 3 (seq jumps from 1 to 3)',
    });
  });

  it('names events removed from the start of the file', async () => {
    const result = await verifyAuditFile(await fileOf([line(3), line(4), line(5)]));
    assert.equal(result.problem?.line, 1);
    assert.equal(result.problem?.kind, 'removed');
    assert.match(result.problem?.message ?? '', /^2 events missing before line 1/);
  });

  it('names swapped lines as reordered', async () => {
    const result = await verifyAuditFile(await fileOf([line(1), line(3), line(2), line(4), line(5)]));
    assert.deepEqual(result.problem, {
      line: 2,
      kind: 'reordered',
      message: 'seq 2 follows seq 0; seq 1 appears later, at line 3',
    });
  });

  it('names a duplicated line as reordered', async () => {
    const result = await verifyAuditFile(await fileOf([line(1), line(2), line(2), line(3)]));
    assert.equal(result.problem?.line, 3);
    assert.equal(result.problem?.kind, 'reordered');
    assert.match(result.problem?.message ?? '', /seq 1 repeats seq 1/);
  });

  it('names truncated and garbage lines as malformed', async () => {
    const truncated = await verifyAuditFile(await fileOf([line(1), line(2), line(3).slice(0, 40), line(4)]));
    assert.equal(truncated.problem?.line, 3);
    assert.equal(truncated.problem?.kind, 'malformed');

    const garbage = await verifyAuditFile(await fileOf([line(1), 'garbage', line(2)]));
    assert.equal(garbage.problem?.line, 2);
    assert.equal(garbage.problem?.kind, 'malformed');

    const blank = await verifyAuditFile(await fileOf([line(1), '', line(2)]));
    assert.deepEqual(blank.problem, { line: 2, kind: 'malformed', message: 'empty line' });

    const noSeq = line(2).replace(/"seq":1,/, '');
    const missing = await verifyAuditFile(await fileOf([line(1), noSeq]));
    assert.equal(missing.problem?.kind, 'malformed');
    assert.match(missing.problem?.message ?? '', /"seq"/);
  });

  it('accepts a last line without newline', async () => {
    assert.equal((await verifyAuditFile(await fileOf(good, false))).ok, true);
  });

  it('after a damaged line the chain restarted from, verifies the next segment too: a later edit is found', async () => {
    const restart = sealLine(JSON.stringify({ time: '2025-01-01T00:00:00.000Z', event: 'chain_restarted', reason: 'damaged last line' }), 0, '0'.repeat(64));
    const after1 = sealLine(JSON.stringify({ time: '2025-01-01T00:00:00.001Z', event: 'request', path: '/a' }), 1, restart.hash);
    const after2 = sealLine(JSON.stringify({ time: '2025-01-01T00:00:00.002Z', event: 'request', path: '/b' }), 2, after1.hash);
    const torn = line(3).slice(0, 40);
    const intact = await verifyAuditFile(await fileOf([line(1), line(2), torn, restart.line, after1.line, after2.line]));
    assert.deepEqual(intact.problems.map((p) => [p.line, p.kind]), [[3, 'malformed']]);
    const edited = await verifyAuditFile(await fileOf([line(1), line(2), torn, restart.line, after1.line.replace('"/a"', '"/x"'), after2.line]));
    assert.equal(edited.ok, false);
    assert.deepEqual(edited.problems.map((p) => [p.line, p.kind]), [[3, 'malformed'], [5, 'edited']]);
  });

  it('accepts a chain_restarted event mid-file and reports it as a note', async () => {
    const restart = sealLine(
      JSON.stringify({ time: '2025-01-01T00:00:00.000Z', event: 'chain_restarted', reason: 'testing' }),
      0,
      '0'.repeat(64),
    );
    const next = sealLine(JSON.stringify({ time: '2025-01-01T00:00:00.001Z', event: 'request' }), 1, restart.hash);
    const result = await verifyAuditFile(await fileOf([line(1), line(2), restart.line, next.line]));
    assert.deepEqual(result, { ok: true, lines: 4, head: { seq: 1, hash: next.hash }, problems: [], notes: [{ line: 3, message: 'chain restarted: testing' }] });
  });

  it('rejects when the file cannot be read', async () => {
    await assert.rejects(verifyAuditFile(join(dir, 'absent.jsonl')), { code: 'ENOENT' });
  });
});

describe('airlock audit verify', () => {
  afterEach(() => {
    process.exitCode = undefined;
    mock.restoreAll();
  });

  async function run(file: string, ...extra: string[]): Promise<{ out: string; err: string; code: number | string | undefined }> {
    const out: string[] = [];
    const err: string[] = [];
    mock.method(console, 'log', (s: string) => out.push(s));
    mock.method(console, 'error', (s: string) => err.push(s));
    const program = new Command('airlock').exitOverride();
    registerAuditCommands(program);
    await program.parseAsync(['audit', 'verify', file, ...extra], { from: 'user' });
    const code = process.exitCode ?? undefined;
    process.exitCode = undefined;
    return { out: out.join('\n'), err: err.join('\n'), code };
  }

  it('prints ok and leaves the exit code at 0 for an intact chain', async () => {
    const { out, code } = await run(await fileOf(good));
    const head = JSON.parse(line(5)) as { hash: string };
    assert.equal(out, `ok: 5 events, chain intact\nhead: 4:${head.hash} (verify the next file with --after 4:${head.hash})`);
    assert.equal(code, undefined);
  });

  it('verifies a rotated file from the head printed for the one before it (--after)', async () => {
    const first = await run(await fileOf(good.slice(0, 3)));
    const checkpoint = /--after (\S+)\)/.exec(first.out)?.[1];
    assert.ok(checkpoint);
    const rest = await fileOf(good.slice(3));
    const alone = await run(rest);
    assert.equal(alone.code, 1);
    assert.match(alone.out, /--after SEQ:HASH/, 'the message says how to verify it alone');
    const continued = await run(rest, '--after', checkpoint);
    assert.match(continued.out, /^ok: 2 events, chain intact/);
    assert.equal(continued.code, undefined);
  });

  it('says so for an empty file', async () => {
    const { out, code } = await run(await fileOf([]));
    assert.equal(out, 'ok: 0 events, the file is empty');
    assert.equal(code, undefined);
  });

  it('prints the first problem and exits 1', async () => {
    const lines = [...good];
    lines[2] = line(3).replace('"decision":"allow"', '"decision":"deny"');
    const { out, code } = await run(await fileOf(lines));
    assert.match(out, /^line 3: edited: /);
    assert.equal(code, 1);
  });

  it('exits 2 when the file cannot be read', async () => {
    const { err, code } = await run(join(dir, 'absent.jsonl'));
    assert.match(err, /cannot read .*absent\.jsonl/);
    assert.equal(code, 2);
  });
});
