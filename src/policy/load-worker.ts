/**
 * The policy loader's thread: parses, validates and compiles the policy files it is given, so a
 * large policy never stalls the proxy's event loop. A compiled policy goes back in pieces that the
 * main thread pulls one at a time (transfer.ts).
 */
import { parentPort } from 'node:worker_threads';
import type { PolicySource } from './folder.js';
import { loadPolicySources } from './load.js';
import { splitPolicy, type SplitPolicy } from './transfer.js';
import type { CompiledRule, PolicyError } from './types.js';

export type LoaderRequest =
  | { seq: number; kind: 'load'; sources: readonly PolicySource[] }
  /** Rules chunk `n` of the policy the last `load` answered with. */
  | { seq: number; kind: 'chunk'; n: number };

export type LoaderReply = { seq: number } & (
  | { kind: 'failed'; errors: PolicyError[]; warnings: PolicyError[] }
  | { kind: 'loaded'; head: SplitPolicy['head']; chunks: number; warnings: PolicyError[] }
  | { kind: 'chunk'; rules: CompiledRule[] }
);

/** Rules per chunk: a few milliseconds of deserialization on the receiving thread. */
const CHUNK_RULES = 500;

const port = parentPort!;
let last: SplitPolicy | null = null;

function answer(req: LoaderRequest): LoaderReply {
  const { seq } = req;
  if (req.kind === 'chunk') return { seq, kind: 'chunk', rules: last?.chunks[req.n] ?? [] };
  const result = loadPolicySources(req.sources);
  if (!result.ok) return { seq, kind: 'failed', errors: result.errors, warnings: result.warnings };
  last = splitPolicy(result.policy, CHUNK_RULES);
  return { seq, kind: 'loaded', head: last.head, chunks: last.chunks.length, warnings: result.warnings };
}

port.on('message', (req: LoaderRequest) => port.postMessage(answer(req)));
