import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReverseRoute } from '../../src/policy/types.js';
import { routeLocation } from '../../src/proxy/routes.js';

const route: ReverseRoute = { prefix: '/openai/', scheme: 'https', host: 'api.openai.com', port: 443, upstreamPath: '/v1/', source: { file: 'p.yaml', line: 1, col: 1 } };
const v6: ReverseRoute = { ...route, scheme: 'http', host: '::1', port: 8080, upstreamPath: '/', prefix: '/local/' };

describe('routeLocation: an upstream redirect mapped back onto the route', () => {
  const cases: [string, ReverseRoute, string, string][] = [
    ['absolute URL on the upstream, under its path', route, 'https://api.openai.com/v1/files/x?y=1', '/openai/files/x?y=1'],
    ['the same with the default port spelled out', route, 'https://api.openai.com:443/v1/files', '/openai/files'],
    ['path-absolute under the upstream path', route, '/v1/files', '/openai/files'],
    ['relative to the request', route, 'files/x', '/openai/files/x'],
    ['the upstream path itself, without its slash', route, '/v1', '/openai/'],
    ['outside the upstream path: unchanged', route, '/v2/files', '/v2/files'],
    ['another scheme: unchanged', route, 'http://api.openai.com/v1/files', 'http://api.openai.com/v1/files'],
    ['another port: unchanged', route, 'https://api.openai.com:8443/v1/files', 'https://api.openai.com:8443/v1/files'],
    ['another host: unchanged', route, 'https://evil.example/v1/files', 'https://evil.example/v1/files'],
    ['a prefix look-alike: unchanged', route, 'https://api.openai.com/v10/files', 'https://api.openai.com/v10/files'],
    ['IPv6 upstream', v6, 'http://[::1]:8080/a/b', '/local/a/b'],
  ];
  for (const [name, r, location, want] of cases) {
    it(name, () => assert.equal(routeLocation(location, r), want));
  }
});
