/**
 * TPMT_PUBLIC and TPM2B_PUBLIC (Part 2 §12.2) for RSA and ECC keys, the
 * object Name (Part 1 §16: nameAlg || H(TPMT_PUBLIC)), and the key as a
 * node:crypto KeyObject / SPKI DER, to compare with a CSR's key.
 */
import * as nodeCrypto from 'node:crypto';
import { ALG, CURVES, HASHES, OBJECT_ATTRIBUTE_BITS, algName, type ObjectAttributeName } from './constants.js';
import { TpmError } from './errors.js';
import { Reader, Writer, checkSize } from './marshal.js';

/** Largest TPM2B_PUBLIC / TPMT_PUBLIC we read (a 4096-bit RSA key with a 64-byte policy is under 700). */
export const MAX_PUBLIC_BYTES = 2048;
const MAX_DIGEST = 64;
const MAX_RSA_BYTES = 512;
const MAX_ECC_BYTES = 128;

/** TPMT_SYM_DEF_OBJECT: `keyBits` and `mode` only when `algorithm` is not NULL. */
export interface SymDefObject {
  algorithm: number;
  keyBits?: number;
  mode?: number;
}

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME: `hashAlg` unless the scheme has no details; `count` for ECDAA. */
export interface SchemeDef {
  scheme: number;
  hashAlg?: number;
  count?: number;
}

export type ObjectAttributes = Record<ObjectAttributeName, boolean>;

interface PublicCommon {
  nameAlg: number;
  /** TPMA_OBJECT as a number; `attributes` names its bits. */
  objectAttributes: number;
  attributes: ObjectAttributes;
  authPolicy: Buffer;
}

export interface RsaPublic extends PublicCommon {
  type: 'rsa';
  parameters: { symmetric: SymDefObject; scheme: SchemeDef; keyBits: number; exponent: number };
  /** The modulus. */
  unique: Buffer;
}

export interface EccPublic extends PublicCommon {
  type: 'ecc';
  parameters: { symmetric: SymDefObject; scheme: SchemeDef; curveId: number; kdf: SchemeDef };
  unique: { x: Buffer; y: Buffer };
}

export type TpmPublic = RsaPublic | EccPublic;

/** A parsed TPMT_PUBLIC with its bytes exactly as read (its Name is computed over them). */
export type ParsedPublic = TpmPublic & { bytes: Buffer };

export function attributesOf(raw: number): ObjectAttributes {
  const out = {} as ObjectAttributes;
  for (const [name, bit] of Object.entries(OBJECT_ATTRIBUTE_BITS)) out[name as ObjectAttributeName] = ((raw >>> bit) & 1) === 1;
  return out;
}

export function attributesToNumber(flags: Partial<ObjectAttributes>): number {
  let v = 0;
  for (const [name, bit] of Object.entries(OBJECT_ATTRIBUTE_BITS)) if (flags[name as ObjectAttributeName]) v |= 1 << bit;
  return v >>> 0;
}

const SYM_WITH_DETAILS = new Set<number>([ALG.AES, ALG.SM4, ALG.CAMELLIA]);
const HASH_ONLY_SCHEMES = new Set<number>([ALG.RSASSA, ALG.RSAPSS, ALG.OAEP, ALG.ECDSA, ALG.ECDH, ALG.SM2, ALG.ECSCHNORR, ALG.ECMQV, ALG.MGF1, ALG.KDF1_SP800_56A, ALG.KDF2, ALG.KDF1_SP800_108]);
const RSA_SCHEMES = new Set<number>([ALG.NULL, ALG.RSASSA, ALG.RSAES, ALG.RSAPSS, ALG.OAEP]);
const ECC_SCHEMES = new Set<number>([ALG.NULL, ALG.ECDSA, ALG.ECDH, ALG.ECDAA, ALG.SM2, ALG.ECSCHNORR, ALG.ECMQV]);
const KDF_SCHEMES = new Set<number>([ALG.NULL, ALG.MGF1, ALG.KDF1_SP800_56A, ALG.KDF2, ALG.KDF1_SP800_108]);

function readSymDef(r: Reader): SymDefObject {
  const algorithm = r.u16('parameters.symmetric.algorithm');
  if (algorithm === ALG.NULL) return { algorithm };
  if (!SYM_WITH_DETAILS.has(algorithm)) throw new TpmError('TPM_MALFORMED', `TPMT_PUBLIC: ${algName(algorithm)} is not a symmetric algorithm for an object`);
  return { algorithm, keyBits: r.u16('parameters.symmetric.keyBits'), mode: r.u16('parameters.symmetric.mode') };
}

function readScheme(r: Reader, field: string, allowed: Set<number>): SchemeDef {
  const scheme = r.u16(`${field}.scheme`);
  if (!allowed.has(scheme)) throw new TpmError('TPM_MALFORMED', `TPMT_PUBLIC: ${algName(scheme)} is not allowed as ${field}`);
  if (scheme === ALG.NULL || scheme === ALG.RSAES) return { scheme };
  if (scheme === ALG.ECDAA) return { scheme, hashAlg: r.u16(`${field}.hashAlg`), count: r.u16(`${field}.count`) };
  if (HASH_ONLY_SCHEMES.has(scheme)) return { scheme, hashAlg: r.u16(`${field}.hashAlg`) };
  throw new TpmError('TPM_UNSUPPORTED', `TPMT_PUBLIC: ${field} ${algName(scheme)} is not supported`);
}

function writeSymDef(w: Writer, s: SymDefObject): void {
  w.u16(s.algorithm);
  if (s.algorithm !== ALG.NULL) w.u16(s.keyBits ?? 0).u16(s.mode ?? 0);
}

function writeScheme(w: Writer, s: SchemeDef): void {
  w.u16(s.scheme);
  if (s.scheme === ALG.NULL || s.scheme === ALG.RSAES) return;
  w.u16(s.hashAlg ?? 0);
  if (s.scheme === ALG.ECDAA) w.u16(s.count ?? 0);
}

function readPublicFrom(r: Reader): ParsedPublic {
  const start = r.offset;
  const type = r.u16('type');
  const nameAlg = r.u16('nameAlg');
  const objectAttributes = r.u32('objectAttributes');
  const authPolicy = r.tpm2b('authPolicy', MAX_DIGEST);
  const common = { nameAlg, objectAttributes, attributes: attributesOf(objectAttributes), authPolicy };
  if (type === ALG.RSA) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r, 'parameters.scheme', RSA_SCHEMES);
    const keyBits = r.u16('parameters.keyBits');
    const exponent = r.u32('parameters.exponent');
    const unique = r.tpm2b('unique.rsa', MAX_RSA_BYTES);
    return { type: 'rsa', ...common, parameters: { symmetric, scheme, keyBits, exponent }, unique, bytes: r.since(start) };
  }
  if (type === ALG.ECC) {
    const symmetric = readSymDef(r);
    const scheme = readScheme(r, 'parameters.scheme', ECC_SCHEMES);
    const curveId = r.u16('parameters.curveID');
    const kdf = readScheme(r, 'parameters.kdf', KDF_SCHEMES);
    const x = r.tpm2b('unique.ecc.x', MAX_ECC_BYTES);
    const y = r.tpm2b('unique.ecc.y', MAX_ECC_BYTES);
    return { type: 'ecc', ...common, parameters: { symmetric, scheme, curveId, kdf }, unique: { x, y }, bytes: r.since(start) };
  }
  throw new TpmError('TPM_UNSUPPORTED', `TPMT_PUBLIC: key type ${algName(type)} is not supported; only RSA and ECC keys are`);
}

/** Parses a marshalled TPMT_PUBLIC (what `tpm2_readpublic -f tpmt` writes). */
export function parsePublic(input: Uint8Array): ParsedPublic {
  const r = new Reader(checkSize(input, MAX_PUBLIC_BYTES, 'TPMT_PUBLIC'), 'TPMT_PUBLIC');
  const p = readPublicFrom(r);
  r.end();
  return p;
}

/** Parses a TPM2B_PUBLIC (what `tpm2_createak -u` / `tpm2_create -u` write): a size, then exactly that TPMT_PUBLIC. */
export function parsePublic2B(input: Uint8Array): ParsedPublic {
  const r = new Reader(checkSize(input, MAX_PUBLIC_BYTES + 2, 'TPM2B_PUBLIC'), 'TPM2B_PUBLIC');
  const inner = r.tpm2b('publicArea', MAX_PUBLIC_BYTES);
  r.end();
  return parsePublic(inner);
}

/** Marshals a TPMT_PUBLIC (the inverse of parsePublic). */
export function encodePublic(p: TpmPublic): Buffer {
  const w = new Writer().u16(p.type === 'rsa' ? ALG.RSA : ALG.ECC).u16(p.nameAlg).u32(p.objectAttributes).tpm2b(p.authPolicy);
  writeSymDef(w, p.parameters.symmetric);
  writeScheme(w, p.parameters.scheme);
  if (p.type === 'rsa') {
    w.u16(p.parameters.keyBits).u32(p.parameters.exponent).tpm2b(p.unique);
  } else {
    w.u16(p.parameters.curveId);
    writeScheme(w, p.parameters.kdf);
    w.tpm2b(p.unique.x).tpm2b(p.unique.y);
  }
  return w.done();
}

export function hashOf(alg: number, what: string): { node: string; size: number } {
  const h = HASHES.get(alg);
  if (!h) throw new TpmError('TPM_UNSUPPORTED', `${what}: hash ${algName(alg)} is not supported; use SHA256, SHA384 or SHA512`);
  return h;
}

/**
 * The object's Name (Part 1 §16): nameAlg as 2 bytes, then H_nameAlg(TPMT_PUBLIC).
 * Always over the fields as they are now (marshalling is canonical: a parsed
 * value re-encodes to its exact bytes), never over stale `bytes` of a value
 * someone changed.
 */
export function objectName(p: TpmPublic): Buffer {
  const h = hashOf(p.nameAlg, 'object Name');
  const digest = nodeCrypto.createHash(h.node).update(encodePublic(p)).digest();
  return new Writer().u16(p.nameAlg).raw(digest).done();
}

function leftPad(b: Buffer, size: number, field: string): Buffer {
  if (b.length > size) throw new TpmError('TPM_MALFORMED', `TPMT_PUBLIC: ${field} is ${b.length} bytes, longer than the curve's ${size}`);
  return b.length === size ? b : Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/** The public key as a node:crypto KeyObject (RSA or ECC on P-256/P-384/P-521). */
export function publicKeyObject(p: TpmPublic): nodeCrypto.KeyObject {
  try {
    if (p.type === 'rsa') {
      if (p.unique.length === 0 || p.unique.length * 8 !== p.parameters.keyBits) {
        throw new TpmError('TPM_MALFORMED', `TPMT_PUBLIC: RSA modulus is ${p.unique.length * 8} bits but keyBits says ${p.parameters.keyBits}`);
      }
      const e = p.parameters.exponent === 0 ? 65537 : p.parameters.exponent;
      const eBytes = Buffer.alloc(4);
      eBytes.writeUInt32BE(e);
      let s = 0;
      while (s < 3 && eBytes[s] === 0) s++;
      return nodeCrypto.createPublicKey({ key: { kty: 'RSA', n: p.unique.toString('base64url'), e: eBytes.subarray(s).toString('base64url') }, format: 'jwk' });
    }
    const curve = CURVES.get(p.parameters.curveId);
    if (!curve) throw new TpmError('TPM_UNSUPPORTED', `TPMT_PUBLIC: ECC curve 0x${p.parameters.curveId.toString(16)} is not supported; use NIST P-256, P-384 or P-521`);
    const x = leftPad(p.unique.x, curve.size, 'unique.x');
    const y = leftPad(p.unique.y, curve.size, 'unique.y');
    return nodeCrypto.createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
  } catch (e) {
    if (e instanceof TpmError) throw e;
    throw new TpmError('TPM_MALFORMED', `TPMT_PUBLIC: the ${p.type.toUpperCase()} key is not a valid public key (${(e as Error).message})`, { cause: e });
  }
}

/** The public key as DER SubjectPublicKeyInfo, byte-comparable with a CSR's (`Csr.spki` of @latchkey/pki). */
export function publicKeySpki(p: TpmPublic): Buffer {
  return publicKeyObject(p).export({ format: 'der', type: 'spki' });
}
