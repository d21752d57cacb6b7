/**
 * The audit writer: events become JSON lines sealed into a hash chain (see chain.ts), written through
 * pino's destination (sonic-boom) in append mode.
 */
import { mkdir, open, stat } from 'node:fs/promises';
import { open as openCallback } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { once } from 'node:events';
import pino from 'pino';
import type { Metrics } from '../metrics/metrics.js';
import { CHAIN_RESTARTED, GENESIS, parseChainLine, sealLine } from './chain.js';
import type { AuditEvent } from './events.js';
import { scrubEvent } from './redact.js';
import { CHAIN_SIGNED, type HeadSigner } from './signing.js';

export interface AuditSink {
  /** Queues one event. Never throws: failures go to `onError` and the `airlock_audit_errors_total` metric. */
  write(event: AuditEvent): void;
  /** Resolves once everything written so far has reached the file descriptor. */
  flush(): Promise<void>;
  /**
   * Hands what is queued to the file descriptor now, synchronously (one write(2)): called before
   * Airlock answers an agent itself, so what the agent was told is on record even if the process
   * dies right after. The allowed path does not: its lines go with the turn's batch.
   */
  commit(): void;
  /** Flushes, then closes the file. Later writes are counted as errors. */
  close(): Promise<void>;
}

export interface AuditSinkOptions {
  /** `'stdout'` or a file path (created with its folders if absent, appended to). */
  destination: 'stdout' | string;
  /**
   * Write each line before write() returns (one write(2) per event). By default the lines of one
   * event-loop turn are written together, synchronously, at the end of that turn.
   */
  sync?: boolean;
  /** Counts events written and write failures. Optional so tools and tests can run without metrics. */
  metrics?: Pick<Metrics, 'auditEvents' | 'auditErrors'>;
  /** Told about every write failure. Default: a line on stderr, at most one every 10 s. */
  onError?: (err: Error) => void;
  /**
   * Most bytes held in memory while the destination is not keeping up (or failing, e.g. a full disk).
   * Events beyond it are dropped and counted as errors, so a dead disk cannot exhaust memory. Default 64 MiB.
   */
  maxQueueBytes?: number;
  /** Signs the chain's head (signing.ts) every `signIntervalMs` when lines were written since, and at close. */
  signer?: HeadSigner;
  /** Default 60 s. */
  signIntervalMs?: number;
}

/** Where a file's chain continues from. */
interface ChainStart {
  seq: number;
  prev: string;
  /** Set when the last line was unusable: a new chain starts with a `chain_restarted` event. */
  restartReason?: string;
  /** The file does not end with a newline (a crash mid-write): one must be written before our first line. */
  needsNewline: boolean;
}

/** An empty write: makes sonic-boom retry what it has queued. */
const EMPTY = Buffer.alloc(0);

/** Below sonic-boom's 16 KiB maxWrite, as it requires. */
const BATCH_BYTES = 8 * 1024;

const FRESH: ChainStart = { seq: 0, prev: GENESIS, needsNewline: false };
const TAIL_CHUNK = 16 * 1024;

/** A plain fd (not a FileHandle, which would close it when garbage-collected) for sonic-boom to own. */
const openFd = promisify(openCallback);

/** Reads just enough of the file's end to find its last line. */
async function readChainStart(file: string): Promise<ChainStart> {
  let size;
  try {
    const info = await stat(file);
    // A pipe or device (/dev/stdout, a FIFO) has no history to continue, and opening it to read could block.
    if (!info.isFile()) return FRESH;
    size = info.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return FRESH;
    throw err;
  }
  if (size === 0) return FRESH;
  const handle = await open(file, 'r');
  try {
    // Grow the window from the end until it holds a newline before the last line (or the whole file).
    let length = Math.min(size, TAIL_CHUNK);
    for (;;) {
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      const needsNewline = buf[length - 1] !== 0x0a;
      const end = needsNewline ? length : length - 1;
      const start = end === 0 ? 0 : buf.lastIndexOf(0x0a, end - 1) + 1;
      if (start > 0 || length === size) {
        const parsed = parseChainLine(buf.subarray(start, end));
        if (typeof parsed === 'string') {
          return {
            seq: 0,
            prev: GENESIS,
            needsNewline,
            restartReason: `the last line of the file is not a valid audit line (${parsed}); a new chain starts here`,
          };
        }
        return { seq: parsed.seq + 1, prev: parsed.hash, needsNewline };
      }
      length = Math.min(size, length * 2);
    }
  } finally {
    await handle.close();
  }
}

function defaultOnError(): (err: Error) => void {
  let last = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    // A full disk fails every write: one line per 10 s is enough to be noticed without flooding.
    if (now - last < 10_000) {
      suppressed++;
      return;
    }
    const more = suppressed > 0 ? ` (${suppressed} more failures since the last message)` : '';
    process.stderr.write(`airlock: audit write failed: ${err.message}${more}\n`);
    last = now;
    suppressed = 0;
  };
}

export async function createAuditSink(opts: AuditSinkOptions): Promise<AuditSink> {
  const eachLine = opts.sync ?? false;
  const toStdout = opts.destination === 'stdout';
  let start = FRESH;
  if (!toStdout) {
    await mkdir(dirname(opts.destination), { recursive: true });
    start = await readChainStart(opts.destination);
  }

  // Opened here rather than by sonic-boom so an open error simply rejects: a destination that failed
  // to open would stay registered for pino's exit flush and throw when the process exits.
  const fd = toStdout ? 1 : await openFd(opts.destination, 'a');
  const maxQueueBytes = opts.maxQueueBytes ?? 64 * 1024 * 1024;
  // pino.destination() (unlike a bare SonicBoom) also flushes synchronously on process exit.
  // Synchronous writes, batched per event-loop turn: the lines of a turn reach the fd with one
  // write(2) at its end (or sooner once BATCH_BYTES are queued), with no hand-off to libuv's thread
  // pool, which on the allowed path cost more than formatting the lines.
  // Buffer mode: in utf8 mode sonic-boom re-measures its pending string on every write, which grows
  // quadratic when lines queue up under load.
  const dest = pino.destination({
    fd,
    sync: true,
    minLength: eachLine ? 0 : BATCH_BYTES,
    maxLength: maxQueueBytes,
    contentMode: 'buffer',
  });
  // sonic-boom's typings describe only utf8 mode; in buffer mode write() takes bytes.
  const writeBytes = dest.write.bind(dest) as unknown as (bytes: Buffer) => boolean;
  const report = opts.onError ?? defaultOnError();
  const fail = (err: Error, events = 1): void => {
    opts.metrics?.auditErrors.inc(events);
    report(err);
  };

  await once(dest, 'ready');

  // flush() must wait for bytes to reach the fd; sonic-boom's own flush() returns at once with
  // minLength 0, so count bytes queued against the bytes its 'write' event reports as written.
  let pending = 0;
  let broken = false;
  let lastError: Error | undefined;
  let waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const settle = (): void => {
    if (pending > 0 || waiters.length === 0) return;
    const done = waiters;
    waiters = [];
    for (const w of done) w.resolve();
  };
  dest.on('write', (n: number) => {
    pending -= n;
    settle();
  });
  dest.on('drop', (data: Buffer) => {
    pending -= data.length;
    // A dropped write holds every line of its batch: count them all.
    let lines = 0;
    for (const b of data) if (b === 0x0a) lines++;
    fail(new Error(`audit queue full (${maxQueueBytes} bytes not yet written): ${lines} event(s) dropped`), Math.max(lines, 1));
    settle();
  });
  dest.on('error', (err: NodeJS.ErrnoException) => {
    // pino's own listener re-emits the first error, so the same object can arrive twice.
    if (err === lastError) return;
    lastError = err;
    fail(err);
    // pino turns the destination into a no-op after EPIPE (reader gone); later writes must still count as failures.
    if (err.code === 'EPIPE') broken = true;
    // The unwritten bytes stay queued in sonic-boom and are retried with the next write.
    const failed = waiters;
    waiters = [];
    for (const w of failed) w.reject(err);
  });

  const queue = (line: string): Buffer => {
    const bytes = Buffer.from(line);
    pending += bytes.length;
    return bytes;
  };

  if (start.needsNewline) writeBytes(queue('\n'));

  let seq = start.seq;
  let prev = start.prev;
  // Under load many events share a millisecond: format its timestamp once.
  let stampMs = -1;
  let stamp = '';
  // Formatted here rather than by a pino logger: JSON.stringify is a quarter of the cost of pino's
  // serializer, and this runs for every proxied request. Lines are still written by pino's destination.
  const format = (event: AuditEvent): string => {
    const fields = JSON.stringify(scrubEvent(event));
    const now = Date.now();
    if (now !== stampMs) {
      stampMs = now;
      stamp = `{"time":"${new Date(now).toISOString()}"`;
    }
    const sealed = sealLine(fields.length > 2 ? `${stamp},${fields.slice(1)}` : `${stamp}}`, seq, prev);
    seq++;
    prev = sealed.hash;
    return sealed.line + '\n';
  };

  // Lines of this event-loop turn not yet handed to the destination: encoded to bytes together, once.
  let batch = '';
  const handOver = (): void => {
    if (batch === '') return;
    const lines = batch;
    batch = '';
    if (broken) {
      fail(new Error('audit destination is gone (EPIPE)'), lines.split('\n').length - 1);
      return;
    }
    writeBytes(queue(lines));
  };

  let closed = false;
  const write = (event: AuditEvent): void => {
    try {
      if (closed) throw new Error('audit sink is closed');
      if (broken) throw new Error('audit destination is gone (EPIPE)');
      if (eachLine) {
        writeBytes(queue(format(event)));
      } else {
        batch += format(event);
        if (batch.length >= BATCH_BYTES) handOver();
        if (!turnScheduled) {
          turnScheduled = true;
          setImmediate(endOfTurn);
        }
      }
      opts.metrics?.auditEvents.inc({ event: event.event });
    } catch (err) {
      fail(err as Error);
    }
  };

  // Asks sonic-boom to write what it holds now. With minLength 0 its flush() does nothing but an
  // empty write does; with a batch size it is the other way round. (flush() with nothing queued
  // would push an empty string, which buffer mode can't take.)
  const writeQueued = (): void => {
    handOver();
    if (pending <= 0 || broken) return;
    if (eachLine) writeBytes(EMPTY);
    else dest.flush();
  };
  let turnScheduled = false;
  const endOfTurn = (): void => {
    turnScheduled = false;
    // After close() the destination is gone; close() itself wrote what was queued.
    if (!closed) writeQueued();
  };

  const flush = (): Promise<void> => {
    if (broken) return Promise.reject(new Error('audit destination is gone (EPIPE)'));
    handOver();
    if (pending <= 0) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    // Writes are synchronous: this settles the waiter (written, or rejected with the error, after a
    // failure too, since the queued bytes are retried) before it returns.
    writeQueued();
    return done;
  };
  // pino flushes only asynchronous destinations on exit; a batch still queued must not be lost.
  const onExit = (): void => {
    try {
      signHead();
      handOver();
      if (pending > 0 && !broken) dest.flushSync();
    } catch {
      // Exiting: nothing left to report to.
    }
  };
  process.on('exit', onExit);

  if (start.restartReason !== undefined) write({ event: CHAIN_RESTARTED, reason: start.restartReason });

  const commit = (): void => {
    if (!closed && !broken) writeQueued();
  };

  // The seq of the last chain_signed line: a head that is only that line needs no new signature.
  let signatureSeq = -1;
  const signHead = (): void => {
    const signer = opts.signer;
    if (signer === undefined || closed || seq === 0 || seq - 1 === signatureSeq) return;
    signatureSeq = seq;
    write({ event: CHAIN_SIGNED, ...signer.sign(seq - 1, prev) });
    commit();
  };
  const signing = opts.signer === undefined ? undefined : setInterval(signHead, opts.signIntervalMs ?? 60_000);
  signing?.unref();

  return {
    write,
    commit,
    flush,
    async close() {
      if (closed) return;
      clearInterval(signing);
      signHead();
      closed = true;
      process.off('exit', onExit);
      let flushError: unknown;
      try {
        await flush();
      } catch (err) {
        flushError = err;
      }
      // After EPIPE pino has made end() and destroy() no-ops: there is nothing left to close.
      if (!broken) {
        const finished = once(dest, 'close');
        // end() would retry the failing bytes forever; destroy() closes without writing them.
        if (flushError === undefined) dest.end();
        else dest.destroy();
        await finished;
      }
      if (flushError !== undefined) throw flushError;
    },
  };
}
