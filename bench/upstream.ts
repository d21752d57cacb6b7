import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { COUNT_PATH, UPSTREAM_BODY } from './lib/peers.js';

// The upstream of the benchmarks where nginx is not installed: the same small JSON answer, and the
// number of requests answered so far at COUNT_PATH.
let answered = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.url === COUNT_PATH) {
      res.end(String(answered));
      return;
    }
    answered++;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(UPSTREAM_BODY) });
    res.end(UPSTREAM_BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as AddressInfo).port}`));
