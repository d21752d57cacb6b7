/**
 * Child processes of a benchmark: started with a readiness check, their output kept for the error
 * message if they die, and all of them stopped when the benchmark ends (normally, by error or signal).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = join(import.meta.dirname, '../..');

export interface StartOptions<T> {
  /** Called with every output line until it returns non-null: that value is the result of start(). */
  ready?: (line: string, stream: 'stdout' | 'stderr') => T | null;
  env?: NodeJS.ProcessEnv;
  /** Lines after readiness (both streams). Default: dropped. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  timeoutMs?: number;
}

export class Processes {
  private readonly children: ChildProcess[] = [];
  private stopping = false;

  constructor() {
    process.once('exit', () => this.kill('SIGKILL'));
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
  }

  /** Start `command`; without `ready`, it is ready once it has been spawned. */
  start<T = null>(command: string, args: string[], opts: StartOptions<T> = {}): Promise<{ child: ChildProcess; value: T }> {
    const child = spawn(command, args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    const tail: string[] = [];
    const name = [command.split('/').pop(), ...args.slice(0, 2)].join(' ');
    return new Promise((resolve, reject) => {
      let ready = opts.ready === undefined;
      const timer = setTimeout(() => {
        if (ready) return;
        child.kill('SIGKILL');
        reject(new Error(`${name} was not ready within ${(opts.timeoutMs ?? 60_000) / 1000} s:\n${tail.join('\n')}`));
      }, opts.timeoutMs ?? 60_000);
      // Both pipes are read to the end: a full pipe would block the child.
      for (const s of ['stdout', 'stderr'] as const) {
        createInterface({ input: child[s]! }).on('line', (line) => {
          if (ready) return opts.onLine?.(line, s);
          tail.push(line);
          if (tail.length > 20) tail.shift();
          const value = opts.ready?.(line, s) ?? null;
          if (value === null) return;
          ready = true;
          clearTimeout(timer);
          resolve({ child, value });
        });
      }
      child.once('spawn', () => {
        if (opts.ready !== undefined) return;
        clearTimeout(timer);
        resolve({ child, value: null as T });
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        const message = `${name} exited (${signal ?? code}) ${ready ? 'during the benchmark' : 'before it was ready'}:\n${tail.join('\n')}`;
        if (!ready) reject(new Error(message));
        else if (!this.stopping) {
          console.error(message);
          process.exitCode = 1;
        }
      });
    });
  }

  /** A TypeScript file of this repository run with tsx, ready when it prints `READY <port>`. */
  async startTs(args: string[], env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
    const { child, value } = await this.start(process.execPath, ['--import', 'tsx', ...args], {
      ...(env ? { env } : {}),
      ready: (line, s) => (s === 'stdout' && line.startsWith('READY ') ? Number(line.split(' ')[1]) : null),
    });
    return { child, port: value };
  }

  /** Stop one child: SIGTERM, then SIGKILL after 10 s. */
  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    const wasStopping = this.stopping;
    this.stopping = true;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    this.stopping = wasStopping;
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.children.map((c) => this.stop(c)));
  }

  private kill(signal: NodeJS.Signals): void {
    this.stopping = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (bounded). */
export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A port that was free a moment ago, for servers that can't report the port they bound. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
