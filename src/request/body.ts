/**
 * Reading a request body into memory, up to a limit: for requests held for approval (stored whole)
 * and for bodies a rule inspects. Reading stops at the limit with what was read so far kept, so a body
 * that only needed looking at can still be forwarded whole (`withRest`).
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

export type BodyRead =
  | { ok: true; body: Buffer }
  /** More than the limit: `prefix` is what was read (the request is paused after it). */
  | { ok: false; reason: 'too_large'; prefix: Buffer }
  /** Not all there by the deadline: a client that stalls may not hold memory for long. */
  | { ok: false; reason: 'timeout' }
  | { ok: false; reason: 'aborted' };

/**
 * Read `req`'s body after `already` (bytes read from it before), at most `limit` bytes in all, within
 * `deadlineMs`. A Content-Length over the limit is refused before reading anything.
 */
export function readBody(req: IncomingMessage, limit: number, deadlineMs: number, already: Buffer = EMPTY): Promise<BodyRead> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.resolve({ ok: false, reason: 'too_large', prefix: already });
  if (req.readableEnded) return Promise.resolve({ ok: true, body: already });
  return new Promise((resolve) => {
    const chunks: Buffer[] = already.length > 0 ? [already] : [];
    let size = already.length;
    const timer = setTimeout(() => done({ ok: false, reason: 'timeout' }), deadlineMs);
    const done = (r: BodyRead): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      chunks.push(chunk);
      if (size > limit) {
        // Stop reading: the rest stays in the socket until someone resumes (or the connection closes).
        req.pause();
        done({ ok: false, reason: 'too_large', prefix: Buffer.concat(chunks, size) });
      }
    };
    const onEnd = (): void => done({ ok: true, body: Buffer.concat(chunks, size) });
    const onError = (): void => done({ ok: false, reason: 'aborted' });
    const onClose = (): void => {
      if (!req.complete) done({ ok: false, reason: 'aborted' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    // An earlier read that stopped at its own limit left the request paused.
    req.resume();
  });
}

const EMPTY = Buffer.alloc(0);

/** The whole body of a request of which `prefix` was read: the prefix, then the rest as it arrives. */
export function withRest(prefix: Buffer, req: IncomingMessage): Readable {
  return Readable.from(
    (async function* () {
      yield prefix;
      for await (const chunk of req) yield chunk as Buffer;
    })(),
    { objectMode: false },
  );
}
