/**
 * The chain check of `airlock audit verify`, over the files a report reads. A file that continues the
 * chain of the one before it (a rotated trail: its first seq follows on) is verified from that file's
 * head (`--after`), so a line lost between the two is found; a file starting at seq 0 starts a chain
 * of its own (Airlock started on a new file). Problems are named by file and line.
 */
import type { KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';
import { parseChainLine } from '../chain.js';
import { verifyAuditFile, type Checkpoint } from '../verify.js';

export interface TrailVerification {
  /** False with --no-verify. */
  checked: boolean;
  ok: boolean;
  skipped: string | null;
  /** Whether `chain_signed` lines were checked against public keys. */
  signatures_checked: boolean;
  problems: { file: string; line: number; kind: string; message: string }[];
  notes: { file: string; line: number; message: string }[];
}

/** The first line of a file, as far as `max` bytes (audit lines are far shorter). */
async function firstLine(path: string, max = 1024 * 1024): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    while (length < max) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(buf, 0, buf.length, length);
      if (bytesRead === 0) break;
      const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
      chunks.push(buf.subarray(0, nl >= 0 ? nl : bytesRead));
      length += bytesRead;
      if (nl >= 0) break;
    }
    return Buffer.concat(chunks);
  } finally {
    await handle.close();
  }
}

/** Verifies `files` in order, each from the head of the one before when it continues that chain. */
export async function verifyTrail(files: readonly string[], keys?: readonly KeyObject[]): Promise<TrailVerification> {
  const verification: TrailVerification = { checked: true, ok: true, skipped: null, signatures_checked: keys !== undefined, problems: [], notes: [] };
  let previous: { file: string; head: Checkpoint | undefined } | null = null;
  for (const file of files) {
    const first = parseChainLine(await firstLine(file));
    const continues = typeof first !== 'string' && first.seq > 0;
    let after: Checkpoint | undefined;
    if (continues && previous !== null) {
      if (previous.head !== undefined) after = previous.head;
      else {
        // The file before is broken (reported): this one is checked from its own first line.
        after = { seq: first.seq - 1, hash: first.prev };
        verification.notes.push({ file, line: 1, message: `not checked against ${previous.file}, which is broken` });
      }
    } else if (previous !== null && typeof first !== 'string') {
      verification.notes.push({ file, line: 1, message: 'starts a new chain (seq 0): Airlock started on a new file; events lost between it and the file before cannot be told' });
    }
    const result = await verifyAuditFile(file, { ...(keys === undefined ? {} : { keys }), ...(after === undefined ? {} : { after }) });
    for (const p of result.problems) verification.problems.push({ file, line: p.line, kind: p.kind, message: p.message });
    for (const n of result.notes) verification.notes.push({ file, line: n.line, message: n.message });
    previous = { file, head: result.ok ? result.head : undefined };
  }
  verification.ok = verification.problems.length === 0;
  return verification;
}
