import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Agent, type Dispatcher } from 'undici';
import { DEFAULT_UPSTREAM_OPTIONS as o } from '../src/proxy/upstream-options.js';

// The baseline: a forward proxy in a few lines (a Node http server and undici's Agent.request, with
// hop-by-hop headers stripped both ways), with no policy, no destination guard, no audit and no
// metrics, on the same undici pool settings as Airlock.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

const agent = new Agent({
  connect: { timeout: o.connectTimeoutMs },
  headersTimeout: o.headersTimeoutMs,
  bodyTimeout: o.bodyTimeoutMs,
  keepAliveTimeout: o.keepAliveTimeoutMs,
  connections: o.connectionsPerOrigin,
});

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? '/');
    const headers = { ...req.headers };
    for (const h of HOP_BY_HOP) delete headers[h];
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const up = await agent.request({ origin: url.origin, path: url.pathname + url.search, method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null });
    for (const h of HOP_BY_HOP) delete up.headers[h];
    res.writeHead(up.statusCode, up.headers as Record<string, string | string[]>);
    await pipeline(up.body, res);
  } catch {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  }
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as AddressInfo).port}`));
process.on('SIGTERM', () => process.exit(0));
