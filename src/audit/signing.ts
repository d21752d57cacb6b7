/**
 * Signatures over the audit chain's head. The hash chain shows a line was edited, removed or
 * reordered, but whoever can rewrite the whole file can recompute every hash. So at intervals, and at
 * shutdown, Airlock writes a `chain_signed` line: an Ed25519 signature over the sequence number and
 * hash of the line before it, with a key kept away from the audit destination. A rewritten trail then
 * fails `airlock audit verify --public-key` at the first signature it could not forge.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export const CHAIN_SIGNED = 'chain_signed';

/** What a signature covers: the chain's head at the time it was written. */
function headPayload(seq: number, hash: string): Buffer {
  return Buffer.from(`airlock-audit-head-v1\n${seq}\n${hash}`);
}

/** A short, stable name for a public key (sha256 of its DER form), written beside each signature. */
export function keyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export interface HeadSigner {
  keyId: string;
  /** The fields of a `chain_signed` event for the head (seq, hash). */
  sign(seq: number, hash: string): { signed_seq: number; signed_hash: string; key_id: string; signature: string };
}

function assertEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? key.type} key; an Ed25519 key is required (openssl genpkey -algorithm ed25519)`);
}

/**
 * The signer for `--audit-signing-key`: an Ed25519 private key in PEM. It must not sit in the audit
 * file's folder: whoever may rewrite the trail must not be able to read the key beside it.
 */
export async function loadHeadSigner(file: string, auditDestination: string): Promise<HeadSigner> {
  if (auditDestination !== 'stdout' && dirname(resolve(file)) === dirname(resolve(auditDestination))) {
    throw new Error(`audit signing key ${file} is in the audit file's folder: keep it where whoever can rewrite the trail cannot read it`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(file));
  } catch (err) {
    throw new Error(`audit signing key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  assertEd25519(key, `audit signing key ${file}`);
  const id = keyId(key);
  return {
    keyId: id,
    sign: (seq, hash) => ({ signed_seq: seq, signed_hash: hash, key_id: id, signature: sign(null, headPayload(seq, hash), key).toString('base64') }),
  };
}

/** Public keys for `audit verify --public-key` (a private key file is accepted too: its public half is used). */
export async function loadVerifyKeys(files: readonly string[]): Promise<KeyObject[]> {
  return Promise.all(
    files.map(async (file) => {
      let key: KeyObject;
      try {
        key = createPublicKey(await readFile(file));
      } catch (err) {
        throw new Error(`public key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      assertEd25519(key, `public key ${file}`);
      return key;
    }),
  );
}

/** Whether `signature` (base64) is a valid signature of the head (seq, hash) by one of `keys`. */
export function headSignatureValid(keys: readonly KeyObject[], seq: number, hash: string, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64');
  return keys.some((key) => verify(null, headPayload(seq, hash), key, sig));
}
