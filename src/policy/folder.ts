/**
 * Reading the policy folder, remembering what was read: a file whose identity, size and times are
 * unchanged is not read again, and one that was rewritten with the same bytes counts as unchanged.
 * So polling a large policy costs a directory listing and a stat per file.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { PolicyError } from './types.js';

export interface PolicySource {
  file: string;
  text: string;
}

export type FolderRead =
  | { ok: true; changed: boolean; sources: readonly PolicySource[] }
  /** A changed file may still be being written: nothing is put in force; read again after this long. */
  | { ok: true; changed: false; retryInMs: number }
  | { ok: false; error: PolicyError };

const POLICY_FILE = /\.ya?ml$/i;

/**
 * A file modified this recently may be rewritten again within the file system's timestamp
 * granularity without its signature changing: it is read again until it is older than this.
 */
const SETTLED_MS = 2000;

interface Seen {
  /** Device, inode, size, modification and change times: any rewrite changes one of them. */
  signature: string;
  /** False while the file is too recently modified for its signature to be trusted. */
  settled: boolean;
  digest: string;
  source: PolicySource;
}

/** A changed file modified less than this long ago may still be being written. */
export const DEFAULT_QUIET_MS = 1000;

export class PolicyFolder {
  private seen = new Map<string, Seen>();

  /**
   * `quietMs`: how long a changed file must have been left alone before it is put in force. A file
   * rewritten in place is read mid-write otherwise — a valid prefix without its last rule.
   */
  constructor(
    readonly dir: string,
    private readonly quietMs = DEFAULT_QUIET_MS,
  ) {}

  /**
   * Every `*.yaml`/`*.yml` directly in the folder. Names starting with `.` are skipped (a Kubernetes
   * ConfigMap mount keeps its real files under `..data`; the visible names are symlinks to them, and
   * stat follows them, so the swap of `..data` changes every file's signature). `force` reads every
   * file again whatever its signature.
   */
  async read(force = false): Promise<FolderRead> {
    const folderError = (message: string): FolderRead => ({ ok: false, error: { file: this.dir, line: 0, col: 0, message } });
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      return folderError(`cannot read the policy folder: ${(err as Error).message}`);
    }
    const next = new Map<string, Seen>();
    let changed = false;
    for (const entry of entries) {
      if (entry.name.startsWith('.') || !POLICY_FILE.test(entry.name)) continue;
      if (!entry.isFile() && !entry.isSymbolicLink()) continue;
      const file = path.join(this.dir, entry.name);
      try {
        const info = await stat(file);
        if (!info.isFile()) continue;
        const signature = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
        const before = this.seen.get(file);
        if (!force && before?.settled === true && before.signature === signature) {
          next.set(file, before);
          continue;
        }
        const text = await readFile(file, 'utf8');
        const digest = createHash('sha256').update(text).digest('hex');
        if (before?.digest !== digest) {
          // New content: only once the file has been left alone for quietMs, and did not change while read.
          const age = Date.now() - Math.max(info.mtimeMs, info.ctimeMs);
          const after = await stat(file);
          const still = `${after.dev}:${after.ino}:${after.size}:${after.mtimeMs}:${after.ctimeMs}` === signature;
          if ((this.quietMs > 0 && age < this.quietMs) || !still) return { ok: true, changed: false, retryInMs: still ? this.quietMs - age : Math.max(this.quietMs, 10) };
          changed = true;
        }
        const settled = Date.now() - Math.max(info.mtimeMs, info.ctimeMs) > SETTLED_MS;
        next.set(file, { signature, settled, digest, source: before?.digest === digest ? before.source : { file, text } });
      } catch (err) {
        // The file stays unknown, so it is read again next time.
        this.seen.delete(file);
        return { ok: false, error: { file, line: 0, col: 0, message: `cannot read: ${(err as Error).message}` } };
      }
    }
    if (next.size !== this.seen.size || [...this.seen.keys()].some((f) => !next.has(f))) changed = true;
    this.seen = next;
    if (next.size === 0) return folderError('no policy files (*.yaml, *.yml) in the policy folder; refusing to run without a policy');
    return { ok: true, changed, sources: [...next.values()].map((s) => s.source) };
  }
}
