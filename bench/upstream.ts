import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

// The upstream of every benchmark: a small JSON answer, like a typical internal API read.
const body = JSON.stringify({ ok: true, items: [1, 2, 3], note: 'benchmark upstream' });
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as AddressInfo).port}`));
