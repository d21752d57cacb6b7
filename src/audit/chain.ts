/**
 * The hash chain shared by the writer and the verifier. A line is
 *   {…event fields…,"seq":N,"prev":"<hash of line N-1>","hash":"<sha256 hex>"}
 * where `hash` covers the line's exact bytes with the `,"hash":"…"` part removed. Working on the raw
 * bytes (not on re-serialized JSON) makes the check independent of key order and number formatting.
 */
import { createHash, hash as digest } from 'node:crypto';

/** `prev` of the first line of a chain. */
export const GENESIS = '0'.repeat(64);

/** The event that opens a new chain in a file whose last line was unusable. */
export const CHAIN_RESTARTED = 'chain_restarted';

const HEX64 = /^[0-9a-f]{64}$/;
const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/;
/** Byte length of `,"hash":"<64 hex>"}`. */
const HASH_SUFFIX_LENGTH = 75;

/**
 * Adds `seq` and `prev` to a serialized JSON object (`{…}` without newline), hashes it and appends
 * `hash`. Returns the sealed line without newline and its hash.
 */
export function sealLine(json: string, seq: number, prev: string): { line: string; hash: string } {
  const body = `${json.slice(0, -1)},"seq":${seq},"prev":"${prev}"}`;
  const hash = digest('sha256', body, 'hex');
  return { line: `${body.slice(0, -1)},"hash":"${hash}"}`, hash };
}

export interface ChainLine {
  seq: number;
  prev: string;
  /** The hash written on the line. */
  hash: string;
  /** The hash recomputed from the line's bytes: differs from `hash` when the line was edited. */
  computed: string;
  event: string;
  /** The parsed object, for fields such as a restart's `reason`. */
  fields: Record<string, unknown>;
}

/** Parses one line (bytes without the newline). Returns a message saying what is wrong when it is not a chain line. */
export function parseChainLine(bytes: Buffer): ChainLine | string {
  if (bytes.length === 0) return 'empty line';
  const text = bytes.toString('utf8');
  const suffix = HASH_SUFFIX.exec(text);
  if (!suffix) return 'the line does not end with a "hash" field';
  let fields: unknown;
  try {
    fields = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) return 'not a JSON object';
  const obj = fields as Record<string, unknown>;
  const { seq, prev, event, time } = obj;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return 'missing or invalid "seq"';
  if (typeof prev !== 'string' || !HEX64.test(prev)) return 'missing or invalid "prev"';
  if (typeof event !== 'string' || event === '') return 'missing or invalid "event"';
  if (typeof time !== 'string') return 'missing or invalid "time"';
  const computed = createHash('sha256')
    .update(bytes.subarray(0, bytes.length - HASH_SUFFIX_LENGTH))
    .update('}')
    .digest('hex');
  return { seq, prev, hash: suffix[1] as string, computed, event, fields: obj };
}

/** Whether a parsed line opens a new chain the way the writer does it after finding a damaged last line. */
export function isChainRestart(line: ChainLine): boolean {
  return line.event === CHAIN_RESTARTED && line.seq === 0 && line.prev === GENESIS;
}
