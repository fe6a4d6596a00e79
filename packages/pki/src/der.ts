/**
 * A small DER encoder and a strict DER reader.
 *
 * The hot paths (issuance, CRL, OCSP) assemble DER directly from these
 * builders instead of going through an object model: it is an order of
 * magnitude faster and every byte written is visible here. The reader is
 * strict (definite, minimal lengths; bounds checked) and throws PkiError
 * DER_MALFORMED with the path of the element that failed.
 */
import { PkiError } from './errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  BMP_STRING: 0x1e,
  UNIVERSAL_STRING: 0x1c,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------- writer

function lengthBytes(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  if (len < 0x100) return Buffer.from([0x81, len]);
  if (len < 0x10000) return Buffer.from([0x82, len >> 8, len & 0xff]);
  if (len < 0x1000000) return Buffer.from([0x83, len >> 16, (len >> 8) & 0xff, len & 0xff]);
  return Buffer.from([0x84, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]);
}

/** Size of a TLV header for a given content length (one-byte tag). */
export function headerSize(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
}

/** Writes a TLV header into `out` at `pos`; returns the new position. */
export function writeHeader(out: Uint8Array, pos: number, tag: number, len: number): number {
  out[pos++] = tag;
  if (len < 0x80) {
    out[pos++] = len;
  } else if (len < 0x100) {
    out[pos++] = 0x81;
    out[pos++] = len;
  } else if (len < 0x10000) {
    out[pos++] = 0x82;
    out[pos++] = len >> 8;
    out[pos++] = len & 0xff;
  } else if (len < 0x1000000) {
    out[pos++] = 0x83;
    out[pos++] = len >> 16;
    out[pos++] = (len >> 8) & 0xff;
    out[pos++] = len & 0xff;
  } else {
    out[pos++] = 0x84;
    out[pos++] = (len >>> 24) & 0xff;
    out[pos++] = (len >> 16) & 0xff;
    out[pos++] = (len >> 8) & 0xff;
    out[pos++] = len & 0xff;
  }
  return pos;
}

export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const seq = (...parts: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...parts);

/** DER SET OF: elements sorted by their encodings (X.690 §11.6). */
export function setOf(...parts: Uint8Array[]): Buffer {
  const sorted = [...parts].sort((a, b) => Buffer.compare(a, b));
  return tlv(TAG.SET, ...sorted);
}

/** [n] EXPLICIT (constructed context tag). */
export const explicit = (n: number, ...parts: Uint8Array[]): Buffer => tlv(0xa0 | n, ...parts);

/** [n] IMPLICIT over a primitive type (e.g. GeneralName choices). */
export const implicitPrimitive = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

/** [n] IMPLICIT over a constructed type (SEQUENCE content re-tagged). */
export const implicitConstructed = (n: number, ...parts: Uint8Array[]): Buffer => tlv(0xa0 | n, ...parts);

/** INTEGER from a non-negative bigint, number, or unsigned big-endian bytes. */
export function int(value: bigint | number | Uint8Array): Buffer {
  return tlv(TAG.INTEGER, intContent(value));
}

export function intContent(value: bigint | number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (value instanceof Uint8Array) {
    bytes = Buffer.from(value);
  } else {
    const v = BigInt(value);
    if (v < 0n) throw new PkiError('ARGUMENT_INVALID', 'negative INTEGER values are not used here');
    const hex = v.toString(16);
    bytes = Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex');
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) return Buffer.from([0]);
  if (bytes[0]! & 0x80) return Buffer.concat([Buffer.from([0]), bytes]);
  return bytes;
}

export const enumerated = (n: number): Buffer => tlv(TAG.ENUMERATED, intContent(n));
export const bool = (b: boolean): Buffer => Buffer.from([TAG.BOOLEAN, 1, b ? 0xff : 0]);
export const nul = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const octets = (b: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Uint8Array, unused = 0): Buffer => tlv(TAG.BIT_STRING, Buffer.from([unused]), b);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const ia5 = (s: string): Buffer => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));
export const printable = (s: string): Buffer => tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'ascii'));

const oidCache = new Map<string, Buffer>();

export function oid(dotted: string): Buffer {
  const hit = oidCache.get(dotted);
  if (hit) return hit;
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new PkiError('ARGUMENT_INVALID', `not an OID: ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n) throw new PkiError('ARGUMENT_INVALID', `not an OID: ${dotted}`);
  const out: number[] = [];
  const push = (v: bigint): void => {
    const tmp: number[] = [Number(v & 0x7fn)];
    v >>= 7n;
    while (v > 0n) {
      tmp.unshift(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(...tmp);
  };
  push(arcs[0]! * 40n + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  const enc = tlv(TAG.OID, Buffer.from(out));
  oidCache.set(dotted, enc);
  return enc;
}

const pad2 = (n: number): string => (n < 10 ? '0' + n : String(n));

/** Time per RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
export function time(d: Date): Buffer {
  return Buffer.from(timeBytes(d));
}

export function timeBytes(d: Date): Uint8Array {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new PkiError('ARGUMENT_INVALID', 'invalid date');
  const y = d.getUTCFullYear();
  const body =
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    'Z';
  if (y >= 1950 && y < 2050) {
    const s = pad2(y % 100) + body;
    const out = new Uint8Array(2 + s.length);
    out[0] = TAG.UTC_TIME;
    out[1] = s.length;
    for (let i = 0; i < s.length; i++) out[2 + i] = s.charCodeAt(i);
    return out;
  }
  if (y < 0 || y > 9999) throw new PkiError('ARGUMENT_INVALID', `year ${y} cannot be encoded`);
  const s = String(y).padStart(4, '0') + body;
  const out = new Uint8Array(2 + s.length);
  out[0] = TAG.GENERALIZED_TIME;
  out[1] = s.length;
  for (let i = 0; i < s.length; i++) out[2 + i] = s.charCodeAt(i);
  return out;
}

/** GeneralizedTime always (OCSP producedAt/thisUpdate, RFC 6960 §4.2.2.1). */
export function generalizedTime(d: Date): Buffer {
  const s =
    String(d.getUTCFullYear()).padStart(4, '0') +
    pad2(d.getUTCMonth() + 1) +
    pad2(d.getUTCDate()) +
    pad2(d.getUTCHours()) +
    pad2(d.getUTCMinutes()) +
    pad2(d.getUTCSeconds()) +
    'Z';
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(s, 'ascii'));
}

// ---------------------------------------------------------------- reader

export interface Tlv {
  tag: number;
  /** Offset of the tag byte in the buffer. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
  buf: Buffer;
}

export const content = (t: Tlv): Buffer => t.buf.subarray(t.contentStart, t.end);
export const raw = (t: Tlv): Buffer => t.buf.subarray(t.start, t.end);
export const isConstructed = (t: Tlv): boolean => (t.tag & 0x20) !== 0;

function malformed(where: string, why: string): PkiError {
  return new PkiError('DER_MALFORMED', `${where}: ${why}`);
}

/** Reads one TLV at `pos`, bounded by `limit`. Only single-byte tags (all we use). */
export function readTlv(buf: Buffer, pos: number, limit: number, where: string): Tlv {
  if (pos >= limit) throw malformed(where, 'unexpected end of data');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw malformed(where, 'multi-byte tags are not supported');
  if (pos + 1 >= limit) throw malformed(where, 'truncated length');
  let len = buf[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw malformed(where, 'indefinite length is not DER');
    if (n > 4) throw malformed(where, 'length too large');
    if (p + n > limit) throw malformed(where, 'truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    if (buf[p] === 0 || len < 0x80) throw malformed(where, 'length is not minimally encoded');
    p += n;
  }
  if (p + len > limit) throw malformed(where, `truncated: element says ${len} bytes, ${limit - p} remain`);
  return { tag, start: pos, contentStart: p, end: p + len, buf };
}

/** Parses a whole buffer as exactly one TLV (no trailing bytes). */
export function parseOne(buf: Uint8Array, where: string): Tlv {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const t = readTlv(b, 0, b.length, where);
  if (t.end !== b.length) throw malformed(where, `${b.length - t.end} trailing bytes after the structure`);
  return t;
}

export function expectTag(t: Tlv, tag: number, where: string): Tlv {
  if (t.tag !== tag) {
    throw malformed(where, `expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  }
  return t;
}

/** The children of a constructed element. */
export function children(t: Tlv, where: string): Tlv[] {
  if (!isConstructed(t)) throw malformed(where, 'expected a constructed element');
  const out: Tlv[] = [];
  let p = t.contentStart;
  while (p < t.end) {
    const c = readTlv(t.buf, p, t.end, `${where}[${out.length}]`);
    out.push(c);
    p = c.end;
  }
  return out;
}

/** Children of a SEQUENCE, checking the tag and the count bounds. */
export function seqOf(t: Tlv, where: string, min = 0, max = Infinity): Tlv[] {
  expectTag(t, TAG.SEQUENCE, where);
  const c = children(t, where);
  if (c.length < min || c.length > max) {
    throw malformed(where, `expected ${min === max ? min : `${min}..${max}`} elements, found ${c.length}`);
  }
  return c;
}

const oidReadCache = new Map<string, string>();

export function readOid(t: Tlv, where: string): string {
  expectTag(t, TAG.OID, where);
  const b = content(t);
  if (b.length === 0) throw malformed(where, 'empty OID');
  // The same few OIDs arrive over and over (every CSR, every OCSP request).
  const cacheKey = b.length <= 32 ? b.toString('latin1') : undefined;
  const hit = cacheKey === undefined ? undefined : oidReadCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const arcs: (number | bigint)[] = [];
  let v = 0;
  let big: bigint | undefined;
  let first = true;
  for (let i = 0; i < b.length; i++) {
    const byte = b[i]!;
    if (v === 0 && big === undefined && byte === 0x80) throw malformed(where, 'OID arc not minimally encoded');
    if (big !== undefined) big = (big << 7n) | BigInt(byte & 0x7f);
    else if (v >= 2 ** 45) big = (BigInt(v) << 7n) | BigInt(byte & 0x7f);
    else v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      const value: number | bigint = big ?? v;
      if (first) {
        const a0 = value < 40 ? 0 : value < 80 ? 1 : 2;
        arcs.push(a0, typeof value === 'bigint' ? value - BigInt(a0 * 40) : value - a0 * 40);
        first = false;
      } else {
        arcs.push(value);
      }
      v = 0;
      big = undefined;
    } else if (i === b.length - 1) {
      throw malformed(where, 'OID ends mid-arc');
    }
  }
  const dotted = arcs.join('.');
  if (cacheKey !== undefined && oidReadCache.size < 4096) oidReadCache.set(cacheKey, dotted);
  return dotted;
}

/** INTEGER content as unsigned big-endian bytes (sign byte stripped); rejects negatives. */
export function readUnsignedInt(t: Tlv, where: string): Buffer {
  expectTag(t, TAG.INTEGER, where);
  const b = content(t);
  if (b.length === 0) throw malformed(where, 'empty INTEGER');
  if (b.length > 1 && ((b[0] === 0 && !(b[1]! & 0x80)) || (b[0] === 0xff && b[1]! & 0x80))) {
    throw malformed(where, 'INTEGER not minimally encoded');
  }
  if (b[0]! & 0x80) throw malformed(where, 'negative INTEGER');
  return b[0] === 0 && b.length > 1 ? b.subarray(1) : b;
}

export function readSmallInt(t: Tlv, where: string): number {
  const b = readUnsignedInt(t, where);
  if (b.length > 6) throw malformed(where, 'INTEGER too large');
  return b.readUIntBE(0, b.length);
}

export function readBitString(t: Tlv, where: string): { bytes: Buffer; unused: number } {
  expectTag(t, TAG.BIT_STRING, where);
  const b = content(t);
  if (b.length === 0) throw malformed(where, 'empty BIT STRING');
  const unused = b[0]!;
  if (unused > 7 || (unused > 0 && b.length === 1)) throw malformed(where, 'bad unused-bits count');
  return { bytes: b.subarray(1), unused };
}

export function readBool(t: Tlv, where: string): boolean {
  expectTag(t, TAG.BOOLEAN, where);
  const b = content(t);
  if (b.length !== 1 || (b[0] !== 0 && b[0] !== 0xff)) throw malformed(where, 'BOOLEAN is not DER');
  return b[0] === 0xff;
}

const STRING_TAGS: ReadonlySet<number> = new Set([
  TAG.UTF8_STRING,
  TAG.PRINTABLE_STRING,
  TAG.IA5_STRING,
  TAG.T61_STRING,
  TAG.BMP_STRING,
  TAG.UNIVERSAL_STRING,
]);

/** Any of the directory string types, decoded to a JS string. */
export function readString(t: Tlv, where: string): string {
  if (!STRING_TAGS.has(t.tag)) throw malformed(where, `expected a string, found tag 0x${t.tag.toString(16)}`);
  const b = content(t);
  if (t.tag === TAG.BMP_STRING) {
    if (b.length % 2) throw malformed(where, 'odd-length BMPString');
    return Buffer.from(b).swap16().toString('utf16le');
  }
  if (t.tag === TAG.UNIVERSAL_STRING) {
    if (b.length % 4) throw malformed(where, 'bad UniversalString');
    let s = '';
    for (let i = 0; i < b.length; i += 4) {
      // UCS-4: a Unicode scalar value, not a surrogate, at most U+10FFFF.
      const cp = b.readUInt32BE(i);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw malformed(where, `UniversalString holds 0x${cp.toString(16)}, which is not a Unicode character`);
      s += String.fromCodePoint(cp);
    }
    return s;
  }
  if (t.tag === TAG.UTF8_STRING) {
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) throw malformed(where, 'invalid UTF-8');
    return s;
  }
  return b.toString('latin1');
}

export function readTime(t: Tlv, where: string): Date {
  const s = content(t).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw malformed(where, `bad UTCTime "${s}"`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(s);
    if (!m) throw malformed(where, `bad GeneralizedTime "${s}"`);
    year = Number(m[1]);
  } else {
    throw malformed(where, 'expected a time');
  }
  const d = new Date(Date.UTC(2000, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  d.setUTCFullYear(year); // Date.UTC maps years 0..99 to 1900..1999
  if (Number.isNaN(d.getTime())) throw malformed(where, `bad time "${s}"`);
  return d;
}
