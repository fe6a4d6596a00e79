/**
 * X.509 v2 CRLs (RFC 5280 §5): a linear-time builder and a strict parser.
 *
 * The builder measures every entry first, allocates one buffer for the whole
 * revokedCertificates sequence and writes each entry in place, so a
 * million-entry CRL costs one pass, one allocation and one signature (the
 * stock object-model generators are quadratic in the number of entries).
 */
import {
  TAG,
  bitString,
  children,
  content,
  enumerated,
  explicit,
  expectTag,
  headerSize,
  int,
  parseOne,
  raw,
  readBitString,
  readSmallInt,
  readTime,
  seq,
  seqOf,
  time,
  timeSize,
  writeHeader,
  writeTime,
  type Tlv,
} from './der.js';
import type { Issuer } from './ca.js';
import type { Certificate } from './certificate.js';
import { PkiError, wrapParse } from './errors.js';
import { decodeAuthorityKeyIdentifier, decodeExtensions, encodeExtension } from './extensions.js';
import { readSignatureAlgorithm, signatureAlgorithmDer, verifySignature } from './keys.js';
import { OID } from './oids.js';
import { PEM, pemEncode, toDer } from './pem.js';
import { serialFromHex } from './serial.js';

/** RFC 5280 §5.3.1 CRLReason codes (8 is unused). */
export const CRL_REASON_CODES = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type CrlReason = keyof typeof CRL_REASON_CODES;

export const CRL_REASON_NAMES: ReadonlyMap<number, CrlReason> = new Map(
  (Object.entries(CRL_REASON_CODES) as [CrlReason, number][]).map(([k, v]) => [v, k]),
);

export const isCrlReason = (s: string): s is CrlReason => Object.hasOwn(CRL_REASON_CODES, s);

export interface RevokedEntry {
  /** Unsigned big-endian bytes, or hex. */
  serial: Uint8Array | string;
  revokedAt: Date;
  reason?: CrlReason;
}

export interface CrlOptions {
  issuer: Issuer;
  thisUpdate: Date;
  nextUpdate: Date;
  crlNumber: bigint;
  entries: Iterable<RevokedEntry>;
}

const MAX_CRL_NUMBER = 2n ** 159n; // RFC 5280 §5.2.3: at most 20 octets

/** crlEntryExtensions carrying one CRLReason, encoded once per code. */
const reasonExtensionCache = new Map<number, Buffer>();
function reasonExtensions(code: number): Buffer {
  let b = reasonExtensionCache.get(code);
  if (!b) {
    b = seq(encodeExtension(OID.crlReason, false, enumerated(code)));
    reasonExtensionCache.set(code, b);
  }
  return b;
}

/** A serial normalised for encoding: bytes[start..] is minimal, `pad` adds the sign byte. */
interface SerialRef {
  bytes: Uint8Array;
  start: number;
  pad: boolean;
}

function serialRef(s: Uint8Array | string): SerialRef {
  const bytes = typeof s === 'string' ? serialFromHex(s) : s;
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  if (start === bytes.length) throw new PkiError('ARGUMENT_INVALID', 'a revoked serial must be positive');
  if (bytes.length - start > 20) throw new PkiError('ARGUMENT_INVALID', 'a serial is at most 20 octets');
  return { bytes, start, pad: (bytes[start]! & 0x80) !== 0 };
}

/** Builds and signs a CRL; returns DER. Linear in the number of entries. */
export async function buildCrl(o: CrlOptions): Promise<Buffer> {
  if (!(o.nextUpdate.getTime() > o.thisUpdate.getTime())) {
    throw new PkiError('ARGUMENT_INVALID', 'nextUpdate must be after thisUpdate');
  }
  if (o.crlNumber < 0n || o.crlNumber >= MAX_CRL_NUMBER) {
    throw new PkiError('ARGUMENT_INVALID', 'CRL number must be a non-negative integer of at most 159 bits');
  }
  const entries = Array.isArray(o.entries) ? (o.entries as readonly RevokedEntry[]) : [...o.entries];
  const n = entries.length;

  // Pass 1: validate and measure every entry.
  const serials: SerialRef[] = new Array(n);
  const exts: (Buffer | undefined)[] = new Array(n);
  const bodyLen = new Int32Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const e = entries[i]!;
    const s = serialRef(e.serial);
    if (!Number.isFinite(e.revokedAt.getTime())) throw new PkiError('ARGUMENT_INVALID', `entry ${i}: invalid revocation date`);
    let ext: Buffer | undefined;
    if (e.reason !== undefined && e.reason !== 'unspecified') {
      const code = CRL_REASON_CODES[e.reason];
      if (code === undefined) throw new PkiError('ARGUMENT_INVALID', `unknown CRL reason "${String(e.reason)}"`);
      ext = reasonExtensions(code);
    }
    const sLen = s.bytes.length - s.start + (s.pad ? 1 : 0);
    const body = 2 + sLen + timeSize(e.revokedAt) + (ext ? ext.length : 0);
    serials[i] = s;
    exts[i] = ext;
    bodyLen[i] = body;
    total += headerSize(body) + body;
  }

  // Pass 2: write every entry into one buffer, in place.
  let revoked: Buffer | undefined;
  if (n > 0) {
    revoked = Buffer.allocUnsafe(headerSize(total) + total);
    let p = writeHeader(revoked, 0, TAG.SEQUENCE, total);
    for (let i = 0; i < n; i++) {
      const s = serials[i]!;
      const ext = exts[i];
      p = writeHeader(revoked, p, TAG.SEQUENCE, bodyLen[i]!);
      revoked[p++] = TAG.INTEGER;
      revoked[p++] = s.bytes.length - s.start + (s.pad ? 1 : 0);
      if (s.pad) revoked[p++] = 0;
      revoked.set(s.start === 0 ? s.bytes : s.bytes.subarray(s.start), p);
      p += s.bytes.length - s.start;
      p = writeTime(revoked, p, entries[i]!.revokedAt);
      if (ext) p += ext.copy(revoked, p);
    }
    if (p !== revoked.length) throw new PkiError('ARGUMENT_INVALID', 'internal error: CRL length mismatch');
  }

  const alg = signatureAlgorithmDer(o.issuer.signer.algorithm);
  const parts: Buffer[] = [int(1), alg, o.issuer.cert.subjectDer, time(o.thisUpdate), time(o.nextUpdate)];
  // RFC 5280 §5.1.2.6: when there are no revoked certificates the list is absent, not empty.
  if (revoked) parts.push(revoked);
  parts.push(explicit(0, seq(o.issuer.akiExtension, encodeExtension(OID.crlNumber, false, int(o.crlNumber)))));
  const tbs = seq(...parts);
  const sig = await o.issuer.signer.sign(tbs);
  return seq(tbs, alg, bitString(sig));
}

export const crlToPem = (der: Uint8Array): string => pemEncode(PEM.CRL, der);

// ---------------------------------------------------------------- parser

export interface CrlEntry {
  serialHex: string;
  revokedAt: Date;
  reason: CrlReason | undefined;
}

export interface ParsedCrl {
  der: Buffer;
  tbs: Buffer;
  version: number;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  crlNumber: bigint | undefined;
  authorityKeyId: Buffer | undefined;
  entries: CrlEntry[];
  signatureAlgorithmOid: string;
  signature: Buffer;
}

function readEntry(t: Tlv, i: number): CrlEntry {
  const parts = seqOf(t, `revokedCertificates[${i}]`, 2, 3);
  const sTlv = expectTag(parts[0]!, TAG.INTEGER, `revokedCertificates[${i}].serial`);
  let serial = content(sTlv);
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  let reason: CrlReason | undefined;
  if (parts[2]) {
    const exts = decodeExtensions(parts[2], `revokedCertificates[${i}].extensions`);
    if (exts.size === 0) throw new PkiError('DER_MALFORMED', `revokedCertificates[${i}]: empty crlEntryExtensions`);
    const r = exts.get(OID.crlReason);
    if (r) {
      const e = content(expectTag(parseOne(r.value, 'CRLReason'), TAG.ENUMERATED, 'CRLReason'));
      if (e.length !== 1) throw new PkiError('DER_MALFORMED', `revokedCertificates[${i}]: bad CRLReason`);
      const code = e[0]!;
      reason = CRL_REASON_NAMES.get(code);
      if (!reason) throw new PkiError('DER_MALFORMED', `revokedCertificates[${i}]: unknown CRLReason ${code}`);
    }
  }
  return { serialHex: serial.toString('hex'), revokedAt: readTime(parts[1]!, `revokedCertificates[${i}].revocationDate`), reason };
}

/** Parses a CRL (PEM `X509 CRL` or DER). Does not verify its signature: see `verifyCrl`. */
export function parseCrl(input: string | Uint8Array): ParsedCrl {
  const der = toDer(input, PEM.CRL);
  return wrapParse('DER_MALFORMED', 'CRL', () => {
    const [tbsT, algT, sigT] = seqOf(parseOne(der, 'CertificateList'), 'CertificateList', 3, 3) as [Tlv, Tlv, Tlv];
    const p = seqOf(tbsT, 'TBSCertList', 4, 7);
    let i = 0;
    let version = 1;
    if (p[0]!.tag === TAG.INTEGER) version = readSmallInt(p[i++]!, 'version') + 1;
    const innerAlg = p[i++]!;
    if (!raw(innerAlg).equals(raw(algT))) throw new PkiError('DER_MALFORMED', 'signature algorithm inside and outside the TBSCertList differ');
    const issuerDer = raw(expectTag(p[i++]!, TAG.SEQUENCE, 'issuer'));
    const thisUpdate = readTime(p[i++]!, 'thisUpdate');
    let nextUpdate: Date | undefined;
    if (p[i] && (p[i]!.tag === TAG.UTC_TIME || p[i]!.tag === TAG.GENERALIZED_TIME)) nextUpdate = readTime(p[i++]!, 'nextUpdate');
    const entries: CrlEntry[] = [];
    if (p[i] && p[i]!.tag === TAG.SEQUENCE) {
      const list = children(p[i++]!, 'revokedCertificates');
      if (list.length === 0) throw new PkiError('DER_MALFORMED', 'revokedCertificates is present but empty (RFC 5280 §5.1.2.6)');
      list.forEach((e, n) => entries.push(readEntry(e, n)));
    }
    let crlNumber: bigint | undefined;
    let authorityKeyId: Buffer | undefined;
    if (p[i] && p[i]!.tag === 0xa0) {
      const inner = children(p[i++]!, 'crlExtensions');
      if (inner.length !== 1) throw new PkiError('DER_MALFORMED', 'crlExtensions: expected one SEQUENCE');
      const exts = decodeExtensions(inner[0]!, 'crlExtensions');
      const n = exts.get(OID.crlNumber);
      if (n) {
        const b = content(expectTag(parseOne(n.value, 'CRLNumber'), TAG.INTEGER, 'CRLNumber'));
        crlNumber = BigInt('0x' + (b.toString('hex') || '0'));
      }
      const aki = exts.get(OID.authorityKeyIdentifier);
      if (aki) authorityKeyId = decodeAuthorityKeyIdentifier(aki.value);
    }
    if (i !== p.length) throw new PkiError('DER_MALFORMED', `TBSCertList: unexpected element with tag 0x${p[i]!.tag.toString(16)}`);
    return {
      der,
      tbs: raw(tbsT),
      version,
      issuerDer,
      thisUpdate,
      nextUpdate,
      crlNumber,
      authorityKeyId,
      entries,
      signatureAlgorithmOid: readSignatureAlgorithm(raw(algT), 'signatureAlgorithm').oid,
      signature: readBitString(sigT, 'signatureValue').bytes,
    };
  });
}

/** True if `issuer` signed this CRL and the names match. */
export function verifyCrl(crl: ParsedCrl, issuer: Certificate): boolean {
  if (!crl.issuerDer.equals(issuer.subjectDer)) return false;
  return verifySignature(issuer.spki, crl.signatureAlgorithmOid, crl.tbs, crl.signature);
}

