/**
 * A TCP relay in front of a real redis-server that can hold back or lose the reply to chosen commands:
 * what a slow or flaky network does to a Redis client. It reads the RESP stream both ways, so it
 * knows which reply answers which command (Redis answers each connection's commands in order).
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A command as the client sent it: name first (upper-cased), then its arguments. */
export type RedisCommand = string[];
type Match = (cmd: RedisCommand) => boolean;

export interface HeldReply {
  /** Resolves when Redis has run a matching command (its reply is then held). */
  seen: Promise<void>;
  /** Resolves when Redis has answered another matching command after that one (a client asking again). */
  askedAgain: Promise<void>;
  /** Pass the held reply, and everything queued behind it, on to the client. */
  release(): void;
}

export interface RedisRelay {
  url: string;
  /**
   * The reply to the next command matching `match` that Redis runs (error replies such as NOSCRIPT
   * do not count) is held until released; later replies on that connection queue behind it.
   */
  hold(match: Match): HeldReply;
  /** The next command matching `match` runs, but its reply never arrives: the client's connection is cut instead. */
  drop(match: Match): Promise<void>;
  close(): Promise<void>;
}

/** The end offset of one complete RESP value starting at `at`, or -1 while incomplete. */
function valueEnd(buf: Buffer, at: number): number {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return -1;
  const type = String.fromCharCode(buf[at]!);
  const n = Number(buf.toString('latin1', at + 1, eol));
  switch (type) {
    case '+':
    case '-':
    case ':':
      return eol + 2;
    case '$':
      return n < 0 ? eol + 2 : eol + 2 + n + 2 <= buf.length ? eol + 2 + n + 2 : -1;
    case '*': {
      let end = eol + 2;
      for (let i = 0; i < n; i++) {
        if (end >= buf.length) return -1;
        end = valueEnd(buf, end);
        if (end < 0) return -1;
      }
      return end;
    }
    default:
      throw new Error(`relay: unexpected RESP type ${JSON.stringify(type)}`);
  }
}

/** A client command (an array of bulk strings) as strings. */
function commandOf(frame: Buffer): RedisCommand {
  const out: string[] = [];
  let at = frame.indexOf('\r\n') + 2;
  while (at < frame.length) {
    const eol = frame.indexOf('\r\n', at);
    const len = Number(frame.toString('latin1', at + 1, eol));
    out.push(frame.toString('utf8', eol + 2, eol + 2 + len));
    at = eol + 2 + len + 2;
  }
  if (out.length > 0) out[0] = out[0]!.toUpperCase();
  return out;
}

/** Splits a byte stream into complete RESP values. */
class Frames {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buf.length === 0) break;
      const end = valueEnd(this.buf, 0);
      if (end < 0) break;
      frames.push(this.buf.subarray(0, end));
      this.buf = this.buf.subarray(end);
    }
    return frames;
  }
}

type Fault = { kind: 'hold'; match: Match; seen: () => void; askedAgain: () => void; released: Promise<void> } | { kind: 'drop'; match: Match; done: () => void };

export async function startRedisRelay(target: { port: number }): Promise<RedisRelay> {
  const faults: Fault[] = [];
  /** One-shot watchers of commands Redis answered without an error. */
  const watchers = new Set<(cmd: RedisCommand) => boolean>();
  const sockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: target.port });
    sockets.add(client).add(upstream);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));

    // One entry per command in flight on this connection, in order.
    const inFlight: RedisCommand[] = [];
    const fromClient = new Frames();
    const fromServer = new Frames();
    // Replies go out in order, each after whatever held the one before it.
    let outbound: Promise<void> = Promise.resolve();

    client.on('data', (chunk: Buffer) => {
      for (const frame of fromClient.push(chunk)) {
        inFlight.push(commandOf(frame));
        upstream.write(frame);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      for (const frame of fromServer.push(chunk)) {
        const cmd = inFlight.shift() ?? [];
        const failed = frame[0] === 0x2d; // '-': Redis refused it (NOSCRIPT, …): not the run a fault waits for
        const i = failed ? -1 : faults.findIndex((f) => f.match(cmd));
        const fault = i >= 0 ? faults.splice(i, 1)[0]! : null;
        if (!failed) for (const w of [...watchers]) if (w(cmd)) watchers.delete(w);
        if (fault?.kind === 'hold') {
          fault.seen();
          watchers.add((next) => fault.match(next) && (fault.askedAgain(), true));
        }
        if (fault?.kind === 'drop') {
          outbound = outbound.then(() => {
            cut();
            fault.done();
          });
          continue;
        }
        if (fault?.kind === 'hold') outbound = outbound.then(() => fault.released);
        outbound = outbound.then(() => {
          if (!client.destroyed) client.write(frame);
        });
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;

  return {
    url: `redis://127.0.0.1:${port}`,
    hold(match) {
      let seen!: () => void;
      let askedAgain!: () => void;
      let release!: () => void;
      const seenP = new Promise<void>((r) => (seen = r));
      const askedAgainP = new Promise<void>((r) => (askedAgain = r));
      const released = new Promise<void>((r) => (release = r));
      faults.push({ kind: 'hold', match, seen, askedAgain, released });
      return { seen: seenP, askedAgain: askedAgainP, release };
    },
    drop(match) {
      return new Promise<void>((done) => faults.push({ kind: 'drop', match, done }));
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A call of one of Airlock's store scripts, told apart by its key count and argument count. */
export function storeScript(cmd: RedisCommand, keys: number, args: number): boolean {
  return (cmd[0] === 'EVALSHA' || cmd[0] === 'EVAL') && cmd[2] === String(keys) && cmd.length === 3 + keys + args;
}
