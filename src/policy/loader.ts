/**
 * Loads the policy folder on a worker thread (load-worker.ts): reading, parsing and compiling a
 * large policy takes long enough (about a second for 10,000 rules) that doing it on the main thread
 * would hold every request in flight. The worker is started on first use and again after it dies.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LoadResult } from './load.js';
import type { LoaderReply, LoaderRequest } from './load-worker.js';
import { joinPolicy } from './transfer.js';
import type { CompiledRule } from './types.js';

export type LoadOutcome = { changed: false } | { changed: true; result: LoadResult };

export interface PolicyLoader {
  /** The folder's policy if any file changed since the last load (every file re-read with `force`). */
  load(force?: boolean): Promise<LoadOutcome>;
  close(): Promise<void>;
}

// The worker is this module's sibling, as TypeScript under a loader or as the built JavaScript.
const WORKER = new URL(`./load-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

type Request = LoaderRequest extends infer R ? (R extends LoaderRequest ? Omit<R, 'seq'> : never) : never;

export function createPolicyLoader(dir: string): PolicyLoader {
  let worker: Worker | null = null;
  let seq = 0;
  const pending = new Map<number, { resolve: (r: LoaderReply) => void; reject: (err: Error) => void }>();

  const failAll = (err: Error): void => {
    worker = null;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(WORKER, { workerData: { dir } });
    // The proxy's lifetime is not the loader's business: an idle worker must not keep the process up.
    w.unref();
    w.on('message', (reply: LoaderReply) => {
      const p = pending.get(reply.seq);
      pending.delete(reply.seq);
      p?.resolve(reply);
    });
    w.on('error', (err) => failAll(new Error(`policy loader failed: ${err.message}`)));
    w.on('exit', (code) => {
      if (worker === w) failAll(new Error(`policy loader exited (code ${code})`));
    });
    return w;
  };
  const ask = (req: Request): Promise<LoaderReply> => {
    worker ??= start();
    const w = worker;
    const message = { ...req, seq: seq++ } as LoaderRequest;
    return new Promise((resolve, reject) => {
      pending.set(message.seq, { resolve, reject });
      w.postMessage(message);
    });
  };

  return {
    async load(force = false) {
      const reply = await ask({ kind: 'load', force });
      if (reply.kind === 'unchanged') return { changed: false };
      if (reply.kind === 'failed') return { changed: true, result: { ok: false, errors: reply.errors, warnings: reply.warnings } };
      if (reply.kind !== 'loaded') throw new Error(`policy loader answered ${reply.kind} to a load`);
      // One chunk per message, each in its own event-loop turn, so requests run in between.
      const chunks: CompiledRule[][] = [];
      for (let n = 0; n < reply.chunks; n++) {
        const part = await ask({ kind: 'chunk', n });
        if (part.kind !== 'chunk') throw new Error(`policy loader answered ${part.kind} to a chunk`);
        chunks.push(part.rules);
      }
      return { changed: true, result: { ok: true, policy: joinPolicy(reply.head, chunks), warnings: reply.warnings } };
    },
    async close() {
      const w = worker;
      worker = null;
      if (w) await w.terminate();
      failAll(new Error('policy loader closed'));
    },
  };
}
