import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, it } from 'node:test';
import { readClientHello } from '../../src/proxy/client-hello.js';

/** The first bytes a real TLS client sends (Node's own TLS stack), captured by a plain TCP server. */
async function clientHelloFrom(options: { host: string; servername?: string }): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = tlsConnect({ port: (server.address() as AddressInfo).port, ...options, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const [sock] = await accepted;
  const [first] = (await once(sock, 'data')) as [Buffer];
  client.destroy();
  sock.destroy();
  server.close();
  return first;
}

/** `hello` (one record holding a ClientHello) with one more extension at the end, lengths fixed up. */
function withExtension(hello: Buffer, type: number, body: Buffer): Buffer {
  let at = 5 + 4 + 2 + 32;
  at += 1 + hello[at]!; // session id
  at += 2 + hello.readUInt16BE(at); // cipher suites
  at += 1 + hello[at]!; // compression methods
  const extLengthAt = at;
  const ext = Buffer.alloc(4 + body.length);
  ext.writeUInt16BE(type, 0);
  ext.writeUInt16BE(body.length, 2);
  body.copy(ext, 4);
  const out = Buffer.concat([hello, ext]);
  out.writeUInt16BE(out.readUInt16BE(extLengthAt) + ext.length, extLengthAt);
  out.writeUInt16BE(out.readUInt16BE(3) + ext.length, 3);
  const hs = (out[6]! << 16) | out.readUInt16BE(7);
  out[6] = (hs + ext.length) >> 16;
  out.writeUInt16BE((hs + ext.length) & 0xffff, 7);
  return out;
}

describe('readClientHello', () => {
  it('reads the server name of a real ClientHello', async () => {
    const hello = await clientHelloFrom({ host: '127.0.0.1', servername: 'api.example.com' });
    assert.deepEqual(readClientHello(hello), { kind: 'hello', serverName: 'api.example.com', ech: false });
  });

  it('reports no server name for a client connecting to an address', async () => {
    const hello = await clientHelloFrom({ host: '127.0.0.1', servername: '' });
    assert.deepEqual(readClientHello(hello), { kind: 'hello', serverName: null, ech: false });
  });

  it('sees an Encrypted Client Hello offer (its outer server name need not be where it goes)', async () => {
    const hello = await clientHelloFrom({ host: '127.0.0.1', servername: 'public.example.com' });
    assert.deepEqual(readClientHello(withExtension(hello, 0xfe0d, Buffer.from([0, 1, 2, 3]))), { kind: 'hello', serverName: 'public.example.com', ech: true });
  });

  it('asks for more bytes while the first record is incomplete', async () => {
    const hello = await clientHelloFrom({ host: '127.0.0.1', servername: 'api.example.com' });
    for (const n of [1, 4, 5, hello.length - 1]) assert.deepEqual(readClientHello(hello.subarray(0, n)), { kind: 'incomplete' }, String(n));
  });

  it('tells non-TLS traffic apart, and refuses a record that lies about its lengths', async () => {
    assert.deepEqual(readClientHello(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'not_tls' });
    assert.deepEqual(readClientHello(Buffer.from('SSH-2.0-OpenSSH\r\n')), { kind: 'not_tls' });
    const hello = await clientHelloFrom({ host: '127.0.0.1', servername: 'api.example.com' });
    const lying = Buffer.from(hello);
    lying.writeUInt8(0xff, 6); // handshake length far beyond the record
    assert.deepEqual(readClientHello(lying), { kind: 'malformed' });
    const notHello = Buffer.from(hello);
    notHello[5] = 0x02; // a ServerHello where a ClientHello must be
    assert.deepEqual(readClientHello(notHello), { kind: 'malformed' });
  });
});
