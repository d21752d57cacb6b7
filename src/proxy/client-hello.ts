/**
 * The server name (SNI) in a TLS ClientHello, read without terminating TLS, so a raw tunnel can check
 * that the client names the host the CONNECT was decided for.
 */

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXTENSION = 0x0000;
/** Encrypted Client Hello (draft-ietf-tls-esni): the real server name is in the encrypted inner hello. */
const ECH_EXTENSION = 0xfe0d;
const HOST_NAME = 0x00;
/** A ClientHello larger than this is not waited for (TLS records are at most 16 KiB plus header). */
export const MAX_CLIENT_HELLO = 16 * 1024 + 5;

export type ClientHello =
  /** More bytes are needed to read the first record. */
  | { kind: 'incomplete' }
  /** Not a TLS handshake, or malformed: nothing to check (a non-TLS protocol), or refuse (malformed TLS). */
  | { kind: 'not_tls' }
  | { kind: 'malformed' }
  /**
   * `serverName` is null when the client sends no SNI (e.g. it connects to an IP address); `ech` when
   * it offers Encrypted Client Hello, whose outer server name need not be the server it reaches.
   */
  | { kind: 'hello'; serverName: string | null; ech: boolean };

/** Parse the first TLS record in `data` (the bytes a client sent first). */
export function readClientHello(data: Buffer): ClientHello {
  if (data.length === 0) return { kind: 'incomplete' };
  if (data[0] !== HANDSHAKE) return { kind: 'not_tls' };
  if (data.length < 5) return { kind: 'incomplete' };
  const recordEnd = 5 + data.readUInt16BE(3);
  if (data.length < recordEnd) return { kind: 'incomplete' };
  const r = new Reader(data.subarray(5, recordEnd));
  try {
    if (r.u8() !== CLIENT_HELLO) return { kind: 'malformed' };
    const hello = new Reader(r.bytes(r.u24()));
    hello.advance(2 + 32); // client_version, random
    hello.advance(hello.u8()); // session_id
    hello.advance(hello.u16()); // cipher_suites
    hello.advance(hello.u8()); // compression_methods
    if (hello.done()) return { kind: 'hello', serverName: null, ech: false };
    const extensions = new Reader(hello.bytes(hello.u16()));
    let serverName: string | null = null;
    let ech = false;
    while (!extensions.done()) {
      const type = extensions.u16();
      const body = new Reader(extensions.bytes(extensions.u16()));
      if (type === ECH_EXTENSION) ech = true;
      if (type !== SERVER_NAME_EXTENSION || serverName !== null) continue;
      const names = new Reader(body.bytes(body.u16()));
      while (!names.done() && serverName === null) {
        const nameType = names.u8();
        const name = names.bytes(names.u16());
        if (nameType === HOST_NAME) serverName = name.toString('latin1');
      }
    }
    return { kind: 'hello', serverName, ech };
  } catch {
    return { kind: 'malformed' };
  }
}

/** Bounds-checked reads: a ClientHello that lies about its lengths is malformed, never an overread. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  done(): boolean {
    return this.at >= this.buf.length;
  }
  private take(n: number): number {
    if (this.at + n > this.buf.length) throw new RangeError('truncated');
    const start = this.at;
    this.at += n;
    return start;
  }
  u8(): number {
    return this.buf[this.take(1)]!;
  }
  u16(): number {
    return this.buf.readUInt16BE(this.take(2));
  }
  u24(): number {
    const i = this.take(3);
    return (this.buf[i]! << 16) | this.buf.readUInt16BE(i + 1);
  }
  bytes(n: number): Buffer {
    const i = this.take(n);
    return this.buf.subarray(i, i + n);
  }
  advance(n: number): void {
    this.take(n);
  }
}
