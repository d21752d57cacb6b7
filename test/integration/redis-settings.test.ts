/**
 * Redis settings an operator needs besides the URL: a key prefix (several deployments on one Redis)
 * and the CA of a rediss:// server signed by a private CA. Real redis-server, TLS included.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { hashToken } from '../../src/request/identify.js';
import { airlockCli, run, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const sh = promisify(execFile);
const TOKEN = 'ops-token';

function policy(up: Upstream): string {
  return `
version: 1
approvers:
  ops: { api: [ops@example.com] }
approverTokens:
  ops@example.com: ["${hashToken(TOKEN)}"]
rules:
  - id: writes
    match: { methods: [POST], hosts: [127.0.0.1], ports: [${up.port}] }
    action: approve
    approval: { approvers: [ops], wait: 30s, expires: 10m }
`;
}

/** A CA and a server certificate for 127.0.0.1 signed by it (openssl). */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (name: string): string => join(dir, name);
  await sh('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=airlock-test-redis-ca']);
  await sh('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(f('ext'), 'subjectAltName=IP:127.0.0.1\n');
  await sh('openssl', ['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('srv.crt'), '-days', '1', '-extfile', f('ext')]);
  return { ca: f('ca.crt'), cert: f('srv.crt'), key: f('srv.key') };
}

describe('Redis key prefix and TLS CA', () => {
  let dir: string;
  let certs: { ca: string; cert: string; key: string };
  let redis: RedisServer;
  let up: Upstream;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-redis-settings-'));
    certs = await makeCerts(dir);
    redis = await startRedisServer({ tls: { certFile: certs.cert, keyFile: certs.key } });
    up = await startUpstream();
  });
  after(async () => {
    await up.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function pendingIds(al: TestAirlock): Promise<string[]> {
    const res = await fetch(`${al.adminUrl}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.json()) as { approvals: { id: string }[] }).approvals.map((a) => a.id);
  }

  it('two deployments on one Redis with different prefixes see only their own approvals, and write only under their prefix', async () => {
    const a = await startTestAirlock({ 'p.yaml': policy(up) }, { redis: redis.url, redisKeyPrefix: 'team-a', replica: 'a' });
    const b = await startTestAirlock({ 'p.yaml': policy(up) }, { redis: redis.url, redisKeyPrefix: 'team-b', replica: 'b' });
    const client = new Redis(redis.url);
    try {
      const asked = await run('curl', ['-sS', '-x', a.proxyUrl, '-H', 'prefer: respond-async', '-d', 'x', `${up.origin}/a`]);
      const id = (JSON.parse(asked.stdout) as { approval_id: string }).approval_id;
      assert.deepEqual(await pendingIds(a), [id]);
      assert.deepEqual(await pendingIds(b), [], 'the other deployment does not see it');
      const keys = await client.keys('*');
      assert.ok(keys.length > 0);
      assert.deepEqual(keys.filter((k) => !k.startsWith('team-a:')), [], 'every key under the prefix');
    } finally {
      client.disconnect();
      await a.close();
      await b.close();
    }
  });

  it('rediss:// with the private CA given connects and holds; without it the store is unreachable and approvals fail closed', async () => {
    const trusted = await startTestAirlock({ 'p.yaml': policy(up) }, { redis: redis.tlsUrl!, redisCaFile: certs.ca, replica: 'tls' });
    try {
      const asked = await run('curl', ['-sS', '-x', trusted.proxyUrl, '-H', 'prefer: respond-async', '-d', 'x', '-w', '\n%{http_code}', `${up.origin}/tls`]);
      assert.equal(asked.stdout.split('\n')[1], '202', asked.stdout);
    } finally {
      await trusted.close();
    }
    const untrusted = await startTestAirlock({ 'p.yaml': policy(up) }, { redis: redis.tlsUrl!, replica: 'no-ca' });
    try {
      const asked = await run('curl', ['-sS', '-x', untrusted.proxyUrl, '-H', 'prefer: respond-async', '-d', 'x', '-w', '\n%{http_code}', `${up.origin}/tls`]);
      assert.equal(asked.stdout.split('\n')[1], '503', 'a server certificate nobody trusts is no store');
      assert.match(asked.stdout, /approval_unavailable/);
    } finally {
      await untrusted.close();
    }
  });

  it('serve refuses a CA for a plain redis:// URL, and a prefix with braces, with exit code 2', async () => {
    const common = ['serve', '--policies', 'policies', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'];
    const ca = await airlockCli([...common, '--redis', redis.url, '--redis-ca', certs.ca]);
    assert.equal(ca.code, 2);
    assert.match(ca.stderr, /--redis-ca: the CA is for TLS: use a rediss:\/\//);
    const prefix = await airlockCli([...common, '--redis', redis.url, '--redis-key-prefix', 'a{b}']);
    assert.equal(prefix.code, 2);
    assert.match(prefix.stderr, /--redis-key-prefix: 1 to 64 letters/);
  });
});
