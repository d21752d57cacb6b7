import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, generateKeyPairSync, type webcrypto } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { Command } from 'commander';
import { caInit, caShow, registerCaCommands, type CaCliIo } from '../../src/cli/ca.js';
import { CaError, generateCa, loadCa, loadCaFromEnv, type Ca } from '../../src/tls/ca.js';
import { InvalidHostError, normalizeHost } from '../../src/tls/host-name.js';
import { LeafCache } from '../../src/tls/leaf-cache.js';

const run = promisify(execFile);
const DAY = 86_400_000;
const HOUR = 3_600_000;

function capture(): CaCliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

/** A Ca that counts issues and can be told to fail. */
function counting(ca: Ca): Ca & { issued: string[]; failNext: number } {
  const wrapper = {
    certPem: ca.certPem,
    issued: [] as string[],
    failNext: 0,
    async issueLeaf(host: string) {
      wrapper.issued.push(host);
      if (wrapper.failNext > 0) {
        wrapper.failNext--;
        throw new Error('signing failed');
      }
      return ca.issueLeaf(host);
    },
  };
  return wrapper;
}

type Handshake = { ok: true; socket: tls.TLSSocket; san: string | undefined; chainHasCa: boolean } | { ok: false; code: string };

/** Handshake with a TLS server, returns what the client saw. */
async function handshake(port: number, host: string, opts: tls.ConnectionOptions, caPem: string): Promise<Handshake> {
  const socket = tls.connect({ host, port, ...opts });
  try {
    await once(socket, 'secureConnect');
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
  const peer = socket.getPeerCertificate(true);
  const chainHasCa = peer.issuerCertificate?.fingerprint256 === new X509Certificate(caPem).fingerprint256;
  socket.end();
  return { ok: true, socket, san: peer.subjectaltname, chainHasCa };
}

/**
 * A stand-in for the CONNECT handler: the target host is known before the handshake (from
 * `CONNECT host:443`), so it is the default context (IP targets send no SNI) and SNI overrides it.
 */
async function startInterceptor(cache: LeafCache, target: () => string, family: 4 | 6 = 4): Promise<net.Server> {
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    void cache.context(target()).then((secureContext) => {
      const t = new tls.TLSSocket(sock, {
        isServer: true,
        secureContext,
        SNICallback: (servername, cb) => void cache.context(servername || target()).then((c) => cb(null, c), (e: Error) => cb(e)),
      });
      t.on('error', () => {});
    }, () => sock.destroy());
  });
  server.listen(0, family === 4 ? '127.0.0.1' : '::1');
  await once(server, 'listening');
  return server;
}

const port = (s: net.Server) => (s.address() as net.AddressInfo).port;

describe('interception CA', () => {
  let dir: string;
  let caPem: string;
  let keyPem: string;
  let ca: Ca;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-ca-'));
    ({ certPem: caPem, keyPem } = await generateCa());
    ca = await loadCa(caPem, keyPem);
    await writeFile(join(dir, 'ca.crt'), caPem);
    await writeFile(join(dir, 'ca.key'), keyPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  describe('generateCa', () => {
    it('makes an ECDSA P-256 CA with critical BasicConstraints (pathLen 0) and KeyUsage, an SKI, 10 years from an hour ago', async () => {
      const cert = new x509.X509Certificate(caPem);
      assert.match(cert.subject, /^CN=Airlock interception CA [0-9a-f]{8}, O=Airlock$/);
      assert.equal(cert.subject, cert.issuer);
      const bc = cert.getExtension(x509.BasicConstraintsExtension);
      assert.ok(bc?.ca && bc.critical);
      assert.equal(bc.pathLength, 0);
      const ku = cert.getExtension(x509.KeyUsagesExtension);
      assert.ok(ku?.critical);
      assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
      assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension));
      assert.equal((cert.publicKey.algorithm as { namedCurve?: string }).namedCurve, 'P-256');
      const backdate = Date.now() - cert.notBefore.getTime();
      assert.ok(backdate > HOUR - 60_000 && backdate < HOUR + 60_000, `backdated ${backdate} ms`);
      const days = (cert.notAfter.getTime() - Date.now()) / DAY;
      assert.ok(days > 3649 && days <= 3650, `${days} days`);
      assert.ok(await cert.verify({ signatureOnly: true }));
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    });

    it('gives two installs distinguishable names, and takes a common name and validity', async () => {
      const other = await generateCa({ commonName: 'Team CA, staging', validityDays: 30 });
      const cert = new x509.X509Certificate(other.certPem);
      assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, true);
      assert.match(cert.subject, /^CN=Team CA\\, staging, O=Airlock$/);
      assert.ok(Math.abs(cert.notAfter.getTime() - Date.now() - 30 * DAY) < 60_000);
      const a = new X509Certificate(caPem).subject;
      const b = new X509Certificate((await generateCa()).certPem).subject;
      assert.notEqual(a, b);
    });
  });

  describe('issueLeaf', () => {
    const hosts = [
      { host: 'api.example.com', san: 'DNS:api.example.com', check: (c: X509Certificate) => c.checkHost('api.example.com') },
      { host: '127.0.0.1', san: 'IP Address:127.0.0.1', check: (c: X509Certificate) => c.checkIP('127.0.0.1') },
      { host: '::1', san: 'IP Address:0:0:0:0:0:0:0:1', check: (c: X509Certificate) => c.checkIP('::1') },
    ];
    for (const { host, san, check } of hosts) {
      it(`issues a leaf for ${host}: SAN, EKU serverAuth, KU digitalSignature critical, CA:false, AKI = CA SKI, 7 days`, async () => {
        const leaf = await ca.issueLeaf(host);
        const node = new X509Certificate(leaf.certPem);
        assert.equal(node.subjectAltName, san);
        assert.ok(check(node));
        assert.equal(node.ca, false);
        assert.ok(node.checkIssued(new X509Certificate(caPem)));
        assert.ok(node.verify(new X509Certificate(caPem).publicKey));
        assert.deepEqual(node.keyUsage, ['1.3.6.1.5.5.7.3.1']);

        const cert = new x509.X509Certificate(leaf.certPem);
        const ku = cert.getExtension(x509.KeyUsagesExtension);
        assert.ok(ku?.critical);
        assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
        assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
        const caSki = new x509.X509Certificate(caPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
        assert.equal(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caSki);
        assert.equal(cert.serialNumber.length, 32, 'a 16-byte serial');
        assert.equal((cert.publicKey.algorithm as { namedCurve?: string }).namedCurve, 'P-256');
        const life = cert.notAfter.getTime() - cert.notBefore.getTime();
        assert.ok(Math.abs(life - (7 * DAY + HOUR)) < 5_000, `lifetime ${life} ms`);
        assert.ok(cert.notBefore.getTime() < Date.now() - HOUR + 60_000);
        assert.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      });
    }

    it('shares one key pair between all leaves, with distinct random serials', async () => {
      const a = await ca.issueLeaf('a.example');
      const b = await ca.issueLeaf('b.example');
      assert.equal(a.keyPem, b.keyPem);
      assert.equal(new X509Certificate(a.certPem).publicKey.export({ type: 'spki', format: 'pem' }), new X509Certificate(b.certPem).publicKey.export({ type: 'spki', format: 'pem' }));
      assert.notEqual(new X509Certificate(a.certPem).serialNumber, new X509Certificate(b.certPem).serialNumber);
      // a different CA has a different leaf key
      const other = await loadCa(...Object.values(await generateCa()) as [string, string]);
      assert.notEqual((await other.issueLeaf('a.example')).keyPem, a.keyPem);
    });

    it('normalizes hosts, and rejects what is not a host', async () => {
      assert.equal(normalizeHost('API.Example.COM.'), 'api.example.com');
      assert.equal(normalizeHost('[::1]'), '::1');
      assert.equal(normalizeHost('0:0::1'), '::1');
      assert.equal(normalizeHost('fe80::1%eth0'), 'fe80::1');
      assert.equal(normalizeHost('::ffff:10.0.0.1'), '::ffff:a00:1');
      assert.equal(normalizeHost('bücher.example'), 'xn--bcher-kva.example');
      assert.equal(new X509Certificate((await ca.issueLeaf('[::ffff:10.0.0.1]')).certPem).subjectAltName, 'IP Address:0:0:0:0:0:FFFF:A00:1');
      for (const bad of ['', 'a b.example', 'a/b', 'host:443', '..', 'x'.repeat(64) + '.example']) {
        await assert.rejects(ca.issueLeaf(bad), InvalidHostError, JSON.stringify(bad));
      }
    });

    it('leaves no CN for names longer than 64 characters and makes the SAN critical', async () => {
      const host = `${'a'.repeat(60)}.${'b'.repeat(10)}.example`;
      const cert = new x509.X509Certificate((await ca.issueLeaf(host)).certPem);
      assert.equal(cert.subject, '');
      assert.equal(cert.getExtension(x509.SubjectAlternativeNameExtension)?.critical, true);
    });

    it('never outlives the CA', async () => {
      const short = await generateCa({ validityDays: 2 });
      const shortCa = await loadCa(short.certPem, short.keyPem);
      const leaf = new X509Certificate((await shortCa.issueLeaf('a.example')).certPem);
      assert.equal(leaf.validTo, new X509Certificate(short.certPem).validTo);
    });

    it('passes `openssl verify` (purpose sslserver, host name and IP checks)', async () => {
      const cases: Array<[string, string[]]> = [
        ['api.example.com', ['-verify_hostname', 'api.example.com']],
        ['127.0.0.1', ['-verify_ip', '127.0.0.1']],
        ['::1', ['-verify_ip', '::1']],
      ];
      for (const [host, check] of cases) {
        const file = join(dir, `leaf-${host.replace(/:/g, '_')}.crt`);
        await writeFile(file, (await ca.issueLeaf(host)).certPem);
        const { stdout } = await run('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), '-purpose', 'sslserver', ...check, file]);
        assert.equal(stdout.trim(), `${file}: OK`);
      }
      // and a wrong name is refused by openssl too
      await assert.rejects(run('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), '-verify_hostname', 'other.example', join(dir, 'leaf-api.example.com.crt')]));
    });
  });

  describe('TLS handshakes with LeafCache contexts', () => {
    it('tls.createServer with SNICallback: a client trusting the CA connects and sees the SAN; one without the CA fails', async () => {
      const cache = new LeafCache(ca);
      const server = tls.createServer({ SNICallback: (sn, cb) => void cache.context(sn).then((c) => cb(null, c), (e: Error) => cb(e)) });
      server.on('tlsClientError', () => {});
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const good = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com', ca: caPem }, caPem);
        assert.ok(good.ok, JSON.stringify(good));
        assert.equal(good.san, 'DNS:api.example.com');
        assert.ok(good.chainHasCa);

        const untrusting = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com' }, caPem);
        assert.deepEqual(untrusting, { ok: false, code: 'SELF_SIGNED_CERT_IN_CHAIN' }, 'the server sends leaf + CA; the client does not trust the CA');

        const otherCa = (await generateCa()).certPem;
        const wrongCa = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com', ca: otherCa }, caPem);
        assert.equal(wrongCa.ok, false);

        // the pitfall the CONNECT handler must avoid: no SNI (an IP target) and no default context
        const noSni = await handshake(port(server), '127.0.0.1', { ca: caPem }, caPem);
        assert.equal(noSni.ok, false);
      } finally {
        server.close();
      }
    });

    it('serves IP targets without SNI from the CONNECT target (IPv4)', async () => {
      const cache = new LeafCache(ca);
      const server = await startInterceptor(cache, () => '127.0.0.1');
      try {
        const r = await handshake(port(server), '127.0.0.1', { ca: caPem }, caPem);
        assert.ok(r.ok, JSON.stringify(r));
        assert.equal(r.san, 'IP Address:127.0.0.1');
        // SNI still wins when the client sends it
        const sni = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com', ca: caPem }, caPem);
        assert.ok(sni.ok && sni.san === 'DNS:api.example.com');
      } finally {
        server.close();
      }
    });

    it('serves IP targets without SNI from the CONNECT target (IPv6)', async () => {
      const cache = new LeafCache(ca);
      const server = await startInterceptor(cache, () => '[::1]', 6);
      try {
        const r = await handshake(port(server), '::1', { ca: caPem }, caPem);
        assert.ok(r.ok, JSON.stringify(r));
        assert.equal(r.san, 'IP Address:0:0:0:0:0:0:0:1');
      } finally {
        server.close();
      }
    });

    it('works with a user-supplied RSA-2048 CA (PKCS#1 key, UTF-8 subject)', async () => {
      const crt = join(dir, 'rsa.crt');
      const key = join(dir, 'rsa.key');
      await run('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '30',
        '-subj', '/C=DE/O=Beispiel GmbH/CN=Prüf-CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign',
      ]);
      await run('openssl', ['rsa', '-in', key, '-traditional', '-out', key]);
      assert.match(await readFile(key, 'utf8'), /BEGIN RSA PRIVATE KEY/);
      const rsaCa = await loadCaFromEnv({ AIRLOCK_CA_CERT: crt, AIRLOCK_CA_KEY: key });
      assert.ok(rsaCa);
      const leafFile = join(dir, 'rsa-leaf.crt');
      await writeFile(leafFile, (await rsaCa.issueLeaf('api.example.com')).certPem);
      assert.match((await run('openssl', ['verify', '-CAfile', crt, '-verify_hostname', 'api.example.com', leafFile])).stdout, /: OK/);
      const rsaPem = await readFile(crt, 'utf8');
      const server = await startInterceptor(new LeafCache(rsaCa), () => 'api.example.com');
      try {
        const r = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com', ca: rsaPem }, rsaPem);
        assert.ok(r.ok && r.san === 'DNS:api.example.com' && r.chainHasCa, JSON.stringify(r));
      } finally {
        server.close();
      }
    });

    it('works with an intermediate CA whose file also holds the root; clients trust only the root', async () => {
      const f = (name: string) => join(dir, name);
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
      await run('openssl', ['req', '-x509', ...ec, '-keyout', f('root.key'), '-out', f('root.crt'), '-days', '30', '-subj', '/CN=Org Root',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
      await run('openssl', ['req', '-new', ...ec, '-keyout', f('int.key'), '-out', f('int.csr'), '-subj', '/CN=Org Airlock Intermediate']);
      await writeFile(f('int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
      await run('openssl', ['x509', '-req', '-in', f('int.csr'), '-CA', f('root.crt'), '-CAkey', f('root.key'), '-CAcreateserial', '-out', f('int.crt'), '-days', '20', '-extfile', f('int.ext')]);
      const rootPem = await readFile(f('root.crt'), 'utf8');
      await writeFile(f('chain.crt'), (await readFile(f('int.crt'), 'utf8')) + rootPem);
      const intCa = await loadCaFromEnv({ AIRLOCK_CA_CERT: f('chain.crt'), AIRLOCK_CA_KEY: f('int.key') });
      assert.ok(intCa);
      const server = await startInterceptor(new LeafCache(intCa), () => 'api.example.com');
      try {
        const r = await handshake(port(server), '127.0.0.1', { servername: 'api.example.com', ca: rootPem }, rootPem);
        assert.ok(r.ok && r.san === 'DNS:api.example.com', JSON.stringify(r));
        const peer = r.socket.getPeerCertificate(true);
        assert.equal(peer.issuerCertificate.subject.CN, 'Org Airlock Intermediate');
      } finally {
        server.close();
      }
    });
  });

  describe('LeafCache', () => {
    it('issues once for concurrent context() calls for one host, whatever its spelling', async () => {
      const counted = counting(ca);
      const cache = new LeafCache(counted);
      const contexts = await Promise.all([
        ...Array.from({ length: 20 }, () => cache.context('api.example.com')),
        cache.context('API.EXAMPLE.COM.'),
        cache.context('Api.Example.Com'),
      ]);
      assert.deepEqual(counted.issued, ['api.example.com']);
      assert.ok(contexts.every((c) => c === contexts[0]));
      await Promise.all([cache.context('::1'), cache.context('[::1]'), cache.context('0::1')]);
      assert.deepEqual(counted.issued, ['api.example.com', '::1']);
    });

    it('evicts the least recently used host beyond max', async () => {
      const counted = counting(ca);
      const cache = new LeafCache(counted, { max: 2 });
      await cache.context('a.example');
      await cache.context('b.example');
      await cache.context('a.example'); // a is now the most recent
      await cache.context('c.example'); // evicts b
      assert.equal(cache.size, 2);
      assert.deepEqual(counted.issued, ['a.example', 'b.example', 'c.example']);
      await cache.context('a.example');
      assert.equal(counted.issued.length, 3, 'a stayed');
      await cache.context('b.example');
      assert.deepEqual(counted.issued, ['a.example', 'b.example', 'c.example', 'b.example'], 'b was evicted and re-issued');
      assert.equal(cache.size, 2);
    });

    it('does not cache a failed issue, nor an invalid host', async () => {
      const counted = counting(ca);
      counted.failNext = 1;
      const cache = new LeafCache(counted);
      const [a, b] = await Promise.allSettled([cache.context('a.example'), cache.context('a.example')]);
      assert.equal(a.status, 'rejected');
      assert.equal(b.status, 'rejected');
      assert.equal(cache.size, 0);
      await cache.context('a.example');
      assert.deepEqual(counted.issued, ['a.example', 'a.example']);
      await assert.rejects(cache.context('not a host'), InvalidHostError);
      assert.equal(cache.size, 1);
    });

    it('renews a context after its TTL (default 6 days), before the 7-day leaf expires', async () => {
      let now = Date.now();
      const counted = counting(ca);
      const cache = new LeafCache(counted, { now: () => now });
      await cache.context('a.example');
      now += 6 * DAY - 60_000;
      await cache.context('a.example');
      assert.equal(counted.issued.length, 1);
      now += 120_000;
      await cache.context('a.example');
      assert.equal(counted.issued.length, 2);
    });

    it('renews an hour before the leaf expires when the CA ends sooner than the TTL', async () => {
      const short = await generateCa({ validityDays: 1 });
      const counted = counting(await loadCa(short.certPem, short.keyPem));
      let now = Date.now();
      const cache = new LeafCache(counted, { now: () => now });
      await cache.context('a.example');
      now += 22 * HOUR;
      await cache.context('a.example');
      assert.equal(counted.issued.length, 1);
      now += 1.5 * HOUR; // 23.5 h: within an hour of the CA's (and so the leaf's) notAfter
      await cache.context('a.example');
      assert.equal(counted.issued.length, 2);
    });
  });

  describe('loadCa and loadCaFromEnv', () => {
    it('refuses a certificate that is not a CA', async () => {
      const leaf = await ca.issueLeaf('a.example');
      await assert.rejects(loadCa(leaf.certPem, leaf.keyPem), (e: Error) => e instanceof CaError && /is not a CA certificate/.test(e.message));
    });

    it('refuses a key that does not belong to the certificate', async () => {
      const other = await generateCa();
      await assert.rejects(loadCa(caPem, other.keyPem), /CA key does not match the certificate/);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      await assert.rejects(loadCa(caPem, rsa), /does not match the certificate: the key is RSA, the certificate's public key is EC P-256/);
    });

    it('refuses unsupported keys, encrypted keys and garbage, naming the problem', async () => {
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      await assert.rejects(loadCa(caPem, p384), /EC key on curve secp384r1; Airlock supports EC P-256/);
      const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
      await assert.rejects(loadCa(caPem, encrypted), /CA key is encrypted/);
      await assert.rejects(loadCa(caPem, 'nope'), /CA key is not a PEM private key/);
      await assert.rejects(loadCa('nope', keyPem), /not a PEM X.509 certificate/);

      // an RSA-1024 CA
      const keys = (await crypto.subtle.generateKey(
        { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'],
      )) as webcrypto.CryptoKeyPair;
      const weak = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=weak', keys, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] });
      const weakKey = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
      await assert.rejects(loadCa(weak.toString('pem'), `-----BEGIN PRIVATE KEY-----\n${weakKey}\n-----END PRIVATE KEY-----\n`), /RSA key of 1024 bits; Airlock needs at least 2048/);
    });

    it('refuses an expired CA and one not yet valid', async () => {
      await assert.rejects(loadCa(caPem, keyPem, new Date(Date.now() + 3651 * DAY)), /expired on/);
      await assert.rejects(loadCa(caPem, keyPem, new Date(Date.now() - 2 * HOUR)), /not valid before/);
    });

    it('loadCaFromEnv: both file paths or neither', async () => {
      assert.equal(await loadCaFromEnv({}), null);
      assert.equal(await loadCaFromEnv({ AIRLOCK_CA_CERT: '', AIRLOCK_CA_KEY: '' }), null);
      await assert.rejects(loadCaFromEnv({ AIRLOCK_CA_CERT: join(dir, 'ca.crt') }), /AIRLOCK_CA_CERT is set but AIRLOCK_CA_KEY is not/);
      await assert.rejects(loadCaFromEnv({ AIRLOCK_CA_KEY: join(dir, 'ca.key') }), /AIRLOCK_CA_KEY is set but AIRLOCK_CA_CERT is not/);
      await assert.rejects(loadCaFromEnv({ AIRLOCK_CA_CERT: caPem, AIRLOCK_CA_KEY: join(dir, 'ca.key') }), /AIRLOCK_CA_CERT must be a file path, not PEM text/);
      await assert.rejects(loadCaFromEnv({ AIRLOCK_CA_CERT: join(dir, 'missing.crt'), AIRLOCK_CA_KEY: join(dir, 'ca.key') }), /cannot read AIRLOCK_CA_CERT=.*missing\.crt: ENOENT/);
      const loaded = await loadCaFromEnv({ AIRLOCK_CA_CERT: join(dir, 'ca.crt'), AIRLOCK_CA_KEY: join(dir, 'ca.key') });
      assert.equal(loaded?.certPem, caPem);
    });
  });

  describe('airlock ca', () => {
    it('registers init and show', () => {
      const program = new Command('airlock');
      registerCaCommands(program);
      assert.deepEqual(program.commands.find((c) => c.name() === 'ca')?.commands.map((c) => c.name()), ['init', 'show']);
    });

    it('init writes ca.crt 0644 and ca.key 0600, prints the env vars and trust steps, and refuses to overwrite', async () => {
      const out = join(dir, 'init', 'nested');
      const io = capture();
      assert.equal(await caInit({ out }, io), 0, io.stderr.join('\n'));
      const crt = join(out, 'ca.crt');
      const key = join(out, 'ca.key');
      assert.equal((await stat(crt)).mode & 0o777, 0o644);
      assert.equal((await stat(key)).mode & 0o777, 0o600);
      const text = io.stdout.join('\n');
      assert.ok(text.includes(`AIRLOCK_CA_CERT=${crt}`));
      assert.ok(text.includes(`AIRLOCK_CA_KEY=${key}`));
      assert.ok(text.includes(`NODE_EXTRA_CA_CERTS=${crt}`));
      for (const s of ['SSL_CERT_FILE=', 'REPLACES', 'REQUESTS_CA_BUNDLE=', 'update-ca-certificates', '/etc/pki/ca-trust/source/anchors', 'update-ca-trust']) {
        assert.ok(text.includes(s), s);
      }
      const written = await loadCa(await readFile(crt, 'utf8'), await readFile(key, 'utf8'));
      assert.ok(new X509Certificate((await written.issueLeaf('a.example')).certPem).checkIssued(new X509Certificate(written.certPem)));

      const before = await readFile(key, 'utf8');
      const again = capture();
      assert.equal(await caInit({ out }, again), 1);
      assert.match(again.stderr.join('\n'), /already exist; nothing written[\s\S]*--force/);
      assert.equal(await readFile(key, 'utf8'), before);

      await rm(crt); // only the key left: still refused
      assert.equal(await caInit({ out }, capture()), 1);
      assert.equal(await readFile(key, 'utf8'), before);

      await writeFile(crt, 'old', { mode: 0o666 });
      await writeFile(key, before, { mode: 0o644 });
      assert.equal(await caInit({ out, force: true }, capture()), 0);
      assert.notEqual(await readFile(key, 'utf8'), before);
      assert.equal((await stat(crt)).mode & 0o777, 0o644);
      assert.equal((await stat(key)).mode & 0o777, 0o600, '--force leaves the key 0600 even if the old file was not');
    });

    it('init through commander, with --out', async () => {
      const out = join(dir, 'cmd');
      const program = new Command('airlock').exitOverride();
      const io = capture();
      registerCaCommands(program, io);
      await program.parseAsync(['ca', 'init', '--out', out, '--common-name', 'Test CA', '--days', '10'], { from: 'user' });
      assert.equal(process.exitCode, 0);
      process.exitCode = undefined;
      const cert = new X509Certificate(await readFile(join(out, 'ca.crt')));
      assert.equal(cert.subject, 'CN=Test CA\nO=Airlock');
    });

    it('show prints fingerprint, subject and validity, and checks the key', async () => {
      const io = capture();
      assert.equal(await caShow({ cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') }, io), 0, io.stderr.join('\n'));
      const text = io.stdout.join('\n');
      assert.ok(text.includes(`SHA-256:     ${new X509Certificate(caPem).fingerprint256}`));
      assert.match(text, /subject: +CN=Airlock interception CA [0-9a-f]{8}, O=Airlock/);
      assert.match(text, /not after: +\d{4}-.*\(36\d\d days left\)/);
      assert.match(text, /key file: .*matches/);

      const noCert = capture();
      assert.equal(await caShow({}, noCert), 2);
      assert.match(noCert.stderr.join('\n'), /set AIRLOCK_CA_CERT/);

      const other = join(dir, 'other.key');
      await writeFile(other, (await generateCa()).keyPem);
      const mismatch = capture();
      assert.equal(await caShow({ cert: join(dir, 'ca.crt'), key: other }, mismatch), 1);
      assert.match(mismatch.stderr.join('\n'), /does not match/);
    });
  });
});
