/**
 * Checks an audit file's hash chain and names the first problem: a malformed, edited, removed or
 * reordered line; and, given public keys, that the chain's signed heads (signing.ts) verify, so a
 * trail rewritten with recomputed hashes is caught too. Streams the file, so memory stays flat
 * however large it is.
 */
import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { GENESIS, isChainRestart, parseChainLine, type ChainLine } from './chain.js';
import { CHAIN_SIGNED, headSignatureValid } from './signing.js';

export interface VerifyProblem {
  /** 1-based line number. */
  line: number;
  kind: 'edited' | 'removed' | 'reordered' | 'malformed' | 'signature';
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Lines checked: every line when ok, otherwise up to the line where checking stopped. */
  lines: number;
  /**
   * The last line checked (its seq and hash): the checkpoint from which the next file of a rotated
   * trail is verified on its own (`--after SEQ:HASH`). Absent for an empty file.
   */
  head?: Checkpoint;
  /** The first problem. */
  problem?: VerifyProblem;
  /**
   * Every problem found: after a damaged line that Airlock restarted the chain from, the next segment
   * is verified too (an edit further down must not hide behind an earlier crash).
   */
  problems: VerifyProblem[];
  /** Things that are not problems but deserve a look, such as a chain restarted after a damaged line. */
  notes: { line: number; message: string }[];
}

/** Yields the file's lines as raw bytes (without '\n'); a last line without newline is yielded too. */
async function* readLines(file: string): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      yield buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
    }
    rest = buf;
  }
  if (rest.length > 0) yield rest;
}

const short = (hash: string): string => hash.slice(0, 12);
const events = (n: number): string => (n === 1 ? '1 event' : `${n} events`);

/**
 * After a forward jump in seq, looks further down the same chain for one of the skipped seqs:
 * found means the lines were moved (reordered), not found means they were removed.
 */
async function findLater(lines: AsyncGenerator<Buffer>, from: number, low: number, high: number): Promise<{ line: number; seq: number } | undefined> {
  let lineNo = from;
  for await (const bytes of lines) {
    lineNo++;
    const parsed = parseChainLine(bytes);
    if (typeof parsed === 'string') continue;
    if (isChainRestart(parsed)) return undefined; // a new chain: its seqs say nothing about this one
    if (parsed.seq >= low && parsed.seq <= high) return { line: lineNo, seq: parsed.seq };
  }
  return undefined;
}

/** A line of the chain, by its seq and hash: where a file is known to continue from. */
export interface Checkpoint {
  seq: number;
  hash: string;
}

/** `SEQ:HASH` as `audit verify` prints a file's head; null when malformed. */
export function parseCheckpoint(text: string): Checkpoint | null {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  return m ? { seq: Number(m[1]), hash: m[2]! } : null;
}

export interface VerifyOptions {
  /** Ed25519 public keys: every `chain_signed` line must verify with one, and at least one must be present. */
  keys?: readonly KeyObject[];
  /**
   * The file continues a chain from this line (the previous file's head, from a verification you
   * trust): its first line must follow it. Without it a file must start its chain (seq 0).
   */
  after?: Checkpoint;
}

/** Why a `chain_signed` line fails, or null when it signs the line before it with one of `keys` (unchecked without keys). */
function signatureProblem(line: ChainLine, keys: readonly KeyObject[] | undefined): string | null {
  const { signed_seq: seq, signed_hash: hash, signature, key_id: id } = line.fields;
  if (seq !== line.seq - 1 || hash !== line.prev || typeof signature !== 'string') return 'a chain_signed line must sign the line just before it';
  if (keys === undefined || headSignatureValid(keys, seq, hash, signature)) return null;
  return `the signature of seq ${seq} (key ${typeof id === 'string' ? id : '?'}) does not verify with the given public key: the trail was rewritten, or signed with another key`;
}

export async function verifyAuditFile(file: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const notes: VerifyResult['notes'] = [];
  const problems: VerifyProblem[] = [];
  const lines = readLines(file);
  let lineNo = 0;
  let previous: ChainLine | undefined;
  const head = (): Checkpoint | undefined => (previous === undefined ? undefined : { seq: previous.seq, hash: previous.hash });
  const fail = (line: number, kind: VerifyProblem['kind'], message: string): VerifyResult => {
    problems.push({ line, kind, message });
    return { ok: false, lines: lineNo, problem: problems[0], problems, notes };
  };
  // Signatures: how many verified (or were seen, without keys), and the first line no signature covers yet.
  let signatures = 0;
  let unsignedFrom: number | null = null;
  /** A line that passed the chain checks: signatures cover what came before them in their chain. */
  const signed = (line: ChainLine): string | null => {
    if (line.event !== CHAIN_SIGNED) {
      unsignedFrom ??= lineNo;
      return null;
    }
    const problem = signatureProblem(line, opts.keys);
    if (problem !== null) return problem;
    signatures++;
    unsignedFrom = null;
    return null;
  };

  try {
    for await (const bytes of lines) {
      lineNo++;
      const current = parseChainLine(bytes);
      if (typeof current === 'string') {
        // Airlock restarts the chain after a damaged last line (a crash mid-write); say so — it is
        // still a gap in the trail, so it still fails — and verify the new segment as well.
        const next = (await lines.next()).value;
        const restart = next !== undefined ? parseChainLine(next) : undefined;
        if (restart !== undefined && typeof restart !== 'string' && isChainRestart(restart)) {
          problems.push({
            line: lineNo,
            kind: 'malformed',
            message: `${current}; the next line is a chain_restarted event: Airlock found this line damaged when it started (for example after a crash during a write)`,
          });
          lineNo++;
          if (restart.computed !== restart.hash) return fail(lineNo, 'edited', `the line's content does not match its hash (seq ${restart.seq})`);
          if (restart.seq !== 0 || restart.prev !== GENESIS) return fail(lineNo, 'edited', 'a chain_restarted line must start a chain (seq 0, genesis prev)');
          notes.push({ line: lineNo, message: 'chain restarted; the segment after it is verified too' });
          previous = restart;
          // A new chain: no later signature covers the lines before it.
          unsignedFrom = null;
          signed(restart);
          continue;
        }
        return fail(lineNo, 'malformed', current);
      }
      if (current.computed !== current.hash) {
        return fail(lineNo, 'edited', `the line's content does not match its hash (seq ${current.seq})`);
      }

      const after = previous === undefined && !isChainRestart(current) ? opts.after : undefined;
      if (after !== undefined) {
        if (current.seq !== after.seq + 1) {
          const how = current.seq > after.seq + 1 ? `${events(current.seq - after.seq - 1)} missing between the checkpoint and line ${lineNo}` : `line ${lineNo} does not follow the checkpoint`;
          return fail(lineNo, current.seq > after.seq + 1 ? 'removed' : 'reordered', `${how}: the checkpoint is seq ${after.seq}, the file starts at seq ${current.seq}`);
        }
        if (current.prev !== after.hash) {
          return fail(lineNo, 'edited', `the first line expects the line before it to hash to ${short(current.prev)}…, but the checkpoint says ${short(after.hash)}… (the previous file was changed, or this is not its continuation)`);
        }
      } else if (previous === undefined) {
        if (current.seq > 0) {
          return fail(
            lineNo,
            'removed',
            `${events(current.seq)} missing before line ${lineNo}: the file starts at seq ${current.seq} ` +
              '(if it was rotated, give the previous file\'s head: airlock audit verify FILE --after SEQ:HASH, or verify the files concatenated in order: cat old new | airlock audit verify -)',
          );
        }
        if (current.prev !== GENESIS) {
          return fail(lineNo, 'edited', 'seq 0 but "prev" is not the genesis value');
        }
      } else if (isChainRestart(current)) {
        const reason = typeof current.fields.reason === 'string' ? `: ${current.fields.reason}` : '';
        notes.push({ line: lineNo, message: `chain restarted${reason}` });
      } else if (current.seq === previous.seq + 1) {
        if (current.prev !== previous.hash) {
          // Both lines hash correctly on their own, so the earlier one was replaced with a re-hashed line.
          return fail(
            lineNo - 1,
            'edited',
            `line ${lineNo} expects the previous line's hash to be ${short(current.prev)}…, ` +
              `but line ${lineNo - 1} hashes to ${short(previous.hash)}… (it was changed or replaced)`,
          );
        }
      } else if (current.seq > previous.seq + 1) {
        const moved = await findLater(lines, lineNo, previous.seq + 1, current.seq - 1);
        if (moved) {
          return fail(
            lineNo,
            'reordered',
            `seq ${current.seq} follows seq ${previous.seq}; seq ${moved.seq} appears later, at line ${moved.line}`,
          );
        }
        const missing = current.seq - previous.seq - 1;
        return fail(lineNo, 'removed', `${events(missing)} missing before line ${lineNo} (seq jumps from ${previous.seq} to ${current.seq})`);
      } else {
        const how = current.seq === previous.seq ? 'repeats' : 'comes after';
        return fail(lineNo, 'reordered', `seq ${current.seq} ${how} seq ${previous.seq} of line ${lineNo - 1}`);
      }
      previous = current;
      if (isChainRestart(current)) unsignedFrom = null;
      const bad = signed(current);
      if (bad !== null) return fail(lineNo, 'signature', bad);
    }
  } finally {
    await lines.return(undefined); // closes the file when stopping early
  }
  if (opts.keys !== undefined && lineNo > 0 && signatures === 0) {
    problems.push({ line: lineNo, kind: 'signature', message: 'no chain_signed line in the file: nothing shows this trail was written by Airlock (was it started with --audit-signing-key?)' });
  } else if (unsignedFrom !== null && signatures > 0) {
    const verb = opts.keys === undefined ? 'follow the last chain_signed line' : 'follow the last signature';
    notes.push({ line: unsignedFrom, message: `lines ${unsignedFrom}–${lineNo} ${verb}: chained, not yet signed (written since the last signing interval, or before a crash)` });
  }
  if (opts.keys === undefined && signatures > 0) notes.push({ line: lineNo, message: `${signatures} chain signature(s) not checked: give --public-key to check them` });
  const last = head();
  return problems.length > 0 ? { ok: false, lines: lineNo, problem: problems[0], problems, notes } : { ok: true, lines: lineNo, ...(last ? { head: last } : {}), problems, notes };
}
