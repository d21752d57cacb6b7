/**
 * `airlock ca init|show`: make the interception CA, and describe the one configured.
 * Each command is also exported as a function returning its exit code.
 */
import { X509Certificate as NodeX509 } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { CaError, generateCa, loadCa } from '../tls/ca.js';

/** Where the commands write; tests pass their own. */
export interface CaCliIo {
  out(line: string): void;
  err(line: string): void;
}

const processIo: CaCliIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

export const DEFAULT_CA_DIR = './airlock-ca';

export interface CaInitOptions {
  /** folder for ca.crt and ca.key (created if missing); default ./airlock-ca */
  out?: string;
  /** replace existing ca.crt / ca.key */
  force?: boolean;
  commonName?: string;
  validityDays?: number;
}

export interface CaShowOptions {
  /** CA certificate file (default: AIRLOCK_CA_CERT) */
  cert?: string;
  /** CA key file (default: AIRLOCK_CA_KEY); when given, checked against the certificate */
  key?: string;
}

export function registerCaCommands(program: Command, io: CaCliIo = processIo): void {
  const ca = program.command('ca').description('the CA Airlock uses to intercept HTTPS (agents must trust its certificate)');
  ca.command('init')
    .description('make a new interception CA: writes ca.crt (0644) and ca.key (0600), prints how to configure Airlock and agents')
    .option('--out <dir>', 'folder to write ca.crt and ca.key into', DEFAULT_CA_DIR)
    .option('--force', 'replace an existing ca.crt / ca.key (agents trusting the old one must be updated)')
    .option('--common-name <name>', 'subject CN (default: "Airlock interception CA" and a random suffix)')
    .option('--days <n>', 'validity in days', (v: string) => parsePositiveInt(v, '--days'), 3650)
    .action(async (opts: { out: string; force?: boolean; commonName?: string; days: number }) => {
      process.exitCode = await caInit({ out: opts.out, force: opts.force ?? false, commonName: opts.commonName, validityDays: opts.days }, io);
    });
  ca.command('show')
    .description('print the SHA-256 fingerprint, subject and validity of the configured CA (and check its key if set)')
    .addOption(new Option('--cert <file>', 'CA certificate file').env('AIRLOCK_CA_CERT'))
    .addOption(new Option('--key <file>', 'CA key file, to check it matches').env('AIRLOCK_CA_KEY'))
    .action(async (opts: CaShowOptions) => {
      process.exitCode = await caShow(opts, io);
    });
}

function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a positive whole number, got ${JSON.stringify(value)}`);
  return n;
}

/** Quote for a POSIX shell when needed, so printed commands can be pasted. */
function sh(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Create `path` exclusively (never through an existing file or symlink) with exactly `mode`. */
async function writeNew(path: string, data: string, mode: number, replace: boolean): Promise<void> {
  if (replace) await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await chmod(path, mode); // the umask may have narrowed it (0644 under umask 077)
  } finally {
    await fh.close();
  }
}

export async function caInit(opts: CaInitOptions = {}, io: CaCliIo = processIo): Promise<number> {
  const dir = resolve(opts.out ?? DEFAULT_CA_DIR);
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  try {
    if (!opts.force) {
      const present = [];
      for (const p of [certPath, keyPath]) if (await exists(p)) present.push(p);
      if (present.length > 0) {
        io.err(`airlock ca init: ${present.join(' and ')} already ${present.length === 1 ? 'exists' : 'exist'}; nothing written.`);
        io.err(`Pass --force to replace ${present.length === 1 ? 'it' : 'them'} (agents that trust the old CA would then need the new ca.crt), or --out DIR for another folder.`);
        return 1;
      }
    }
    const generated = await generateCa({ commonName: opts.commonName, validityDays: opts.validityDays });
    await mkdir(dir, { recursive: true });
    await writeNew(keyPath, generated.keyPem, 0o600, opts.force ?? false);
    await writeNew(certPath, generated.certPem, 0o644, opts.force ?? false);
    const cert = new NodeX509(generated.certPem);
    io.out(`wrote ${certPath} (certificate, 0644) and ${keyPath} (private key, 0600)`);
    io.out(`subject: ${oneLineName(cert.subject)}`);
    io.out(`SHA-256 fingerprint: ${cert.fingerprint256}`);
    io.out(`valid until: ${new Date(cert.validTo).toISOString()}`);
    io.out('');
    printTrustInstructions(certPath, keyPath, io);
    return 0;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    io.err(`airlock ca init: ${e.code === 'EEXIST' ? `${e.path ?? 'file'} appeared while writing; nothing replaced` : e.message}`);
    return 1;
  }
}

export function printTrustInstructions(certPath: string, keyPath: string, io: CaCliIo): void {
  const crt = sh(certPath);
  const bundle = sh(join(dirname(certPath), 'ca-bundle.pem'));
  io.out('# Airlock: both variables are FILE PATHS. Keep ca.key secret (in Kubernetes, mount it from a Secret);');
  io.out('# agents get ca.crt only.');
  io.out(`AIRLOCK_CA_CERT=${sh(certPath)}`);
  io.out(`AIRLOCK_CA_KEY=${sh(keyPath)}`);
  io.out('');
  io.out('# Agents must trust ca.crt. Node.js (read at start-up; adds to the built-in roots):');
  io.out(`NODE_EXTRA_CA_CERTS=${crt}`);
  io.out('# OpenSSL-based tools (curl, Python urllib/ssl, Ruby, ...): SSL_CERT_FILE REPLACES the default bundle,');
  io.out('# so give it the system bundle plus ca.crt (RHEL: /etc/pki/tls/certs/ca-bundle.crt instead):');
  io.out(`cat /etc/ssl/certs/ca-certificates.crt ${crt} > ${bundle}`);
  io.out(`SSL_CERT_FILE=${bundle}`);
  io.out('# Python requests (uses its own certifi bundle, also replaced, so use the same combined bundle):');
  io.out(`REQUESTS_CA_BUNDLE=${bundle}`);
  io.out('# Or the system store (then SSL_CERT_FILE/REQUESTS_CA_BUNDLE can point at the system bundle; Node still needs NODE_EXTRA_CA_CERTS):');
  io.out(`#   Debian/Ubuntu: sudo cp ${crt} /usr/local/share/ca-certificates/airlock.crt && sudo update-ca-certificates`);
  io.out(`#   Alpine:        apk add ca-certificates && cp ${crt} /usr/local/share/ca-certificates/airlock.crt && update-ca-certificates`);
  io.out(`#   RHEL/Fedora:   sudo cp ${crt} /etc/pki/ca-trust/source/anchors/airlock.crt && sudo update-ca-trust`);
  io.out('# More: docs/https.md');
}

/** node:crypto writes names one attribute a line; show them as "CN=..., O=...". */
function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

function describePublicKey(cert: NodeX509): string {
  const key = cert.publicKey;
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') return `EC ${d.namedCurve === 'prime256v1' ? 'P-256' : (d.namedCurve ?? '?')}`;
  if (key.asymmetricKeyType === 'rsa') return `RSA ${d.modulusLength ?? '?'}`;
  return key.asymmetricKeyType ?? 'unknown';
}

export async function caShow(opts: CaShowOptions, io: CaCliIo = processIo, now: Date = new Date()): Promise<number> {
  if (!opts.cert) {
    io.err('airlock ca show: no CA certificate: set AIRLOCK_CA_CERT (a file path) or pass --cert FILE');
    return 2;
  }
  let certPem: string;
  let cert: NodeX509;
  try {
    certPem = await readFile(opts.cert, 'utf8');
    cert = new NodeX509(certPem);
  } catch (err) {
    io.err(`airlock ca show: cannot read ${opts.cert}: ${(err as Error).message}`);
    return 2;
  }
  const notAfter = new Date(cert.validTo);
  const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000);
  io.out(`file:        ${resolve(opts.cert)}`);
  io.out(`subject:     ${oneLineName(cert.subject)}`);
  if (cert.issuer !== cert.subject) io.out(`issuer:      ${oneLineName(cert.issuer)}`);
  io.out(`SHA-256:     ${cert.fingerprint256}`);
  io.out(`serial:      ${cert.serialNumber}`);
  io.out(`not before:  ${new Date(cert.validFrom).toISOString()}`);
  io.out(`not after:   ${notAfter.toISOString()} (${daysLeft >= 0 ? `${daysLeft} days left` : 'EXPIRED'})`);
  io.out(`key:         ${describePublicKey(cert)}`);
  io.out(`CA:          ${cert.ca ? 'yes' : 'NO (not a CA certificate; Airlock cannot sign with it)'}`);
  let status = cert.ca && daysLeft >= 0 ? 0 : 1;
  if (opts.key) {
    try {
      await loadCa(certPem, await readFile(opts.key, 'utf8'), now);
      io.out(`key file:    ${resolve(opts.key)} (matches; the CA is usable)`);
    } catch (err) {
      io.err(`airlock ca show: ${err instanceof CaError ? err.message : `cannot read ${opts.key}: ${(err as Error).message}`}`);
      status = 1;
    }
  }
  return status;
}
