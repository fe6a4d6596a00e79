/**
 * X.509 v2 CRLs (RFC 5280 §5): a linear-time builder and a strict parser.
 *
 * The builder makes two passes. Pass 1 validates every entry and records,
 * in flat typed arrays, what pass 2 needs (serial bytes in one arena,
 * revocation time, reason code) and the exact encoded size. Pass 2 writes
 * the whole CertificateList into ONE buffer: headers with `writeHeader`,
 * times formatted straight into place, the CRLReason extension copied from
 * a per-code cache. No per-entry Buffer, string or Date is created, so a
 * million-entry CRL is one allocation, one pass of writes and one signature
 * (object-model generators are quadratic or allocation-bound at that size).
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
  readUnsignedInt,
  seq,
  seqOf,
  time,
  writeHeader,
  type Tlv,
} from './der.js';
import type { Issuer } from './ca.js';
import { keyUsage, parseCertificate, subjectKeyId, type Certificate } from './certificate.js';
import { PkiError, wrapParse } from './errors.js';
import { decodeAuthorityKeyIdentifier, decodeExtensions, encodeExtension } from './extensions.js';
import { readSignatureAlgorithm, signatureAlgorithmDer, verifySignature } from './keys.js';
import { OID } from './oids.js';
import { PEM, pemEncode, toDer } from './pem.js';

// ---------------------------------------------------------------- reasons

/** RFC 5280 §5.3.1 CRLReason names and codes (value 7 is not used). */
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

/** Code → name (the inverse of CRL_REASON_CODES). */
export const CRL_REASON_NAMES: ReadonlyMap<number, CrlReason> = new Map(
  (Object.entries(CRL_REASON_CODES) as [CrlReason, number][]).map(([k, v]) => [v, k]),
);

const REASON_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(CRL_REASON_CODES));

export const isCrlReason = (s: string): s is CrlReason => REASON_BY_NAME.has(s);

/**
 * crlEntryExtensions holding only a CRLReason, encoded once per code:
 * SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED code } } }.
 */
const REASON_EXTENSIONS: ReadonlyArray<Buffer | undefined> = (() => {
  const out: (Buffer | undefined)[] = [];
  for (const code of CRL_REASON_NAMES.keys()) out[code] = seq(encodeExtension(OID.crlReason, false, enumerated(code)));
  return out;
})();
/** All cached encodings have the same length and differ only in the last byte (the code). */
const REASON_EXT_LEN = REASON_EXTENSIONS[1]!.length;
const NO_REASON = 0xff;

// ---------------------------------------------------------------- builder

export interface RevokedEntry {
  /** Serial number: unsigned big-endian bytes, or hex (colons allowed). Must be positive. */
  serial: Uint8Array | string;
  revokedAt: Date;
  /** Omitted, or 'unspecified', means no reasonCode extension (RFC 5280 §5.3.1). */
  reason?: CrlReason;
}

export interface BuildCrlOptions {
  issuer: Issuer;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Monotonically increasing, 0 <= n < 2^159 (RFC 5280 §5.2.3: at most 20 octets). */
  crlNumber: bigint;
  entries: Iterable<RevokedEntry> | readonly RevokedEntry[];
}

const MAX_CRL_NUMBER = 1n << 159n;
/** Serials are at most 20 significant octets (RFC 5280 §4.1.2.2). */
const MAX_SERIAL_OCTETS = 20;
/** writeHeader encodes lengths of up to 4 octets. */
const MAX_DER_LENGTH = 0xffff_ffff;
/** Room kept after the TBSCertList for the outer algorithm and the signature (RSA up to 8192 bits). */
const SIGNATURE_ROOM = 1100;

const DAY_MS = 86_400_000;
// Days since 1970-01-01 of 0000-01-01, 1950-01-01, 2050-01-01 and 10000-01-01.
const DAY_YEAR_0 = -719_528;
const DAY_YEAR_1950 = -7305;
const DAY_YEAR_2050 = 29_220;
const DAY_YEAR_10000 = 2_932_897;

/** Encoded size of a Time at `day` (RFC 5280 §5.1.2.4-6): UTCTime 1950..2049, GeneralizedTime otherwise; 0 if not encodable. */
function timeSizeOfDay(day: number): number {
  if (day >= DAY_YEAR_1950 && day < DAY_YEAR_2050) return 15;
  return day >= DAY_YEAR_0 && day < DAY_YEAR_10000 ? 17 : 0;
}

function checkDate(d: unknown, what: string): void {
  if (!(d instanceof Date)) throw new PkiError('ARGUMENT_INVALID', `${what} must be a Date`);
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new PkiError('ARGUMENT_INVALID', `${what} is an invalid Date`);
  if (timeSizeOfDay(Math.floor(ms / DAY_MS)) === 0) throw new PkiError('ARGUMENT_INVALID', `${what} (${d.toISOString()}) is outside years 0000..9999`);
}

function put2(out: Buffer, p: number, v: number): number {
  out[p] = 0x30 + ((v / 10) | 0);
  out[p + 1] = 0x30 + (v % 10);
  return p + 2;
}

/**
 * Writes the Time TLV for a day (since 1970-01-01) and second of that day at
 * `p`, with no allocation (small-integer arguments: no boxed doubles);
 * returns the new position. Same bytes as `time()` (tested through the
 * parser and openssl). Calendar: H. Hinnant's `civil_from_days`.
 */
function writeTimeOfDay(out: Buffer, p: number, days: number, sod: number): number {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year >= 1950 && year < 2050) {
    out[p++] = TAG.UTC_TIME;
    out[p++] = 13;
    p = put2(out, p, year % 100);
  } else {
    out[p++] = TAG.GENERALIZED_TIME;
    out[p++] = 15;
    p = put2(out, p, (year / 100) | 0);
    p = put2(out, p, year % 100);
  }
  p = put2(out, p, month);
  p = put2(out, p, day);
  const h = (sod / 3600) | 0;
  sod -= h * 3600;
  const m = (sod / 60) | 0;
  p = put2(out, p, h);
  p = put2(out, p, m);
  p = put2(out, p, sod - m * 60);
  out[p++] = 0x5a; // 'Z'
  return p;
}

const HEX = /^[0-9a-fA-F]+$/;

/**
 * Per-entry facts from pass 1, in flat growable typed arrays: serial content
 * octets (sign byte included) in one arena, their lengths, the revocation
 * time in ms and the reason code.
 */
class EntryTable {
  count = 0;
  arena: Buffer;
  arenaUsed = 0;
  serialLen: Uint8Array;
  /** Revocation time as whole days since 1970 and the second of that day (int32s: no doubles to box). */
  day: Int32Array;
  second: Int32Array;
  reason: Uint8Array;
  private readonly hexScratch = Buffer.alloc(MAX_SERIAL_OCTETS + 1);

  constructor(capacity: number) {
    const c = Math.max(16, capacity);
    this.arena = Buffer.allocUnsafe(c * 17);
    this.serialLen = new Uint8Array(c);
    this.day = new Int32Array(c);
    this.second = new Int32Array(c);
    this.reason = new Uint8Array(c);
  }

  private grow(): void {
    const c = this.serialLen.length * 2;
    const sl = new Uint8Array(c);
    sl.set(this.serialLen);
    this.serialLen = sl;
    const d = new Int32Array(c);
    d.set(this.day);
    this.day = d;
    const sec = new Int32Array(c);
    sec.set(this.second);
    this.second = sec;
    const r = new Uint8Array(c);
    r.set(this.reason);
    this.reason = r;
  }

  /** Validates an entry and records it; returns its encoded RevokedCertificate size. */
  add(e: RevokedEntry): number {
    const i = this.count;
    if (typeof e !== 'object' || e === null) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i} is not an object`);
    if (i === this.serialLen.length) this.grow();
    const serialLen = this.addSerial(e.serial, i);
    const at = e.revokedAt;
    const ms = at instanceof Date ? at.getTime() : NaN;
    const day = Math.floor(ms / DAY_MS);
    const tLen = timeSizeOfDay(day); // 0 for NaN too
    if (tLen === 0) checkDate(at, `revoked entry ${i}: revokedAt`);
    let code = NO_REASON;
    if (e.reason !== undefined) {
      const c = REASON_BY_NAME.get(e.reason);
      if (c === undefined) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: unknown CRL reason "${String(e.reason)}"`);
      // §5.3.1: "the reason code CRL entry extension SHOULD be absent instead of using the unspecified (0) reasonCode value".
      if (c !== 0) code = c;
    }
    this.serialLen[i] = serialLen;
    this.day[i] = day;
    this.second[i] = Math.floor((ms - day * DAY_MS) / 1000);
    this.reason[i] = code;
    this.count = i + 1;
    const body = 2 + serialLen + tLen + (code === NO_REASON ? 0 : REASON_EXT_LEN);
    return headerSize(body) + body;
  }

  /** Appends the INTEGER content of a serial to the arena; returns its length. */
  private addSerial(s: Uint8Array | string, i: number): number {
    let src: Uint8Array;
    let start = 0;
    let end: number;
    if (typeof s === 'string') {
      const h = s.includes(':') ? s.replaceAll(':', '') : s;
      if (!HEX.test(h)) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: serial "${s}" is not hex`);
      // Leading zero digits carry no value; strip them before the length check.
      let z = 0;
      while (z < h.length - 1 && h.charCodeAt(z) === 0x30) z++;
      const digits = h.length - z;
      if (digits > MAX_SERIAL_OCTETS * 2) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: serial "${s}" is longer than 20 octets`);
      const scratch = this.hexScratch;
      src = scratch;
      // Buffer hex decoding wants an even number of digits.
      end = scratch.write(digits % 2 ? '0' + h.slice(z) : z ? h.slice(z) : h, 0, 'hex');
    } else if (s instanceof Uint8Array) {
      src = s;
      end = s.length;
    } else {
      throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: serial must be bytes or a hex string`);
    }
    while (start < end && src[start] === 0) start++;
    const n = end - start;
    if (n === 0) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: a serial number must be positive (RFC 5280 §4.1.2.2)`);
    if (n > MAX_SERIAL_OCTETS) throw new PkiError('ARGUMENT_INVALID', `revoked entry ${i}: serial is ${n} octets; at most 20 are allowed`);
    const pad = src[start]! & 0x80 ? 1 : 0;
    if (this.arenaUsed + n + pad > this.arena.length) {
      const bigger = Buffer.allocUnsafe(this.arena.length * 2);
      this.arena.copy(bigger, 0, 0, this.arenaUsed);
      this.arena = bigger;
    }
    const a = this.arena;
    let p = this.arenaUsed;
    if (pad) a[p++] = 0;
    for (let k = start; k < end; k++) a[p++] = src[k]!;
    this.arenaUsed = p;
    return n + pad;
  }

  /** Writes every RevokedCertificate at `p` in `out`; returns the new position. */
  writeAll(out: Buffer, p: number): number {
    const { arena, serialLen, day, second, reason } = this;
    let a = 0;
    for (let i = 0; i < this.count; i++) {
      const sl = serialLen[i]!;
      const d = day[i]!;
      const code = reason[i]!;
      const tLen = d >= DAY_YEAR_1950 && d < DAY_YEAR_2050 ? 15 : 17;
      const body = 2 + sl + tLen + (code === NO_REASON ? 0 : REASON_EXT_LEN);
      p = writeHeader(out, p, TAG.SEQUENCE, body);
      out[p++] = TAG.INTEGER;
      out[p++] = sl;
      // Byte loops, not Buffer#copy: for ~20 bytes its argument checks and view creation cost more than the copy.
      for (let k = 0; k < sl; k++) out[p++] = arena[a++]!;
      p = writeTimeOfDay(out, p, d, second[i]!);
      if (code !== NO_REASON) {
        const ext = REASON_EXTENSIONS[code]!;
        for (let k = 0; k < REASON_EXT_LEN; k++) out[p++] = ext[k]!;
      }
    }
    return p;
  }
}

/**
 * Builds and signs an X.509 v2 CRL (RFC 5280 §5.1); returns DER. Linear in
 * the number of entries: one buffer for the whole CertificateList. The
 * caller guarantees serials are unique (they come from the certificate store).
 */
export async function buildCrl(o: BuildCrlOptions): Promise<Buffer> {
  const { issuer } = o;
  checkDate(o.thisUpdate, 'thisUpdate');
  checkDate(o.nextUpdate, 'nextUpdate');
  if (!(o.nextUpdate.getTime() > o.thisUpdate.getTime())) {
    throw new PkiError('ARGUMENT_INVALID', `nextUpdate (${o.nextUpdate.toISOString()}) must be after thisUpdate (${o.thisUpdate.toISOString()})`);
  }
  if (typeof o.crlNumber !== 'bigint' || o.crlNumber < 0n || o.crlNumber >= MAX_CRL_NUMBER) {
    throw new PkiError('ARGUMENT_INVALID', `CRL number must be a bigint with 0 <= n < 2^159 (RFC 5280 §5.2.3), got ${String(o.crlNumber)}`);
  }

  // Pass 1: validate and measure.
  const table = new EntryTable(Array.isArray(o.entries) ? o.entries.length : 1024);
  let revokedContent = 0;
  for (const e of o.entries) revokedContent += table.add(e);

  const alg = signatureAlgorithmDer(issuer.signer.algorithm);
  const head = [int(1), alg, issuer.cert.subjectDer, time(o.thisUpdate), time(o.nextUpdate)];
  const crlExtensions = explicit(0, seq(issuer.akiExtension, encodeExtension(OID.crlNumber, false, int(o.crlNumber))));
  let tbsContent = crlExtensions.length;
  for (const h of head) tbsContent += h.length;
  // §5.1.2.6: with no revoked certificates the list is absent, never an empty SEQUENCE.
  if (table.count > 0) tbsContent += headerSize(revokedContent) + revokedContent;
  const tbsLen = headerSize(tbsContent) + tbsContent;
  if (tbsLen + SIGNATURE_ROOM > MAX_DER_LENGTH) throw new PkiError('ARGUMENT_INVALID', `a CRL of ${table.count} entries is too large to encode`);

  // Pass 2: the TBSCertList, in place, leaving room for the outer header before it and the signature after it.
  const OUTER = 6;
  const out = Buffer.allocUnsafe(OUTER + tbsLen + alg.length + SIGNATURE_ROOM);
  let p = writeHeader(out, OUTER, TAG.SEQUENCE, tbsContent);
  for (const h of head) p += h.copy(out, p);
  if (table.count > 0) {
    p = writeHeader(out, p, TAG.SEQUENCE, revokedContent);
    const end = p + revokedContent;
    p = table.writeAll(out, p);
    if (p !== end) throw new PkiError('ARGUMENT_INVALID', `internal error: revokedCertificates is ${p - end + revokedContent} bytes, measured ${revokedContent}`);
  }
  p += crlExtensions.copy(out, p);

  const tbs = out.subarray(OUTER, OUTER + tbsLen);
  const sig = await issuer.signer.sign(tbs);
  const sigLen = 1 + sig.length;
  const outerContent = tbsLen + alg.length + headerSize(sigLen) + sigLen;
  if (headerSize(sigLen) + sigLen > SIGNATURE_ROOM) {
    // A signature larger than any supported key makes; not worth a special layout.
    return seq(tbs, alg, bitString(sig));
  }
  const start = OUTER - headerSize(outerContent);
  writeHeader(out, start, TAG.SEQUENCE, outerContent);
  p += alg.copy(out, p);
  p = writeHeader(out, p, TAG.BIT_STRING, sigLen);
  out[p++] = 0;
  out.set(sig, p);
  p += sig.length;
  out.fill(0, 0, start);
  out.fill(0, p);
  return out.subarray(start, p);
}

/** PEM with the label OpenSSL expects (`X509 CRL`; it rejects `CRL`). */
export const crlToPem = (der: Uint8Array): string => pemEncode(PEM.CRL, der);

// ---------------------------------------------------------------- parser

export interface CrlEntry {
  /** Lower-case hex, no leading zero byte (like Certificate.serialHex). */
  serialHex: string;
  revokedAt: Date;
  reason: CrlReason | undefined;
}

export interface ParsedCrl {
  der: Buffer;
  /** The signed TBSCertList. */
  tbs: Buffer;
  /** 2 for v2, 1 when the version field is absent. */
  version: number;
  issuerDer: Buffer;
  thisUpdate: Date;
  /** RFC 5280 requires it from conforming CAs; absent only in CRLs from elsewhere. */
  nextUpdate: Date | undefined;
  crlNumber: bigint | undefined;
  /** keyIdentifier of the AuthorityKeyIdentifier extension. */
  akid: Buffer | undefined;
  entries: CrlEntry[];
  signatureAlgorithmOid: string;
  signature: Buffer;
}

/** CRL extensions we understand; any other extension marked critical makes the CRL unusable (§5.2). */
const KNOWN_CRL_EXTENSIONS: ReadonlySet<string> = new Set([OID.crlNumber, OID.authorityKeyIdentifier]);
/** invalidityDate (§5.3.2) is informational; certificateIssuer (§5.3.3, critical) means an indirect CRL, which we do not support. */
const KNOWN_ENTRY_EXTENSIONS: ReadonlySet<string> = new Set([OID.crlReason, '2.5.29.24']);

const malformed = (msg: string): PkiError => new PkiError('DER_MALFORMED', msg);

function readReason(value: Buffer, where: string): CrlReason {
  const e = content(expectTag(parseOne(value, where), TAG.ENUMERATED, where));
  if (e.length !== 1 || e[0]! & 0x80) throw malformed(`${where}: not a valid CRLReason ENUMERATED`);
  const reason = CRL_REASON_NAMES.get(e[0]!);
  if (!reason) throw malformed(`${where}: unknown CRLReason ${e[0]} (RFC 5280 §5.3.1)`);
  return reason;
}

/** Entry extensions; the cached single-CRLReason encodings are recognized without decoding. */
function readEntryReason(t: Tlv, where: string): CrlReason | undefined {
  const len = t.end - t.start;
  if (len === REASON_EXT_LEN) {
    const code = t.buf[t.end - 1]!;
    const cached = REASON_EXTENSIONS[code];
    if (cached && t.buf.compare(cached, 0, REASON_EXT_LEN, t.start, t.end) === 0) return CRL_REASON_NAMES.get(code);
  }
  const exts = decodeExtensions(t, where);
  if (exts.size === 0) throw malformed(`${where}: crlEntryExtensions is present but empty`);
  for (const x of exts.values()) {
    if (x.critical && !KNOWN_ENTRY_EXTENSIONS.has(x.oid)) {
      throw malformed(`${where}: critical entry extension ${x.oid} is not supported; the CRL cannot be used (RFC 5280 §5.3)`);
    }
  }
  const r = exts.get(OID.crlReason);
  return r ? readReason(r.value, `${where}.reasonCode`) : undefined;
}

function readEntry(t: Tlv, i: number, v2: boolean): CrlEntry {
  const where = `revokedCertificates[${i}]`;
  const parts = seqOf(t, where, 2, 3);
  const serial = readUnsignedInt(parts[0]!, `${where}.userCertificate`);
  const revokedAt = readTime(parts[1]!, `${where}.revocationDate`);
  let reason: CrlReason | undefined;
  if (parts[2]) {
    if (!v2) throw malformed(`${where}: entry extensions in a v1 CRL`);
    reason = readEntryReason(parts[2], `${where}.crlEntryExtensions`);
  }
  return { serialHex: serial.toString('hex'), revokedAt, reason };
}

const isTime = (t: Tlv | undefined): t is Tlv => t !== undefined && (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME);

/**
 * Parses a CRL (PEM `X509 CRL`, or DER) strictly. Does not check the
 * signature: see `verifyCrl`. Every failure is a PkiError: PEM_INVALID,
 * INPUT_TOO_LARGE (over 64 MiB) or DER_MALFORMED.
 */
export function parseCrl(input: string | Uint8Array): ParsedCrl {
  const der = toDer(input, PEM.CRL);
  return wrapParse('DER_MALFORMED', 'CRL', () => {
    const [tbsT, algT, sigT] = seqOf(parseOne(der, 'CertificateList'), 'CertificateList', 3, 3) as [Tlv, Tlv, Tlv];
    const p = seqOf(tbsT, 'TBSCertList', 3, 7);
    let i = 0;
    let version = 1;
    if (p[0]!.tag === TAG.INTEGER) {
      // §5.1.2.1: "if present, MUST specify v2".
      if (readSmallInt(p[i++]!, 'TBSCertList.version') !== 1) throw malformed('TBSCertList.version: a CRL version, if present, must be v2 (1)');
      version = 2;
    }
    const innerAlg = expectTag(p[i++]!, TAG.SEQUENCE, 'TBSCertList.signature');
    // §5.1.1.2: the two algorithm identifiers MUST be the same.
    if (!raw(innerAlg).equals(raw(algT))) throw malformed('the signature algorithm inside the TBSCertList differs from the outer one (RFC 5280 §5.1.1.2)');
    const signatureAlgorithmOid = readSignatureAlgorithm(raw(algT), 'signatureAlgorithm').oid;
    const issuerT = p[i++];
    if (!issuerT) throw malformed('TBSCertList: issuer missing');
    if (seqOf(issuerT, 'TBSCertList.issuer').length === 0) throw malformed('TBSCertList.issuer: empty name (RFC 5280 §5.1.2.3)');
    const thisUpdateT = p[i++];
    if (!thisUpdateT) throw malformed('TBSCertList: thisUpdate missing');
    const thisUpdate = readTime(thisUpdateT, 'TBSCertList.thisUpdate');
    const nextUpdate = isTime(p[i]) ? readTime(p[i++]!, 'TBSCertList.nextUpdate') : undefined;

    const entries: CrlEntry[] = [];
    if (p[i]?.tag === TAG.SEQUENCE) {
      const list = p[i++]!;
      // §5.1.2.6: when there are no revoked certificates the list MUST be absent.
      if (list.end === list.contentStart) throw malformed('revokedCertificates is present but empty (RFC 5280 §5.1.2.6)');
      const items = children(list, 'revokedCertificates');
      for (let n = 0; n < items.length; n++) entries.push(readEntry(items[n]!, n, version === 2));
    }

    let crlNumber: bigint | undefined;
    let akid: Buffer | undefined;
    if (p[i]?.tag === 0xa0) {
      if (version !== 2) throw malformed('crlExtensions in a v1 CRL (RFC 5280 §5.1.2.7)');
      const inner = children(p[i++]!, 'crlExtensions');
      if (inner.length !== 1) throw malformed('crlExtensions: expected exactly one Extensions SEQUENCE');
      const exts = decodeExtensions(inner[0]!, 'crlExtensions');
      if (exts.size === 0) throw malformed('crlExtensions: Extensions must not be empty');
      for (const x of exts.values()) {
        if (x.critical && !KNOWN_CRL_EXTENSIONS.has(x.oid)) {
          throw malformed(`crlExtensions: critical extension ${x.oid} is not supported; the CRL cannot be used (RFC 5280 §5.2)`);
        }
      }
      const n = exts.get(OID.crlNumber);
      if (n) {
        const b = readUnsignedInt(parseOne(n.value, 'CRLNumber'), 'CRLNumber');
        if (b.length > 20) throw malformed('CRLNumber: longer than 20 octets (RFC 5280 §5.2.3)');
        crlNumber = BigInt('0x' + b.toString('hex'));
      }
      const aki = exts.get(OID.authorityKeyIdentifier);
      if (aki) akid = decodeAuthorityKeyIdentifier(aki.value);
    }
    if (i !== p.length) throw malformed(`TBSCertList: unexpected element ${i} with tag 0x${p[i]!.tag.toString(16)}`);
    return {
      der,
      tbs: raw(tbsT),
      version,
      issuerDer: raw(issuerT),
      thisUpdate,
      nextUpdate,
      crlNumber,
      akid,
      entries,
      signatureAlgorithmOid,
      signature: readBitString(sigT, 'signatureValue').bytes,
    };
  });
}

/**
 * True if `issuer` signed this CRL: same name, matching key identifier when
 * both carry one, cRLSign permitted (§6.3.3 (f)), and a valid signature.
 * Time (thisUpdate/nextUpdate) is the caller's to check. Throws PkiError
 * SIGNATURE_INVALID for a signature that is not even well-formed, and
 * ALGORITHM_UNSUPPORTED for an unknown algorithm.
 */
export function verifyCrl(crl: ParsedCrl, issuer: Certificate | string | Uint8Array): boolean {
  const cert = issuer instanceof Uint8Array || typeof issuer === 'string' ? parseCertificate(issuer) : issuer;
  if (!crl.issuerDer.equals(cert.subjectDer)) return false;
  const ski = subjectKeyId(cert);
  if (crl.akid && ski && !crl.akid.equals(ski)) return false;
  const ku = keyUsage(cert);
  if (ku && !ku.has('cRLSign')) return false;
  return verifySignature(cert.spki, crl.signatureAlgorithmOid, crl.tbs, crl.signature);
}
