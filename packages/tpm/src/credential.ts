/**
 * TPM2_MakeCredential done in software (Part 1 §24 "Credential Protection",
 * Part 3 §12.6): a secret that only TPM2_ActivateCredential, in the TPM that
 * holds the EK and with the object of the given Name loaded, gives back.
 *
 *   seed            RSA EK: random, OAEP-encrypted to the EK with label "IDENTITY\0"
 *                   ECC EK: KDFe(nameAlg, ECDH(ephemeral, EK).x, "IDENTITY", ephemeral.x, EK.x)
 *   symKey          KDFa(nameAlg, seed, "STORAGE", Name, "", EK's symmetric key bits)
 *   encIdentity     AES-CFB(symKey, IV = 0, TPM2B_DIGEST(secret))
 *   HMACkey         KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
 *   outerHMAC       HMAC(nameAlg, HMACkey, encIdentity || Name)
 *   credentialBlob  TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) || encIdentity)
 *
 * nameAlg is the EK's. Randomness is a parameter; only RSA-OAEP's own
 * padding randomness comes from OpenSSL.
 */
import * as nodeCrypto from 'node:crypto';
import { ALG, CURVES, HASHES, algName } from './constants.js';
import { TpmError } from './errors.js';
import { kdfa, kdfe } from './kdf.js';
import { Writer, tpm2b } from './marshal.js';
import { hashOf, publicKeyObject, type TpmPublic } from './public.js';

export interface MakeCredentialInput {
  /** The endorsement key (any restricted decryption key with an AES-CFB symmetric definition). */
  ekPublic: TpmPublic;
  /** The Name of the key the credential is for (the AK): nameAlg || digest. */
  objectName: Uint8Array;
  /** What ActivateCredential gives back: 1 to (EK nameAlg digest size) bytes. */
  secret: Uint8Array;
  /** n random bytes (node:crypto.randomBytes in production; a seeded source in tests). */
  random: (n: number) => Uint8Array;
}

export interface MadeCredential {
  /** TPM2B_ID_OBJECT, as TPM2_ActivateCredential's `credentialBlob`. */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET, as TPM2_ActivateCredential's `secret`. */
  encryptedSecret: Buffer;
}

function randomBytes(random: (n: number) => Uint8Array, n: number): Buffer {
  const b = random(n);
  if (!(b instanceof Uint8Array) || b.length !== n) throw new TpmError('ARGUMENT_INVALID', `makeCredential: random(${n}) returned ${b?.length ?? 'no'} bytes`);
  return Buffer.from(b);
}

function checkInput(i: MakeCredentialInput): { hash: { node: string; size: number }; symBits: number } {
  const ek = i.ekPublic;
  if (!ek.attributes.restricted || !ek.attributes.decrypt || ek.attributes.sign) {
    throw new TpmError('ARGUMENT_INVALID', 'makeCredential: the EK must be a restricted decryption key (restricted and decrypt set, sign clear), as every TCG EK template is');
  }
  const hash = hashOf(ek.nameAlg, 'EK nameAlg');
  const sym = ek.parameters.symmetric;
  if (sym.algorithm !== ALG.AES || sym.mode !== ALG.CFB || ![128, 192, 256].includes(sym.keyBits ?? 0)) {
    throw new TpmError('TPM_UNSUPPORTED', `makeCredential: the EK's symmetric definition is ${algName(sym.algorithm)}; only AES-128/192/256 in CFB mode is supported`);
  }
  const name = Buffer.from(i.objectName);
  const nameHash = name.length >= 2 ? HASHES.get(name.readUInt16BE(0)) : undefined;
  if (!nameHash || name.length !== 2 + nameHash.size) throw new TpmError('ARGUMENT_INVALID', 'makeCredential: objectName must be a TPM object Name (a 2-byte nameAlg and its digest)');
  if (i.secret.length < 1 || i.secret.length > hash.size) {
    throw new TpmError('ARGUMENT_INVALID', `makeCredential: the secret must be 1 to ${hash.size} bytes (the EK nameAlg's digest size), not ${i.secret.length}`);
  }
  return { hash, symBits: sym.keyBits! };
}

/** The seed and its encryption to the EK (Part 1 Annex B.10.3 for RSA, C.6.4 for ECC). */
function seedFor(ek: TpmPublic, hash: { node: string; size: number }, random: (n: number) => Uint8Array): { seed: Buffer; encryptedSecret: Buffer } {
  if (ek.type === 'rsa') {
    const seed = randomBytes(random, hash.size);
    const enc = nodeCrypto.publicEncrypt(
      { key: publicKeyObject(ek), padding: nodeCrypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash.node, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') },
      seed,
    );
    return { seed, encryptedSecret: tpm2b(enc) };
  }
  const curve = CURVES.get(ek.parameters.curveId);
  if (!curve) throw new TpmError('TPM_UNSUPPORTED', `makeCredential: ECC curve 0x${ek.parameters.curveId.toString(16)} is not supported`);
  publicKeyObject(ek); // the EK point is on the curve
  const pad = (b: Buffer): Buffer => Buffer.concat([Buffer.alloc(curve.size - b.length), b]);
  const ekPoint = Buffer.concat([Buffer.from([4]), pad(ek.unique.x), pad(ek.unique.y)]);
  const ecdh = nodeCrypto.createECDH(curve.node);
  for (let tries = 0; ; tries++) {
    try {
      ecdh.setPrivateKey(randomBytes(random, curve.size));
      break;
    } catch (e) {
      // A scalar of 0 or not below the group order: draw again (rare for these curves).
      if (tries >= 16) throw new TpmError('ARGUMENT_INVALID', 'makeCredential: random() gave no usable ephemeral ECC key in 16 draws', { cause: e });
    }
  }
  const q = ecdh.getPublicKey();
  const qx = q.subarray(1, 1 + curve.size);
  const qy = q.subarray(1 + curve.size);
  const z = ecdh.computeSecret(ekPoint);
  const seed = kdfe(ek.nameAlg, z, 'IDENTITY', qx, ek.unique.x, hash.size * 8);
  return { seed, encryptedSecret: tpm2b(new Writer().tpm2b(qx).tpm2b(qy).done()) };
}

export function makeCredential(i: MakeCredentialInput): MadeCredential {
  const { hash, symBits } = checkInput(i);
  const ek = i.ekPublic;
  const name = Buffer.from(i.objectName);
  const { seed, encryptedSecret } = seedFor(ek, hash, i.random);
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', name, Buffer.alloc(0), symBits);
  const cipher = nodeCrypto.createCipheriv(`aes-${symBits}-cfb`, symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(i.secret)), cipher.final()]);
  const hmacKey = kdfa(ek.nameAlg, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), hash.size * 8);
  const outerHmac = nodeCrypto.createHmac(hash.node, hmacKey).update(encIdentity).update(name).digest();
  const credentialBlob = tpm2b(Buffer.concat([tpm2b(outerHmac), encIdentity]));
  return { credentialBlob, encryptedSecret };
}
