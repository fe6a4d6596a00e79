/**
 * The few TPM 2.0 structures the agent reads or writes itself (the server's
 * full codec is @latchkey/tpm): an ECC TPM2B_PUBLIC as a SubjectPublicKeyInfo,
 * the credential file tpm2_activatecredential reads, and TPM2_Certify as raw
 * command bytes for tpm2_send (tpm2-tools 5.4's tpm2_certify cannot pass
 * qualifying data). Pure: bytes in, bytes out.
 */
import { createHash } from 'node:crypto';

const TPM_ALG_ECC = 0x0023;
const TPM_ALG_NULL = 0x0010;
/** TPM_ECC_CURVE → the SPKI namedCurve OID (DER) and the coordinate size. */
const CURVES: Record<number, { oid: Buffer; size: number }> = {
  0x0003: { oid: Buffer.from('06082a8648ce3d030107', 'hex'), size: 32 }, // NIST P-256
  0x0004: { oid: Buffer.from('06052b81040022', 'hex'), size: 48 }, // NIST P-384
};
const EC_PUBLIC_KEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');

/** Largest TPM2B_PUBLIC the agent accepts from a tool (the protocol allows 2800 base64 characters). */
export const MAX_PUBLIC = 2048;

export class TpmWireError extends Error {
  override readonly name = 'TpmWireError';
}

class Reader {
  constructor(
    private readonly b: Buffer,
    private off = 0,
  ) {}
  u16(): number {
    if (this.off + 2 > this.b.length) throw new TpmWireError('truncated TPM structure');
    const v = this.b.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    if (this.off + 4 > this.b.length) throw new TpmWireError('truncated TPM structure');
    const v = this.b.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  bytes(n: number): Buffer {
    if (this.off + n > this.b.length) throw new TpmWireError('truncated TPM structure');
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  tpm2b(): Buffer {
    return this.bytes(this.u16());
  }
  get rest(): number {
    return this.b.length - this.off;
  }
}

const derLen = (n: number): Buffer => (n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]));
const der = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLen(body.length), body]);
};

export interface EccKeyPublic {
  /** The SubjectPublicKeyInfo (DER) of the key. */
  spki: Buffer;
  /** The uncompressed EC point 04||X||Y. */
  point: Buffer;
  /** TPMA_OBJECT. */
  objectAttributes: number;
}

/** An ECC (P-256 / P-384) TPM2B_PUBLIC, as tpm2_create -u writes it. */
export function eccPublicOf(tpm2bPublic: Buffer): EccKeyPublic {
  if (tpm2bPublic.length > MAX_PUBLIC) throw new TpmWireError(`TPM2B_PUBLIC is ${tpm2bPublic.length} bytes, more than ${MAX_PUBLIC}`);
  const outer = new Reader(tpm2bPublic);
  const r = new Reader(outer.tpm2b());
  if (outer.rest !== 0) throw new TpmWireError('TPM2B_PUBLIC has trailing bytes');
  if (r.u16() !== TPM_ALG_ECC) throw new TpmWireError('the key is not an ECC key');
  r.u16(); // nameAlg
  const objectAttributes = r.u32();
  r.tpm2b(); // authPolicy
  if (r.u16() !== TPM_ALG_NULL) r.bytes(4); // symmetric: keyBits, mode
  if (r.u16() !== TPM_ALG_NULL) r.u16(); // scheme: hashAlg (ECDAA's count is not for a device key)
  const curve = CURVES[r.u16()];
  if (!curve) throw new TpmWireError('the key is on a curve other than P-256 or P-384');
  if (r.u16() !== TPM_ALG_NULL) r.u16(); // kdf
  const x = r.tpm2b();
  const y = r.tpm2b();
  if (x.length !== curve.size || y.length !== curve.size) throw new TpmWireError('the key has a malformed EC point');
  const point = Buffer.concat([Buffer.from([4]), x, y]);
  const spki = der(0x30, der(0x30, EC_PUBLIC_KEY_OID, curve.oid), der(0x03, Buffer.from([0]), point));
  return { spki, point, objectAttributes };
}

/** The CKA_ID the pkcs11 keystore gives a key (and NSS looks it up by): SHA-1 of the EC point. */
export const nssKeyIdOfPoint = (point: Buffer): Buffer => createHash('sha1').update(point).digest();

/** The file tpm2_activatecredential -i reads: magic 0xBADCC0DE, version 1, then the two TPM2Bs as the server sent them. */
export function credentialFile(credentialBlob: Buffer, encryptedSecret: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0xbadcc0de, 0);
  head.writeUInt32BE(1, 4);
  return Buffer.concat([head, credentialBlob, encryptedSecret]);
}

const u16 = (v: number): Buffer => Buffer.from([(v >> 8) & 0xff, v & 0xff]);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const TPM_ST_SESSIONS = 0x8002;
const TPM_CC_CERTIFY = 0x00000148;
const TPM_RS_PW = 0x40000009;

/** TPMS_AUTH_COMMAND of a password session (Part 1 §19.8.4): the auth value in the hmac field, sent to the TPM only. */
const passwordSession = (auth: Buffer): Buffer => Buffer.concat([u32(TPM_RS_PW), u16(0), Buffer.from([0]), u16(auth.length), auth]);

/**
 * TPM2_Certify (Part 3 §18.2): `objectHandle` certified by `signHandle`,
 * both persistent, each with its password; qualifyingData = the server's
 * secret; inScheme NULL (the AK's own scheme).
 */
export function certifyCommand(o: { objectHandle: number; objectAuth: Buffer; signHandle: number; signAuth: Buffer; qualifyingData: Buffer }): Buffer {
  if (o.qualifyingData.length > 64) throw new TpmWireError('qualifyingData is longer than a digest');
  const auth = Buffer.concat([passwordSession(o.objectAuth), passwordSession(o.signAuth)]);
  const body = Buffer.concat([u32(o.objectHandle), u32(o.signHandle), u32(auth.length), auth, u16(o.qualifyingData.length), o.qualifyingData, u16(TPM_ALG_NULL)]);
  return Buffer.concat([u16(TPM_ST_SESSIONS), u32(10 + body.length), u32(TPM_CC_CERTIFY), body]);
}

export interface CertifyResponse {
  /** TPMS_ATTEST bytes (certifyInfo without its TPM2B size). */
  certifyInfo: Buffer;
  /** TPMT_SIGNATURE. */
  signature: Buffer;
}

/** The TPM's answer to certifyCommand; a non-zero response code is returned as `rc`. */
export function parseCertifyResponse(out: Buffer): CertifyResponse | { rc: number } {
  const r = new Reader(out);
  r.u16(); // tag
  const size = r.u32();
  if (size !== out.length) throw new TpmWireError(`TPM response of ${out.length} bytes says it has ${size}`);
  const rc = r.u32();
  if (rc !== 0) return { rc };
  const paramSize = r.u32();
  const params = new Reader(r.bytes(paramSize));
  const certifyInfo = params.tpm2b();
  const sigStart = 2 + certifyInfo.length;
  const signature = out.subarray(14 + sigStart, 14 + paramSize);
  if (signature.length < 6) throw new TpmWireError('TPM2_Certify returned no signature');
  return { certifyInfo: Buffer.from(certifyInfo), signature: Buffer.from(signature) };
}

/** TPM_RC in words for the codes a certify meets (Part 2 §6.6); others in hex. */
export function rcText(rc: number): string {
  const fmt1 = (rc & 0x80) !== 0;
  const base = fmt1 ? rc & 0x3f : rc & 0x7f;
  const known: Record<number, string> = fmt1
    ? { 0x0e: 'TPM_RC_AUTH_FAIL (wrong auth value)', 0x0b: 'TPM_RC_HANDLE', 0x22: 'TPM_RC_BAD_AUTH', 0x12: 'TPM_RC_SCHEME', 0x02: 'TPM_RC_ATTRIBUTES', 0x15: 'TPM_RC_SIZE' }
    : { 0x0b: 'TPM_RC_HANDLE', 0x02: 'TPM_RC_ATTRIBUTES', 0x15: 'TPM_RC_SIZE' };
  return `${known[base] ?? 'TPM error'} 0x${rc.toString(16)}`;
}
