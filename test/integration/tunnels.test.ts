import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

/** Open a CONNECT tunnel through the proxy; resolves with the socket once the 200 arrives (or the refusal text). */
function tunnel(proxyPort: number, authority: string): Promise<{ socket: Socket; status: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPort, '127.0.0.1', () => s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      resolve({ socket: s, status: head.slice(9, 12) });
    };
    s.on('data', onData);
    s.on('error', reject);
  });
}

/** Everything the socket receives until it closes. */
async function rest(s: Socket): Promise<string> {
  let data = '';
  s.on('data', (c: Buffer) => (data += c.toString('latin1')));
  await once(s, 'close');
  return data;
}

/** The first bytes a real TLS client sends, with an Encrypted Client Hello extension added. */
async function clientHelloWithEch(servername: string): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = tlsConnect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const [sock] = await accepted;
  const [hello] = (await once(sock, 'data')) as [Buffer];
  client.destroy();
  sock.destroy();
  server.close();
  let at = 5 + 4 + 2 + 32;
  at += 1 + hello[at]!;
  at += 2 + hello.readUInt16BE(at);
  at += 1 + hello[at]!;
  const ext = Buffer.from([0xfe, 0x0d, 0x00, 0x02, 0x00, 0x00]);
  const out = Buffer.concat([hello, ext]);
  out.writeUInt16BE(out.readUInt16BE(at) + ext.length, at);
  out.writeUInt16BE(out.readUInt16BE(3) + ext.length, 3);
  out.writeUInt16BE(out.readUInt16BE(7) + ext.length, 7);
  return out;
}

describe('host-level tunnels carry TLS naming the host, or HTTP decided request by request', () => {
  let up: Upstream;
  let al: TestAirlock;
  let proxyPort: number;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock(
      {
        'policy.yaml': `
version: 1
rules:
  - id: tunnels-to-localhost
    match: { hosts: [localhost] }
    action: allow
  - id: inspected-reads
    match: { methods: [GET], hosts: [127.0.0.1], paths: ["/v1/**"] }
    action: allow
`,
      },
      { maxTunnels: 3, tunnelIdleMs: 300 },
    );
    proxyPort = Number(new URL(al.proxyUrl).port);
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  const closedReasons = async (): Promise<string[]> => (await al.audit()).filter((e) => e.event === 'tunnel_closed').map((e) => String(e.reason));

  it('plain HTTP inside is decided request by request: a Host naming another host is refused', async () => {
    const { socket, status } = await tunnel(proxyPort, `localhost:${up.port}`);
    assert.equal(status, '200');
    const before = up.requests.length;
    socket.write(`GET /x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`);
    const answer = await rest(socket);
    assert.match(answer, /^HTTP\/1\.1 400/);
    assert.match(answer, /does not match the request target/);
    assert.equal(up.requests.length, before);
  });

  it('plain HTTP naming the host is forwarded', async () => {
    const { socket } = await tunnel(proxyPort, `localhost:${up.port}`);
    socket.write(`GET /ok HTTP/1.1\r\nHost: localhost:${up.port}\r\nConnection: close\r\n\r\n`);
    assert.match(await rest(socket), /^HTTP\/1\.1 200/);
    assert.equal(up.requests.at(-1)!.url, '/ok');
  });

  it('another protocol (SSH) is closed, and the audit says why', async () => {
    const { socket } = await tunnel(proxyPort, `localhost:${up.port}`);
    const before = up.requests.length;
    socket.write('SSH-2.0-OpenSSH_9.6\r\n');
    await rest(socket);
    assert.equal(up.requests.length, before);
    assert.ok((await closedReasons()).some((r) => /neither TLS nor HTTP/.test(r)));
  });

  it('TLS offering Encrypted Client Hello is closed: its outer name need not be where it goes', async () => {
    const { socket } = await tunnel(proxyPort, `localhost:${up.port}`);
    socket.write(await clientHelloWithEch('localhost'));
    await rest(socket);
    assert.ok((await closedReasons()).some((r) => /Encrypted Client Hello/.test(r)));
  });

  it('a tunnel nothing flows through is closed when idle', async () => {
    const { socket } = await tunnel(proxyPort, `localhost:${up.port}`);
    await rest(socket);
    assert.ok((await closedReasons()).some((r) => /^idle for 300 ms/.test(r)));
  });

  it('tunnels the client closes before sending a byte leave no descriptor behind', { timeout: 10_000 }, async () => {
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const baseline = fds();
    for (const authority of [`localhost:${up.port}`, `127.0.0.1:${up.port}`]) {
      for (let i = 0; i < 10; i++) {
        const { socket, status } = await tunnel(proxyPort, authority);
        assert.equal(status, '200');
        socket.end();
        await once(socket, 'close');
      }
    }
    let now = fds();
    for (let i = 0; i < 200 && now > baseline; i++) {
      await new Promise((r) => setImmediate(r));
      now = fds();
    }
    assert.ok(now <= baseline, `${now - baseline} descriptors more than before`);
  });

  it('one caller holds at most --max-tunnels open at once (429 with Retry-After)', async () => {
    const open = await Promise.all([1, 2, 3].map(() => tunnel(proxyPort, `localhost:${up.port}`)));
    assert.deepEqual(open.map((t) => t.status), ['200', '200', '200']);
    const fourth = connect(proxyPort, '127.0.0.1', () => fourth.write(`CONNECT localhost:${up.port} HTTP/1.1\r\nHost: localhost\r\n\r\n`));
    const answer = await rest(fourth);
    assert.match(answer, /^HTTP\/1\.1 429/);
    assert.match(answer, /retry-after: 5/i);
    for (const t of open) t.socket.destroy();
    await Promise.all(open.map((t) => once(t.socket, 'close')));
  });
});

describe('slow clients', () => {
  let up: Upstream;
  let al: TestAirlock;
  let proxyPort: number;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock({ 'policy.yaml': 'version: 1\nrules:\n  - { id: all, match: { hosts: ["*"] }, action: allow }\n' }, { clientHeadersTimeoutMs: 400 });
    proxyPort = Number(new URL(al.proxyUrl).port);
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  /** Start a request and send one more header line every 100 ms, never finishing: the answer once cut off. */
  const dribble = async (s: Socket, start: string): Promise<string> => {
    s.write(start);
    const timer = setInterval(() => s.write('X-Slow: yes\r\n'), 100);
    try {
      return await rest(s);
    } finally {
      clearInterval(timer);
    }
  };

  it('headers dribbled to the proxy listener are cut off at --client-headers-timeout (408)', { timeout: 5000 }, async () => {
    const s = connect(proxyPort, '127.0.0.1');
    await once(s, 'connect');
    assert.match(await dribble(s, `GET http://localhost:${up.port}/ HTTP/1.1\r\nHost: localhost:${up.port}\r\n`), /^HTTP\/1\.1 408/);
  });

  it('and inside a tunnel too', { timeout: 5000 }, async () => {
    const { socket } = await tunnel(proxyPort, `localhost:${up.port}`);
    assert.match(await dribble(socket, `GET /x HTTP/1.1\r\nHost: localhost:${up.port}\r\n`), /^HTTP\/1\.1 408/);
  });
});
