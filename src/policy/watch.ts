import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import type { AuditSink } from '../audit/sink.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { formatPolicyError } from './errors.js';
import { createPolicyLoader, type LoadOutcome, type PolicyLoader } from './loader.js';
import type { CompiledPolicy, PolicyError } from './types.js';

export type ReloadResult =
  | { ok: true; changed: boolean; policy: CompiledPolicy }
  | { ok: false; errors: readonly PolicyError[] };

export interface PolicyHolder {
  current(): CompiledPolicy;
  /** Load the folder if it changed; `force` reads every file again (SIGHUP). */
  reload(force?: boolean): Promise<ReloadResult>;
  /** Emits `loaded` (policy) when a changed policy takes force and `rejected` (errors) when an edit is refused. */
  events: EventEmitter;
  /**
   * Record the first policy in force (audit `policy_loaded`, metrics, log): called once the process
   * serves, so a start that fails after loading the policy (a port taken, Redis refusing) leaves no
   * `policy_loaded` line for a policy that was never in force.
   */
  started(): void;
  close(): Promise<void>;
}

interface Deps {
  log: Logger;
  metrics: Metrics;
  audit: AuditSink;
}

/** Events within this window are one change (editors and ConfigMap updates write several files). */
const SETTLE_MS = 100;

/**
 * Holds the policy in force and replaces it when the folder changes. A new policy is compiled in
 * full before it replaces the old one, on the loader's thread (loader.ts); a broken edit leaves the
 * old one in force, logged and counted once. Changes are seen through fs.watch on the folder (which
 * also sees the `..data` symlink swap of a Kubernetes ConfigMap) and, as a backstop for filesystems
 * where watching is unreliable, by polling, which reads only files whose signature changed.
 */
export async function createPolicyHolder(dir: string, pollMs: number, deps: Deps, quietMs?: number): Promise<PolicyHolder | { errors: readonly PolicyError[] }> {
  const loader = createPolicyLoader(dir, quietMs);
  const first = await settledLoad(loader, true, deps).catch((err: unknown) => loadFailure(dir, err));
  if (!first.changed || !first.result.ok) {
    await loader.close();
    return { errors: first.changed && !first.result.ok ? first.result.errors : [{ file: dir, line: 0, col: 0, message: 'the policy loader returned nothing' }] };
  }
  let policy = first.result.policy;
  const events = new EventEmitter();
  for (const w of first.result.warnings) deps.log.warn({ file: w.file, line: w.line, col: w.col }, `policy warning: ${formatPolicyError(w)}`);
  let serving = false;

  // The same broken content is reported once, however often it is read again (a file that cannot be
  // read is read again at every poll).
  let lastRejected = '';
  const reject = (errors: readonly PolicyError[]): ReloadResult => {
    const key = errors.map(formatPolicyError).join('\n');
    if (key === lastRejected) return { ok: false, errors };
    lastRejected = key;
    deps.metrics.policyReloads.inc({ result: 'failure' });
    deps.metrics.policyLoaded.set(0);
    for (const e of errors) deps.log.error({ file: e.file, line: e.line, col: e.col }, `policy rejected: ${formatPolicyError(e)}`);
    deps.audit.write({
      event: 'policy_rejected',
      policy_version: policy.version,
      reason: 'the edited policy has errors; the previous policy stays in force',
      errors: errors.map(formatPolicyError),
    });
    events.emit('rejected', errors);
    return { ok: false, errors };
  };

  const reload = async (force: boolean): Promise<ReloadResult> => {
    const outcome = await settledLoad(loader, force, deps).catch((err: unknown) => loadFailure(dir, err));
    // Unchanged files: whatever their last load decided still stands (a rejected edit is reported once).
    if (!outcome.changed) return { ok: true, changed: false, policy };
    const result = outcome.result;
    if (!result.ok) return reject(result.errors);
    lastRejected = '';
    deps.metrics.policyLoaded.set(1);
    if (result.policy.version === policy.version) return { ok: true, changed: false, policy };
    policy = result.policy;
    for (const w of result.warnings) deps.log.warn(`policy warning: ${formatPolicyError(w)}`);
    deps.metrics.policyReloads.inc({ result: 'success' });
    if (serving) announce(policy, deps);
    events.emit('loaded', policy);
    return { ok: true, changed: true, policy };
  };
  // One reload at a time, in order: a reload asked for during another one sees the files as they are after it.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = (force = false): Promise<ReloadResult> => {
    const next = queue.then(() => reload(force));
    queue = next.catch(() => undefined);
    return next;
  };

  let timer: NodeJS.Timeout | null = null;
  const schedule = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void serialized();
    }, SETTLE_MS);
  };
  let watcher: FSWatcher | null = null;
  const startWatching = (): void => {
    try {
      watcher = watch(dir, { persistent: false }, schedule);
      watcher.on('error', (err) => {
        deps.log.warn({ err }, 'policy folder watch failed; relying on polling');
        watcher?.close();
        watcher = null;
      });
    } catch (err) {
      deps.log.warn({ err }, 'cannot watch the policy folder; relying on polling');
    }
  };
  startWatching();
  const poll = setInterval(() => {
    if (!watcher) startWatching();
    void serialized();
  }, pollMs);
  poll.unref();

  return {
    current: () => policy,
    reload: serialized,
    events,
    started: () => {
      if (serving) return;
      serving = true;
      announce(policy, deps);
    },
    close: async () => {
      clearInterval(poll);
      if (timer) clearTimeout(timer);
      watcher?.close();
      await loader.close();
    },
  };
}

/** Longest a load waits for files still being written before giving up for this round. */
const MAX_SETTLE_WAIT_MS = 30_000;

/** A load that waits while a changed file is still being written (it is then read again). */
async function settledLoad(loader: PolicyLoader, force: boolean, deps: Deps): Promise<LoadOutcome> {
  const deadline = Date.now() + MAX_SETTLE_WAIT_MS;
  for (;;) {
    const outcome = await loader.load(force);
    if (outcome.changed || outcome.retryInMs === undefined) return outcome;
    if (Date.now() + outcome.retryInMs > deadline) {
      deps.log.warn('a policy file is still being written; the policy in force stays until it settles (write files by rename)');
      return { changed: false };
    }
    await new Promise((resolve) => setTimeout(resolve, outcome.retryInMs));
  }
}

/** A loader that died is reported like a folder that can't be read: the policy in force stays. */
function loadFailure(dir: string, err: unknown): LoadOutcome {
  return { changed: true, result: { ok: false, errors: [{ file: dir, line: 0, col: 0, message: (err as Error).message }], warnings: [] } };
}

function announce(policy: CompiledPolicy, deps: Deps): void {
  deps.metrics.policyInForce(policy);
  deps.metrics.policyLastReloadSuccess.set(Date.now() / 1000);
  deps.metrics.policyLoaded.set(1);
  deps.audit.write({ event: 'policy_loaded', policy_version: policy.version, files: policy.files, rule_count: policy.rules.length });
  deps.log.info({ policy_version: policy.version, files: policy.files.length, rules: policy.rules.length }, 'policy in force');
}
