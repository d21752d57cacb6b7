/**
 * The interception certificate authority: make one (`generateCa`), load one (`loadCa`,
 * `loadCaFromEnv`), and issue short-lived leaf certificates for the hosts agents CONNECT to.
 *
 * Leaves are ECDSA P-256 and all leaves of one CA share ONE key pair (generated lazily, once),
 * as mitmproxy and mockttp do: issuing a leaf is then one signature (~2 ms), not a key generation.
 * The CA itself may be ECDSA P-256 (what `generateCa` makes) or RSA >= 2048 (brought by a user).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseHost } from './host-name.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
type EcdsaParams = webcrypto.EcdsaParams;
type EcKeyImportParams = webcrypto.EcKeyImportParams;
type RsaHashedImportParams = webcrypto.RsaHashedImportParams;

x509.cryptoProvider.set(globalThis.crypto);

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** How far back notBefore goes, for clients whose clocks run slow. */
const BACKDATE_MS = HOUR_MS;
export const CA_VALIDITY_DAYS = 3650;
export const LEAF_VALIDITY_MS = 7 * DAY_MS;
export const DEFAULT_CA_COMMON_NAME = 'Airlock interception CA';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface IssuedLeaf {
  /** the leaf certificate alone (PEM); chain it with `Ca.certPem` when serving it */
  certPem: string;
  /** PKCS#8 PEM of the key shared by all leaves of this CA */
  keyPem: string;
}

export interface Ca {
  /** the CA certificate (PEM), exactly as loaded or generated */
  certPem: string;
  /** issue a leaf for a host name or IP address (IPv6 with or without brackets) */
  issueLeaf(host: string): Promise<IssuedLeaf>;
}

/** A problem with the CA certificate or key; the message says what is wrong. */
export class CaError extends Error {
  override name = 'CaError';
}

// ---------------------------------------------------------------------------------------------
// PEM and keys

function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

type CaKeyKind = { kind: 'ec-p256'; sign: EcdsaParams; import: EcKeyImportParams } | { kind: 'rsa'; bits: number; sign: AlgorithmIdentifier; import: RsaHashedImportParams };

const KIND_LABEL = { 'ec-p256': 'EC P-256', rsa: 'RSA' } as const;

function describeKey(key: KeyObject, what: string): CaKeyKind {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') {
      return { kind: 'ec-p256', sign: ECDSA_SHA256, import: EC_P256 };
    }
    throw new CaError(`${what} is an EC key on curve ${details.namedCurve ?? 'unknown'}; Airlock supports EC P-256 (prime256v1) or RSA of 2048 bits or more`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) throw new CaError(`${what} is an RSA key of ${bits} bits; Airlock needs at least 2048 bits`);
    return { kind: 'rsa', bits, sign: { name: 'RSASSA-PKCS1-v1_5' }, import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new CaError(
    `${what} is a ${key.asymmetricKeyType ?? 'unknown'} key; Airlock supports EC P-256 (prime256v1) or RSA (PKCS#1 v1.5) of 2048 bits or more`,
  );
}

// ---------------------------------------------------------------------------------------------
// generateCa

export interface GenerateCaOptions {
  /** default: "Airlock interception CA " + 8 random hex digits, so two installs are told apart */
  commonName?: string;
  /** default 3650 (10 years) */
  validityDays?: number;
}

/** A fresh ECDSA P-256 CA, valid from an hour ago for `validityDays`. PEM cert and PKCS#8 PEM key. */
export async function generateCa(opts: GenerateCaOptions = {}): Promise<{ certPem: string; keyPem: string }> {
  const validityDays = opts.validityDays ?? CA_VALIDITY_DAYS;
  if (!(validityDays > 0)) throw new RangeError(`validityDays must be positive, got ${validityDays}`);
  const commonName = opts.commonName ?? `${DEFAULT_CA_COMMON_NAME} ${randomBytes(4).toString('hex')}`;
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: ['Airlock'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

/** 16 random bytes, positive and with a non-zero top byte so the DER INTEGER is exactly 16 octets. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

// ---------------------------------------------------------------------------------------------
// loadCa

/**
 * Check and load a CA. Throws CaError naming the problem: unparsable PEM, not a CA certificate,
 * a CA not allowed to sign certificates, expired or not yet valid, an unsupported key, or a key
 * that does not belong to the certificate.
 */
export async function loadCa(certPem: string, keyPem: string, now: Date = new Date()): Promise<Ca> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch (err) {
    throw new CaError(`the CA certificate is not a PEM X.509 certificate (${(err as Error).message})`);
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) {
    throw new CaError(`the certificate "${cert.subject}" is not a CA certificate (it lacks BasicConstraints CA:TRUE); run \`airlock ca init\` to make one`);
  }
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new CaError(`the CA certificate "${cert.subject}" has a KeyUsage without keyCertSign, so it may not sign certificates`);
  }
  if (cert.notAfter.getTime() <= now.getTime()) {
    throw new CaError(`the CA certificate "${cert.subject}" expired on ${cert.notAfter.toISOString()}; make a new one with \`airlock ca init\``);
  }
  if (cert.notBefore.getTime() > now.getTime()) {
    throw new CaError(`the CA certificate "${cert.subject}" is not valid before ${cert.notBefore.toISOString()} (check the clock)`);
  }

  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyPem)) {
    throw new CaError('the CA key is encrypted; Airlock needs it unencrypted (protect the file instead, e.g. mount it from a Kubernetes Secret)');
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch (err) {
    throw new CaError(`the CA key is not a PEM private key (${(err as Error).message})`);
  }
  const kind = describeKey(keyObject, 'the CA key');
  const certKind = describeKey(createPublicKey(certPem), 'the CA certificate public key');
  if (certKind.kind !== kind.kind) {
    throw new CaError(`the CA key does not match the certificate: the key is ${KIND_LABEL[kind.kind]}, the certificate's public key is ${KIND_LABEL[certKind.kind]}`);
  }

  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, kind.import, false, ['sign']);
  const publicKey = await cert.publicKey.export(kind.import, ['verify']);
  const probe = randomBytes(32);
  const signature = await webcrypto.subtle.sign(kind.sign, signingKey, probe);
  if (!(await webcrypto.subtle.verify(kind.sign, publicKey, signature, probe))) {
    throw new CaError(`the CA key does not match the certificate "${cert.subject}" (a signature made with the key does not verify with the certificate's public key)`);
  }

  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski ? ski.keyId : Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex');
  return new LoadedCa(certPem, cert, signingKey, kind.sign, keyId);
}

class LoadedCa implements Ca {
  readonly #cert: x509.X509Certificate;
  readonly #signingKey: CryptoKey;
  readonly #signingAlgorithm: AlgorithmIdentifier | EcdsaParams;
  readonly #fixedExtensions: x509.Extension[];
  #leafKey: Promise<{ publicKey: x509.PublicKey; keyPem: string }> | undefined;

  constructor(
    readonly certPem: string,
    cert: x509.X509Certificate,
    signingKey: CryptoKey,
    signingAlgorithm: AlgorithmIdentifier | EcdsaParams,
    caKeyId: string,
  ) {
    this.#cert = cert;
    this.#signingKey = signingKey;
    this.#signingAlgorithm = signingAlgorithm;
    this.#fixedExtensions = [
      new x509.BasicConstraintsExtension(false, undefined, false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.AuthorityKeyIdentifierExtension(caKeyId, false),
    ];
  }

  /** The one leaf key pair of this CA, made on first use (a failed attempt is retried next time). */
  #sharedLeafKey(): Promise<{ publicKey: x509.PublicKey; keyPem: string }> {
    this.#leafKey ??= (async () => {
      const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
      const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
      const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
      return { publicKey: new x509.PublicKey(spki), keyPem: toPem(pkcs8, 'PRIVATE KEY') };
    })();
    this.#leafKey.catch(() => {
      this.#leafKey = undefined;
    });
    return this.#leafKey;
  }

  async issueLeaf(host: string): Promise<IssuedLeaf> {
    const target = parseHost(host);
    const name = target.kind === 'dns' ? target.name : target.address;
    const { publicKey, keyPem } = await this.#sharedLeafKey();
    const now = Date.now();
    const notBefore = new Date(Math.max(now - BACKDATE_MS, this.#cert.notBefore.getTime()));
    const notAfter = new Date(Math.min(now + LEAF_VALIDITY_MS, this.#cert.notAfter.getTime()));
    // a CN too long for X.520 (64) is left out; the SAN is then the whole identity and critical
    const withCn = name.length <= 64;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: withCn ? [{ CN: [name] }] : [],
      issuer: this.#cert.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.#signingKey,
      signingAlgorithm: this.#signingAlgorithm,
      extensions: [
        ...this.#fixedExtensions,
        new x509.SubjectAlternativeNameExtension([{ type: target.kind === 'dns' ? 'dns' : 'ip', value: name }], !withCn),
      ],
    });
    return { certPem: cert.toString('pem') + '\n', keyPem };
  }
}

// ---------------------------------------------------------------------------------------------
// loadCaFromEnv

/**
 * The CA named by AIRLOCK_CA_CERT and AIRLOCK_CA_KEY, which are FILE PATHS (PEM), not PEM text.
 * Neither set: null (no interception). One set without the other: CaError.
 */
export async function loadCaFromEnv(env: Record<string, string | undefined> = process.env): Promise<Ca | null> {
  const certPath = env.AIRLOCK_CA_CERT || undefined;
  const keyPath = env.AIRLOCK_CA_KEY || undefined;
  if (!certPath && !keyPath) return null;
  if (!certPath || !keyPath) {
    const [set, unset] = certPath ? ['AIRLOCK_CA_CERT', 'AIRLOCK_CA_KEY'] : ['AIRLOCK_CA_KEY', 'AIRLOCK_CA_CERT'];
    throw new CaError(`${set} is set but ${unset} is not; set both (file paths to the CA certificate and its key) or neither`);
  }
  const read = async (path: string, variable: string): Promise<string> => {
    if (path.includes('-----BEGIN')) throw new CaError(`${variable} must be a file path, not PEM text`);
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new CaError(`cannot read ${variable}=${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const [certPem, keyPem] = await Promise.all([read(certPath, 'AIRLOCK_CA_CERT'), read(keyPath, 'AIRLOCK_CA_KEY')]);
  try {
    return await loadCa(certPem, keyPem);
  } catch (err) {
    if (err instanceof CaError) throw new CaError(`${err.message} (AIRLOCK_CA_CERT=${certPath}, AIRLOCK_CA_KEY=${keyPath})`);
    throw err;
  }
}
