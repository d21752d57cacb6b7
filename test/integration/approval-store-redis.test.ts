import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { parseRedisUrl, redactRedisUrl } from '../../src/approvals/redis-connection.js';
import { joinTag, RedisStore } from '../../src/approvals/redis-store.js';
import { approvalStoreContract, makeRecord, nextChange } from '../unit/approval-store-contract.js';
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from '../helpers/redis-server.js';

const RETENTION_MS = 3_600_000;

let server: RedisServer;
let cluster: RedisCluster;
before(async () => {
  [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster(3)]);
});
after(async () => {
  await Promise.all([server.stop(), cluster.stop()]);
});

function connect(url: string, replica: string, keyPrefix: string, extra: Partial<Parameters<typeof RedisStore.connect>[1]> = {}) {
  return RedisStore.connect(url, { replica, keyPrefix, retentionMs: RETENTION_MS, ...extra });
}

approvalStoreContract('redis', async () => {
  // A fresh key prefix per test: two replicas share it, tests never see each other's data.
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const [a, b] = await Promise.all([connect(server.url, 'replica-a', prefix), connect(server.url, 'replica-b', prefix)]);
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

// The same contract on a real 3-node Cluster: every script's keys must share a slot (CROSSSLOT
// otherwise), and the two replicas enter the cluster through different seed nodes.
approvalStoreContract('redis cluster', async () => {
  const prefix = `t${randomUUID().slice(0, 8)}`;
  const [first, ...rest] = cluster.ports;
  const [a, b] = await Promise.all([
    connect(`redis+cluster://127.0.0.1:${first}`, 'replica-a', prefix),
    connect(`redis+cluster://${rest.map((p) => `127.0.0.1:${p}`).join(',')}`, 'replica-b', prefix),
  ]);
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

describe('RedisStore', () => {
  it('lays keys out under one hash tag per identity+digest, with TTLs from expiresAt and retention', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const store = await connect(server.url, 'replica-a', prefix);
    const raw = new Redis(server.url);
    try {
      const now = Date.now();
      const rec = makeRecord(now);
      await store.createOrJoin(rec, now);
      const tag = joinTag(rec.identity, rec.digest);
      const recordKey = `${prefix}:approval:{${tag}}:${rec.id}`;
      const activeKey = `${prefix}:active:{${tag}}`;
      const refKey = `${prefix}:ref:${rec.id}`;
      const pendingKey = `${prefix}:pending-of:${rec.identity}`;
      assert.deepEqual((await raw.keys(`${prefix}:*`)).sort(), [activeKey, recordKey, `${prefix}:list`, `${prefix}:open`, refKey, pendingKey].sort());
      // Unfinished records by expiry: what may need expiring, and the pending list without a scan.
      assert.deepEqual(await raw.zrange(`${prefix}:open`, 0, '-1', 'WITHSCORES'), [`${tag}:${rec.id}`, String(rec.expiresAt)]);
      // What an identity has pending, to cap it: each entry until its expiry.
      assert.deepEqual(await raw.zrange(pendingKey, 0, '-1', 'WITHSCORES'), [`${tag}:${rec.id}`, String(rec.expiresAt)]);
      assert.equal(await raw.call('PEXPIRETIME', pendingKey), rec.expiresAt);
      assert.equal(await raw.type(recordKey), 'hash');
      assert.equal(await raw.get(activeKey), recordKey);
      assert.equal(await raw.get(refKey), tag);
      assert.deepEqual(await raw.zrange(`${prefix}:list`, 0, '-1', 'WITHSCORES'), [`${tag}:${rec.id}`, String(rec.createdAt)]);
      assert.equal(await raw.call('PEXPIRETIME', recordKey), rec.expiresAt + RETENTION_MS);
      assert.equal(await raw.call('PEXPIRETIME', refKey), rec.expiresAt + RETENTION_MS);
      assert.equal(await raw.call('PEXPIRETIME', activeKey), rec.expiresAt);

      // Finishing early: the record is kept for retentionMs from then.
      await store.decide(rec.id, { approver: 'bob@example.com', verdict: 'deny' }, now + 5);
      assert.equal(await raw.call('PEXPIRETIME', recordKey), now + 5 + RETENTION_MS);
      // A denial keeps answering identical requests until expiresAt: the pointer stays, with its TTL.
      assert.equal(await raw.get(activeKey), recordKey);
      assert.equal(await raw.call('PEXPIRETIME', activeKey), rec.expiresAt);
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  it('answers transitions even when retention is zero (the record is gone right after)', async () => {
    const store = await connect(server.url, 'replica-a', `t${randomUUID().slice(0, 8)}`, { retentionMs: 0 });
    try {
      const now = Date.now();
      const rec = makeRecord(now);
      await store.createOrJoin(rec, now);
      const res = await store.decide(rec.id, { approver: 'bob@example.com', verdict: 'deny' }, now);
      assert.ok(res.ok);
      assert.equal(res.record.state, 'denied');
      assert.equal(await store.get(rec.id, now), null);
    } finally {
      await store.close();
    }
  });

  it('drops list entries whose record is gone', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const store = await connect(server.url, 'replica-a', prefix);
    const raw = new Redis(server.url);
    try {
      const now = Date.now();
      const keep = makeRecord(now);
      const gone = makeRecord(now + 1);
      await store.createOrJoin(keep, now);
      await store.createOrJoin(gone, now + 1);
      const tag = joinTag(gone.identity, gone.digest);
      await raw.del(`${prefix}:approval:{${tag}}:${gone.id}`, `${prefix}:ref:${gone.id}`); // as if both TTLs ran out
      assert.deepEqual(
        (await store.list({}, now + 2)).map((r) => r.id),
        [keep.id],
      );
      assert.equal(await raw.zcard(`${prefix}:list`), 1);
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  it('connect() rejects within its timeout when nothing listens', async () => {
    const other = await startRedisServer();
    await other.stop();
    await assert.rejects(connect(other.url, 'replica-a', 'x', { readyTimeoutMs: 300 }), /not reachable/);
  });

  it('a Redis that requires a password: REDIS_PASSWORD (kept out of the URL) connects, no password is refused', async () => {
    const locked = await startRedisServer({ password: 'correct-horse-battery-staple' });
    try {
      const store = await connect(locked.url, 'replica-a', 'pw', { password: 'correct-horse-battery-staple' });
      const now = Date.now();
      assert.equal((await store.createOrJoin(makeRecord(now), now)).created, true);
      await store.close();
      await assert.rejects(connect(locked.url, 'replica-a', 'pw', { readyTimeoutMs: 500 }), /not reachable/);
    } finally {
      await locked.stop();
    }
  });

  it('fails closed while Redis is down, and recovers when it is back', async () => {
    const own = await startRedisServer();
    const prefix = `t${randomUUID().slice(0, 8)}`;
    const [a, b] = await Promise.all([connect(own.url, 'replica-a', prefix), connect(own.url, 'replica-b', prefix)]);
    try {
      const now = Date.now();
      const rec = makeRecord(now);
      await a.createOrJoin(rec, now);
      const reconnected = Promise.all([a, b].map((s) => new Promise<void>((resolve) => s.onReconnect(resolve))));

      await own.stop();
      // Wait (bounded) until both clients noticed the server is gone.
      const noticeBy = Date.now() + 5000;
      while ((a.ready() || b.ready()) && Date.now() < noticeBy) await new Promise((r) => setTimeout(r, 10));
      assert.equal(a.ready(), false);
      assert.equal(b.ready(), false);

      const t = Date.now();
      const calls: [string, () => Promise<unknown>][] = [
        ['createOrJoin', () => a.createOrJoin(makeRecord(t), t)],
        ['get (known id)', () => a.get(rec.id, t)],
        ['get (unknown id)', () => b.get('apr_unknown', t)],
        ['findActive', () => a.findActive(rec.identity, rec.digest, t)],
        ['list', () => a.list({}, t)],
        ['decide', () => a.decide(rec.id, { approver: 'bob@example.com', verdict: 'approve' }, t)],
        ['cancel', () => a.cancel(rec.id, 'x', null, t)],
        ['claim', () => a.claim(rec.id, 'replica-a', t)],
        ['setHolder', () => a.setHolder(rec.id, 'replica-a')],
      ];
      for (const [name, call] of calls) await assert.rejects(call(), Error, `${name} must reject while Redis is down`);
      const elapsed = Date.now() - t;
      assert.ok(elapsed < 2000, `calls took ${elapsed} ms to fail`);

      await own.start();
      const readyBy = Date.now() + 10_000;
      while (!(a.ready() && b.ready()) && Date.now() < readyBy) await new Promise((r) => setTimeout(r, 20));
      assert.equal(a.ready(), true);
      assert.equal(b.ready(), true);
      await reconnected; // both told their listeners to re-read what they hold

      // Works again (the data is gone: no persistence in tests).
      const later = Date.now();
      const fresh = makeRecord(later);
      const seen = nextChange(b, (c) => c.id === fresh.id && c.state === 'pending');
      assert.equal((await a.createOrJoin(fresh, later)).created, true);
      await seen;
      const res = await b.decide(fresh.id, { approver: 'bob@example.com', verdict: 'approve' }, later + 1);
      assert.ok(res.ok);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await own.stop();
    }
  });
});

describe('parseRedisUrl', () => {
  it('passes redis:// and rediss:// through', () => {
    assert.deepEqual(parseRedisUrl('redis://:pw@localhost:6380/2'), { kind: 'standalone', url: 'redis://:pw@localhost:6380/2', tls: false });
    assert.deepEqual(parseRedisUrl('rediss://cache.example.com'), { kind: 'standalone', url: 'rediss://cache.example.com', tls: true });
    assert.throws(() => parseRedisUrl('redis://a:1,b:2'), /redis\+sentinel/);
    assert.deepEqual(parseRedisUrl('redis://cache:6379', 'pw'), { kind: 'standalone', url: 'redis://cache:6379', tls: false, password: 'pw' });
    assert.equal((parseRedisUrl('redis+cluster://n1:7000', 'pw') as { password: string }).password, 'pw');
    assert.throws(() => parseRedisUrl('redis://:hunter2@cache', 'pw'), (err: Error) => !err.message.includes('hunter2') && /give it once/.test(err.message));
  });

  it('reads Sentinel URLs', () => {
    assert.deepEqual(parseRedisUrl('redis+sentinel://user:p%40ss@s1:26379,s2,[::1]:26380/mymaster/3?sentinelPassword=sp'), {
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'mymaster',
      db: 3,
      tls: false,
      username: 'user',
      password: 'p@ss',
      sentinelPassword: 'sp',
    });
    assert.equal((parseRedisUrl('rediss+sentinel://s1/m') as { tls: boolean }).tls, true);
    assert.throws(() => parseRedisUrl('redis+sentinel://s1:26379'), /master name/);
  });

  it('reads Cluster URLs', () => {
    assert.deepEqual(parseRedisUrl('rediss+cluster://:secret@n1:7000,n2:7001'), {
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
      ],
      tls: true,
      password: 'secret',
    });
    assert.throws(() => parseRedisUrl('redis+cluster://n1/0'), /no databases/);
  });

  it('rejects other schemes and redacts passwords in messages', () => {
    assert.throws(() => parseRedisUrl('http://u:hunter2@x'), (err: Error) => !err.message.includes('hunter2') && /unsupported/.test(err.message));
    assert.equal(redactRedisUrl('redis://u:hunter2@h:1/0'), 'redis://u:***@h:1/0');
    assert.equal(redactRedisUrl('redis+sentinel://s/m?sentinelPassword=x&a=b'), 'redis+sentinel://s/m?sentinelPassword=***&a=b');
  });
});
