import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, stream, type Dispatcher } from 'undici';
import { DEFAULT_UPSTREAM_OPTIONS as o } from '../src/proxy/upstream.js';

// The baseline: a forward proxy with no policy, no destination guard, no audit and no metrics, on
// the same undici pool settings as Airlock.
const agent = new Agent({
  connect: { timeout: o.connectTimeoutMs },
  headersTimeout: o.headersTimeoutMs,
  bodyTimeout: o.bodyTimeoutMs,
  keepAliveTimeout: o.keepAliveTimeoutMs,
  connections: o.connectionsPerOrigin,
});
const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const headers = { ...req.headers };
  delete headers['proxy-connection'];
  delete headers.connection;
  stream(url, { method: req.method as Dispatcher.HttpMethod, headers, body: req.method === 'GET' ? null : req, dispatcher: agent, opaque: res }, ({ statusCode, headers: h, opaque }) => {
    const out = opaque as ServerResponse;
    delete h.connection;
    delete h['keep-alive'];
    out.writeHead(statusCode, h as Record<string, string>);
    return out;
  }).catch(() => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as AddressInfo).port}`));
process.on('SIGTERM', () => process.exit(0));
