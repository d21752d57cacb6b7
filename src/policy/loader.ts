/**
 * Loads the policy folder: reads what changed (folder.ts) on this thread, and has a worker thread
 * (load-worker.ts) parse and compile it, which for a large policy takes long enough (over a second
 * for 10,000 rules) that doing it here would hold every request in flight. The worker lives for one
 * load: a parked thread would keep its own heap and modules (about 20 MiB) for the rare edit.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PolicyFolder, type PolicySource } from './folder.js';
import type { LoadResult } from './load.js';
import type { LoaderReply, LoaderRequest } from './load-worker.js';
import { joinPolicy } from './transfer.js';
import type { CompiledRule } from './types.js';

/** `retryInMs`: a changed file may still be being written; nothing was loaded. */
export type LoadOutcome = { changed: false; retryInMs?: number } | { changed: true; result: LoadResult };

export interface PolicyLoader {
  /** The folder's policy if any file changed since the last load (every file re-read with `force`). */
  load(force?: boolean): Promise<LoadOutcome>;
  close(): Promise<void>;
}

// The worker is this module's sibling, as TypeScript under a loader or as the built JavaScript.
const WORKER = new URL(`./load-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

type Request = LoaderRequest extends infer R ? (R extends LoaderRequest ? Omit<R, 'seq'> : never) : never;

export function createPolicyLoader(dir: string, quietMs?: number): PolicyLoader {
  const folder = new PolicyFolder(dir, quietMs);
  let worker: Worker | null = null;
  let seq = 0;
  const pending = new Map<number, { resolve: (r: LoaderReply) => void; reject: (err: Error) => void }>();

  const failAll = (err: Error): void => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(WORKER);
    // The proxy's lifetime is not the loader's business: the worker must not keep the process up.
    w.unref();
    w.on('message', (reply: LoaderReply) => {
      const p = pending.get(reply.seq);
      pending.delete(reply.seq);
      p?.resolve(reply);
    });
    w.on('error', (err) => failAll(new Error(`policy loader failed: ${err.message || err.name}`)));
    w.on('exit', (code) => failAll(new Error(`policy loader exited (code ${code})`)));
    return w;
  };
  const ask = (w: Worker, req: Request): Promise<LoaderReply> => {
    const message = { ...req, seq: seq++ } as LoaderRequest;
    return new Promise((resolve, reject) => {
      pending.set(message.seq, { resolve, reject });
      w.postMessage(message);
    });
  };
  const compile = async (sources: readonly PolicySource[]): Promise<LoadResult> => {
    const w = (worker = start());
    try {
      const reply = await ask(w, { kind: 'load', sources });
      if (reply.kind === 'failed') return { ok: false, errors: reply.errors, warnings: reply.warnings };
      if (reply.kind !== 'loaded') throw new Error(`policy loader answered ${reply.kind} to a load`);
      // One chunk per message, each in its own event-loop turn, so requests run in between.
      const chunks: CompiledRule[][] = [];
      for (let n = 0; n < reply.chunks; n++) {
        const part = await ask(w, { kind: 'chunk', n });
        if (part.kind !== 'chunk') throw new Error(`policy loader answered ${part.kind} to a chunk`);
        chunks.push(part.rules);
      }
      return { ok: true, policy: joinPolicy(reply.head, chunks), warnings: reply.warnings };
    } finally {
      worker = null;
      w.removeAllListeners('exit');
      await w.terminate();
    }
  };

  return {
    async load(force = false) {
      const read = await folder.read(force);
      if (!read.ok) return { changed: true, result: { ok: false, errors: [read.error], warnings: [] } };
      if ('retryInMs' in read) return { changed: false, retryInMs: read.retryInMs };
      if (!read.changed) return { changed: false };
      return { changed: true, result: await compile(read.sources) };
    },
    async close() {
      const w = worker;
      worker = null;
      failAll(new Error('policy loader closed'));
      if (w) await w.terminate();
    },
  };
}
