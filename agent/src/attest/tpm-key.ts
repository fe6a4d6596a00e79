/**
 * An attested device key: made by the TPM itself under the tpm2-pkcs11
 * store's persistent primary (tpm2_create: fixedTPM, fixedParent,
 * sensitiveDataOrigin, userWithAuth, sign — so the AK can certify that it
 * never leaves this TPM), then linked into the token with tpm2_ptool link
 * under the label the pkcs11 keystore looks keys up by. From then on it is an
 * ordinary key of the `pkcs11` keystore: TLS through OpenSSL's engine,
 * `connect`, the control channel, the browser store.
 *
 * tpm2-pkcs11 reads its objects at C_Initialize: a process that already
 * opened the token does not see a key linked after that. So the key made
 * here signs its CSR through tpm2-tools (tpm2_sign), and is used through the
 * keystore from the next process on (the token worker, the next command).
 * Its auth value (random, 128 bits) lives in a 0600 file of the work dir for
 * the life of the operation, and in the token, wrapped by the token's key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Signer } from '@latchkey/pki';
import { AgentError } from '../errors.js';
import { type KeyRef, newKeyId } from '../keystore/keystore.js';
import { handleHex } from './tpm-handles.js';
import type { TpmTools } from './tpm-tools.js';
import { type EccKeyPublic, eccPublicOf, nssKeyIdOfPoint } from './tpm-wire.js';

/** TPMA_OBJECT of a device key: the attributes the server's policy requires. */
export const DEVICE_KEY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign';
/** tpm2-pkcs11 maps only keys with a NULL scheme to PKCS#11 mechanisms; the scheme is chosen per signature. */
const DEVICE_KEY_ALG = 'ecc256:null';

export interface TpmDeviceKey {
  ref: KeyRef;
  spki: Buffer;
  /** TPM2B_PUBLIC as tpm2_create wrote it (the CSR attestation's keyPublic). */
  public: Buffer;
  /** Files in the tools' work dir: key.pub, key.priv, key.auth (the auth value, 0600). */
  parent: number;
  auth: string;
  /** Signs through the TPM (tpm2_load + tpm2_sign), for the CSR of this process. */
  signer: Signer;
}

export interface LinkTarget {
  /** The token (tpm2_ptool's --label). */
  tokenLabel: string;
  /** The token's user PIN. */
  pin: string;
  /** The CKA_LABEL the pkcs11 keystore finds the key by. */
  keyLabel: (id: string) => string;
}

const hex = (b: Buffer): string => b.toString('hex');

/** A new device key in the TPM, linked into the token; nothing of it is left in the TPM or token if a step fails. */
export async function createLinkedKey(tools: TpmTools, o: { parent: number } & LinkTarget): Promise<TpmDeviceKey> {
  const auth = randomBytes(16).toString('hex');
  const secrets = [auth, o.pin];
  await writeFile(join(tools.cwd, 'key.auth'), auth, { mode: 0o600 });
  await tools.run('tpm2_create', ['-C', handleHex(o.parent), '-G', DEVICE_KEY_ALG, '-a', DEVICE_KEY_ATTRIBUTES, '-p', 'file:key.auth', '-u', 'key.pub', '-r', 'key.priv'], {
    step: 'TPM2_Create (the device key)',
    hint: `the tpm2-pkcs11 store's primary key must be at ${handleHex(o.parent)} (\`tpm2_ptool init\` puts it there; set tpmParent otherwise)`,
    secrets,
  });
  const pub = await readFile(join(tools.cwd, 'key.pub'));
  let ecc: EccKeyPublic;
  try {
    ecc = eccPublicOf(pub);
  } catch (e) {
    throw new AgentError('TPM', `the TPM made a device key the agent cannot read: ${(e as Error).message}`, {}, { cause: e });
  }
  const ref: KeyRef = { keystore: 'pkcs11', id: newKeyId(randomBytes(12).toString('hex')) };
  await tools.ptool(
    ['link', '--label', o.tokenLabel, '--key-label', o.keyLabel(ref.id), '--id', hex(nssKeyIdOfPoint(ecc.point)), '--auth', auth, '--userpin', o.pin, 'key.pub', 'key.priv'],
    {
      step: 'linking the device key into the tpm2-pkcs11 token (tpm2_ptool link)',
      hint: `check the token label "${o.tokenLabel}", its user PIN, and that TPM2_PKCS11_STORE names the store the token is in`,
      secrets,
    },
  );
  return { ref, spki: ecc.spki, public: pub, parent: o.parent, auth, signer: tpmSigner(tools, o.parent, ecc.spki, secrets) };
}

/** r||s (big-endian, each `size` bytes) as a DER ECDSA-Sig-Value. */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const half = raw.length / 2;
  const body = Buffer.concat([int(raw.subarray(0, half)), int(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** ECDSA P-256 / SHA-256 by the TPM; the digest is made here and the TPM signs it (tpm2_sign -d). */
function tpmSigner(tools: TpmTools, parent: number, spki: Buffer, secrets: string[]): Signer {
  return {
    algorithm: 'ecdsa-with-SHA256',
    spki,
    async sign(data: Uint8Array) {
      await writeFile(join(tools.cwd, 'digest.bin'), createHash('sha256').update(data).digest());
      const step = { step: 'TPM2_Sign (the certificate request)', hint: 'the device key could not be loaded or used; try again', secrets };
      await tools.run('tpm2_load', ['-C', handleHex(parent), '-u', 'key.pub', '-r', 'key.priv', '-c', 'key.ctx'], step);
      try {
        await tools.run('tpm2_sign', ['-c', 'key.ctx', '-p', 'file:key.auth', '-g', 'sha256', '-s', 'ecdsa', '-d', '-f', 'plain', '-o', 'sig.bin', 'digest.bin'], step);
      } finally {
        await tools.attempt('tpm2_flushcontext', ['key.ctx']);
      }
      const sig = await readFile(join(tools.cwd, 'sig.bin'));
      return sig[0] === 0x30 ? sig : rawEcdsaToDer(sig);
    },
  };
}

/**
 * Removes a linked key from the token's store (tpm2_ptool listobjects +
 * objdel): the way to delete a key this process linked, as its own
 * tpm2-pkcs11 instance never saw it. The key's blobs live only in the
 * store, so nothing is left in the TPM. True if something was removed.
 */
export async function unlinkKey(tools: TpmTools, tokenLabel: string, keyLabel: string): Promise<boolean> {
  const step = { step: 'removing a linked key from the tpm2-pkcs11 store (tpm2_ptool objdel)', hint: `delete it by hand with \`tpm2_ptool listobjects --label ${tokenLabel}\` and \`tpm2_ptool objdel\`` };
  const listing = (await tools.ptool(['listobjects', '--label', tokenLabel], step)).toString('utf8');
  const ids: string[] = [];
  for (const item of listing.split(/^- /m).slice(1)) {
    const label = /^\s*CKA_LABEL: (.*)$/m.exec(item)?.[1]?.trim().replace(/^'(.*)'$/, '$1');
    const id = /^\s*id: (\d+)$/m.exec(item)?.[1];
    if (label === keyLabel && id) ids.push(id);
  }
  for (const id of ids) await tools.ptool(['objdel', id], step);
  return ids.length > 0;
}
