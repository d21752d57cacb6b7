/**
 * Reads trail files line by line into the aggregator: one line in memory at a time, so a trail of
 * any size can be reported on.
 */
import { createReadStream } from 'node:fs';
import type { Aggregator } from './aggregate.js';

export interface FileInfo {
  path: string;
  /** Lines as `audit verify` counts them: one per newline, and a last line without one. */
  lines: number;
  /** The file ends inside a line (a crash mid-write): with the next file after it, that line runs on. */
  partial_end: boolean;
  events: number;
  unreadable: number;
  first_event: string | null;
  last_event: string | null;
}

/** The file's lines as raw bytes, without '\n'; `end.partial` tells whether the last one had none. */
export async function* fileLines(path: string, end: { partial: boolean } = { partial: false }): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      yield buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
    }
    // Copied: a subarray would keep the whole read chunk alive.
    rest = Buffer.from(buf);
  }
  end.partial = rest.length > 0;
  if (rest.length > 0) yield rest;
}

/** An audit event, or null when the line is not a JSON object with a time and an event. */
export function parseEvent(bytes: Buffer): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const e = value as Record<string, unknown>;
  return typeof e.time === 'string' && typeof e.event === 'string' ? e : null;
}

/** Feeds every file, in the order given (oldest first for a rotated trail), to `aggregator`. */
export async function readTrail(files: readonly string[], aggregator: Aggregator): Promise<FileInfo[]> {
  const infos: FileInfo[] = [];
  for (const path of files) {
    const info: FileInfo = { path, lines: 0, partial_end: false, events: 0, unreadable: 0, first_event: null, last_event: null };
    const end = { partial: false };
    for await (const bytes of fileLines(path, end)) {
      info.lines++;
      const event = parseEvent(bytes);
      if (event === null) {
        info.unreadable++;
        aggregator.unreadable();
        continue;
      }
      info.events++;
      info.first_event ??= event.time as string;
      info.last_event = event.time as string;
      aggregator.add(event);
    }
    info.partial_end = end.partial;
    infos.push(info);
  }
  return infos;
}
