import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { GENESIS } from '../../src/audit/chain.js';
import { createAuditSink } from '../../src/audit/sink.js';
import { verifyAuditFile } from '../../src/audit/verify.js';
import { createMetrics } from '../../src/metrics/metrics.js';

/** The hash of a trail's last line: the head `verify` reports. */
const lastHash = (text: string): string => (JSON.parse(text.trimEnd().split('\n').at(-1)!) as { hash: string }).hash;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-audit-sink-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function lines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('audit sink', () => {
  it('writes one chained JSON object per line, creating the folder', async () => {
    const file = join(dir, 'nested', 'deeper', 'audit.jsonl');
    const sink = await createAuditSink({ destination: file });
    sink.write({ event: 'request', request_id: 'r1', method: 'GET', host: 'api.internal', path: '/v1', rules: ['reads'], decision: 'allow' });
    sink.write({ event: 'response', request_id: 'r1', status: 200 });
    await sink.close();

    const text = await readFile(file, 'utf8');
    assert.ok(text.endsWith('}\n'));
    assert.match(text.split('\n')[0] ?? '', /^\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","event":"request",/);
    const [first, second] = await lines(file);
    assert.equal(first?.seq, 0);
    assert.equal(first?.prev, GENESIS);
    assert.match(String(first?.hash), /^[0-9a-f]{64}$/);
    assert.equal(second?.seq, 1);
    assert.equal(second?.prev, first?.hash);
    assert.equal(first?.level, undefined);
    assert.equal(first?.msg, undefined);
    assert.deepEqual((await verifyAuditFile(file)).ok, true);
  });

  it('continues seq and prev when restarted on the same file', async () => {
    const file = join(dir, 'restart.jsonl');
    const one = await createAuditSink({ destination: file });
    for (let i = 0; i < 3; i++) one.write({ event: 'request', n: i });
    await one.close();
    const two = await createAuditSink({ destination: file });
    two.write({ event: 'request', n: 3 });
    await two.close();

    const all = await lines(file);
    assert.deepEqual(all.map((l) => l.seq), [0, 1, 2, 3]);
    assert.equal(all[3]?.prev, all[2]?.hash);
    assert.deepEqual(await verifyAuditFile(file), { ok: true, lines: 4, head: { seq: 4 - 1, hash: lastHash(await readFile(file, 'utf8')) }, problems: [], notes: [] });
  });

  it('finds the last line of a file larger than one tail read', async () => {
    const file = join(dir, 'large.jsonl');
    const one = await createAuditSink({ destination: file });
    for (let i = 0; i < 40; i++) one.write({ event: 'request', padding: 'x'.repeat(1000 + i) });
    one.write({ event: 'request', padding: 'y'.repeat(40_000) }); // longer than the first tail window
    await one.close();
    const two = await createAuditSink({ destination: file });
    two.write({ event: 'response' });
    await two.close();
    assert.deepEqual(await verifyAuditFile(file), { ok: true, lines: 42, head: { seq: 42 - 1, hash: lastHash(await readFile(file, 'utf8')) }, problems: [], notes: [] });
  });

  it('starts a new chain with chain_restarted when the last line is damaged', async () => {
    const file = join(dir, 'damaged.jsonl');
    const one = await createAuditSink({ destination: file });
    one.write({ event: 'request', n: 0 });
    await one.close();
    await appendFile(file, '{"time":"2025-01-01T00:00:00.000Z","event":"requ'); // a crash mid-write: no newline

    const two = await createAuditSink({ destination: file });
    two.write({ event: 'request', n: 1 });
    await two.close();

    const text = await readFile(file, 'utf8');
    const raw = text.split('\n');
    assert.equal(raw[1], '{"time":"2025-01-01T00:00:00.000Z","event":"requ');
    const restarted = JSON.parse(raw[2] ?? '') as Record<string, unknown>;
    assert.equal(restarted.event, 'chain_restarted');
    assert.equal(restarted.seq, 0);
    assert.equal(restarted.prev, GENESIS);
    assert.match(String(restarted.reason), /last line of the file is not a valid audit line/);
    assert.equal((JSON.parse(raw[3] ?? '') as Record<string, unknown>).seq, 1);

    const result = await verifyAuditFile(file);
    assert.equal(result.problem?.line, 2);
    assert.equal(result.problem?.kind, 'malformed');
    assert.match(result.problem?.message ?? '', /next line is a chain_restarted event/);
  });

  it('never writes secrets: query values redacted, credential fields removed', async () => {
    const file = join(dir, 'secrets.jsonl');
    const sink = await createAuditSink({ destination: file });
    sink.write({
      event: 'request',
      // Secrets spelled so no hex digest on the line can contain them by chance.
      query: 'api_key=sekrit-0&x=1',
      authorization: 'Bearer sekrit-1',
      cookie: 'sid=sekrit-2',
      'proxy-authorization': 'Basic sekrit-3',
      headers: { 'set-cookie': 'sekrit-4', accept: '*/*' },
    });
    await sink.close();
    const text = await readFile(file, 'utf8');
    assert.doesNotMatch(text, /sekrit/);
    const [line] = await lines(file);
    assert.equal(line?.query, 'api_key=REDACTED&x=1');
    assert.equal('authorization' in (line ?? {}), false);
    assert.equal('cookie' in (line ?? {}), false);
    assert.deepEqual(line?.headers, { accept: '*/*' });
  });

  it('flush() resolves once the lines are in the file', async () => {
    const file = join(dir, 'flush.jsonl');
    const sink = await createAuditSink({ destination: file });
    for (let i = 0; i < 500; i++) sink.write({ event: 'request', n: i });
    await sink.flush();
    assert.equal((await lines(file)).length, 500);
    await sink.flush(); // nothing pending: resolves at once
    await sink.close();
  });

  it('sync mode writes before write() returns', async () => {
    const file = join(dir, 'sync.jsonl');
    const sink = await createAuditSink({ destination: file, sync: true });
    sink.write({ event: 'request' });
    assert.equal((await lines(file)).length, 1);
    await sink.close();
  });

  it('counts events and failed writes in the metrics', async () => {
    const metrics = createMetrics();
    const errors: Error[] = [];
    const sink = await createAuditSink({ destination: join(dir, 'metrics.jsonl'), metrics, onError: (e) => errors.push(e) });
    sink.write({ event: 'request' });
    sink.write({ event: 'request' });
    sink.write({ event: 'response' });
    await sink.close();
    sink.write({ event: 'request' }); // after close: must not throw, must be visible
    const text = await metrics.registry.metrics();
    assert.match(text, /airlock_audit_events_total\{event="request"\} 2/);
    assert.match(text, /airlock_audit_events_total\{event="response"\} 1/);
    assert.match(text, /airlock_audit_errors_total 1/);
    assert.equal(errors.length, 1);
  });

  it('appends to an existing file that is not an audit file only after a newline and a restart event', async () => {
    const file = join(dir, 'other.log');
    await writeFile(file, 'plain text\n');
    const sink = await createAuditSink({ destination: file });
    sink.write({ event: 'request' });
    await sink.close();
    const raw = (await readFile(file, 'utf8')).split('\n');
    assert.equal(raw[0], 'plain text');
    assert.match(raw[1] ?? '', /"event":"chain_restarted"/);
    assert.match(raw[2] ?? '', /"event":"request","seq":1,/);
  });

  it('flushes what is still queued when the process exits', async () => {
    const file = join(dir, 'exit.jsonl');
    const sinkUrl = new URL('../../src/audit/sink.ts', import.meta.url).href;
    const script = `
      const { createAuditSink } = await import(${JSON.stringify(sinkUrl)});
      const sink = await createAuditSink({ destination: process.env.AUDIT_FILE });
      for (let i = 0; i < 2000; i++) sink.write({ event: 'request', n: i });
      process.exit(0);`;
    await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, AUDIT_FILE: file },
    });
    assert.deepEqual(await verifyAuditFile(file), { ok: true, lines: 2000, head: { seq: 2000 - 1, hash: lastHash(await readFile(file, 'utf8')) }, problems: [], notes: [] });
  });

  it('reports a failing disk on every attempt, and flush and close reject instead of hanging', async () => {
    const metrics = createMetrics();
    const errors: string[] = [];
    // /dev/full accepts the open and fails every write with ENOSPC, like a full disk.
    const sink = await createAuditSink({ destination: '/dev/full', metrics, onError: (e) => errors.push(e.message) });
    sink.write({ event: 'request' });
    await assert.rejects(sink.flush(), /ENOSPC/);
    await assert.rejects(sink.close(), /ENOSPC/);
    assert.ok(errors.length >= 2 && errors.every((m) => m.includes('ENOSPC')));
    assert.match(await metrics.registry.metrics(), /airlock_audit_errors_total [1-9]/);
  });

  it('keeps counting failures after the reader of a pipe went away (EPIPE)', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = await open(fifo, 'r+'); // r+ does not block on a FIFO
    const metrics = createMetrics();
    const errors: string[] = [];
    const sink = await createAuditSink({ destination: fifo, metrics, onError: (e) => errors.push(e.message) });
    sink.write({ event: 'request' });
    await sink.flush();
    await reader.close();
    sink.write({ event: 'request' });
    await assert.rejects(sink.flush(), /EPIPE/);
    sink.write({ event: 'request' }); // pino made the destination a no-op: this must still count
    await assert.rejects(sink.close(), /EPIPE/);
    assert.equal(errors.length, 2);
    assert.match(await metrics.registry.metrics(), /airlock_audit_errors_total 2/);
  });

  it('rejects when the destination cannot be opened', async () => {
    await assert.rejects(createAuditSink({ destination: dir }), { code: 'EISDIR' });
    await assert.rejects(createAuditSink({ destination: dir, sync: true }), { code: 'EISDIR' });
  });

  it('drops and counts events beyond maxQueueBytes instead of growing without bound', async () => {
    const metrics = createMetrics();
    const errors: string[] = [];
    const sink = await createAuditSink({ destination: '/dev/full', metrics, maxQueueBytes: 1000, onError: (e) => errors.push(e.message) });
    // The lines of a turn reach the destination together at its end: three events (about 800 bytes)
    // per turn, of which only the first turn's fit in the queue while the disk refuses every write.
    for (let turn = 0; turn < 4; turn++) {
      for (let i = 0; i < 3; i++) sink.write({ event: 'request', padding: 'x'.repeat(100) });
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(errors.filter((m) => /^audit queue full \(1000 bytes not yet written\): 3 event\(s\) dropped$/.test(m)).length, 3);
    const counted = /^airlock_audit_errors_total (\d+)$/m.exec(await metrics.registry.getSingleMetricAsString('airlock_audit_errors_total'));
    assert.ok(Number(counted?.[1]) >= 9, 'every dropped event is counted');
    await assert.rejects(sink.close(), /ENOSPC/);
  });
});
