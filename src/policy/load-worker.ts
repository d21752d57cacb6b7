/**
 * The policy loader's thread: reads the policy folder, and parses, validates and compiles it when it
 * changed, so a large policy never stalls the proxy's event loop. A compiled policy goes back in
 * pieces that the main thread pulls one at a time (transfer.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PolicyFolder } from './folder.js';
import { loadPolicySources } from './load.js';
import { splitPolicy, type SplitPolicy } from './transfer.js';
import type { CompiledRule, PolicyError } from './types.js';

export type LoaderRequest =
  /** Read the folder; `force` reads every file again, whatever its signature (SIGHUP). */
  | { seq: number; kind: 'load'; force: boolean }
  /** Rules chunk `n` of the policy the last `load` answered with. */
  | { seq: number; kind: 'chunk'; n: number };

export type LoaderReply = { seq: number } & (
  | { kind: 'unchanged' }
  | { kind: 'failed'; errors: PolicyError[]; warnings: PolicyError[] }
  | { kind: 'loaded'; head: SplitPolicy['head']; chunks: number; warnings: PolicyError[] }
  | { kind: 'chunk'; rules: CompiledRule[] }
);

/** Rules per chunk: a few milliseconds of deserialization on the receiving thread. */
const CHUNK_RULES = 500;

const folder = new PolicyFolder((workerData as { dir: string }).dir);
const port = parentPort!;
let last: SplitPolicy | null = null;

async function answer(req: LoaderRequest): Promise<LoaderReply> {
  const { seq } = req;
  if (req.kind === 'chunk') return { seq, kind: 'chunk', rules: last?.chunks[req.n] ?? [] };
  last = null;
  const read = await folder.read(req.force);
  if (!read.ok) return { seq, kind: 'failed', errors: [read.error], warnings: [] };
  if (!read.changed) return { seq, kind: 'unchanged' };
  const result = loadPolicySources(read.sources);
  if (!result.ok) return { seq, kind: 'failed', errors: result.errors, warnings: result.warnings };
  last = splitPolicy(result.policy, CHUNK_RULES);
  return { seq, kind: 'loaded', head: last.head, chunks: last.chunks.length, warnings: result.warnings };
}

// One request at a time: the folder's memory of what it read must not be updated by two at once.
let queue: Promise<void> = Promise.resolve();
port.on('message', (req: LoaderRequest) => {
  queue = queue.then(async () => port.postMessage(await answer(req)));
});
