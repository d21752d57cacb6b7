import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventsFor, startTestAirlock, startUpstream, type TestAirlock, type Upstream } from '../helpers/harness.js';

/** Everything the socket receives until it closes. */
async function rest(s: Socket): Promise<string> {
  let data = '';
  s.on('data', (c: Buffer) => (data += c.toString('latin1')));
  await once(s, 'close');
  return data;
}

describe('clients that stall or crowd', () => {
  let up: Upstream;
  let al: TestAirlock;
  let proxyPort: number;
  before(async () => {
    up = await startUpstream();
    al = await startTestAirlock(
      {
        'policy.yaml': `
version: 1
approvers:
  owners: { api: [bob@example.com] }
rules:
  - id: exports
    match: { methods: [POST], hosts: [127.0.0.1], paths: ["/exports/**"] }
    action: approve
    approval: { approvers: [owners], wait: 30s }
  - id: reads
    match: { methods: [GET], hosts: [127.0.0.1] }
    action: allow
`,
      },
      { clientBodyTimeoutMs: 300, maxConnections: 5 },
    );
    proxyPort = Number(new URL(al.proxyUrl).port);
  });
  after(async () => {
    await al.close();
    await up.close();
  });

  it('a body held for approval that stalls is cut off with 408, on record, and the connection closed', { timeout: 5000 }, async () => {
    const s = connect(proxyPort, '127.0.0.1');
    await once(s, 'connect');
    s.write(`POST http://127.0.0.1:${up.port}/exports/x HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(10)}`);
    const answer = await rest(s);
    assert.match(answer, /^HTTP\/1\.1 408/);
    const id = /airlock-request-id: (\S+)/i.exec(answer)![1]!;
    const events = eventsFor(await al.audit(), id);
    assert.deepEqual(events.map((e) => [e.event, e.decision ?? null, e.status ?? null]), [
      ['request', 'approve', null],
      ['request_answered', null, 408],
    ]);
  });

  it('more connections than --max-connections are closed on arrival; the others are served', { timeout: 5000 }, async () => {
    const sockets = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const s = connect(proxyPort, '127.0.0.1');
        s.on('error', () => undefined);
        await once(s, 'connect');
        return s;
      }),
    );
    // All eight are connected (at the TCP level) before any asks: the ones over the cap are closed.
    const first = (s: Socket): Promise<string> =>
      new Promise((resolve) => {
        s.once('data', (c: Buffer) => resolve(c.toString('latin1')));
        s.once('close', () => resolve(''));
        s.write(`GET http://127.0.0.1:${up.port}/x HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`);
      });
    const answers = await Promise.all(sockets.map(first));
    for (const s of sockets) s.destroy();
    assert.equal(answers.filter((a) => a.startsWith('HTTP/1.1 200')).length, 5);
    assert.equal(answers.filter((a) => a === '').length, 3);
  });
});
