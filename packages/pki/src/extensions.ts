/**
 * X.509 v3 extensions (RFC 5280 §4.2): DER builders for the profiles we
 * issue, and decoders for the ones we check on input.
 */
import { isIP } from 'node:net';
import {
  TAG,
  bitString,
  bool,
  content,
  explicit,
  expectTag,
  implicitPrimitive,
  int,
  nul,
  octets,
  oid,
  parseOne,
  readBitString,
  readBool,
  readOid,
  readSmallInt,
  seq,
  seqOf,
  tlv,
  type Tlv,
} from './der.js';
import { PkiError, wrapParse } from './errors.js';
import { OID } from './oids.js';

export interface Extension {
  oid: string;
  critical: boolean;
  /** DER of the extension value (the content of extnValue). */
  value: Buffer;
}

export function encodeExtension(o: string, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(oid(o), bool(true), octets(value)) : seq(oid(o), octets(value));
}

// ------------------------------------------------------------- builders

export const KEY_USAGE_BITS = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;
export type KeyUsageName = keyof typeof KEY_USAGE_BITS;

/** KeyUsage as a DER named BIT STRING: trailing zero bits removed (X.690 §11.2.2). */
export function keyUsageValue(usages: readonly KeyUsageName[]): Buffer {
  let mask = 0;
  for (const u of usages) mask |= 1 << KEY_USAGE_BITS[u];
  if (mask === 0) throw new PkiError('ARGUMENT_INVALID', 'KeyUsage needs at least one usage');
  let highest = 0;
  for (let b = 0; b < 9; b++) if (mask & (1 << b)) highest = b;
  const nBytes = highest < 8 ? 1 : 2;
  const bytes = Buffer.alloc(nBytes);
  for (let b = 0; b <= highest; b++) if (mask & (1 << b)) bytes[b >> 3]! |= 0x80 >> (b & 7);
  const unused = nBytes * 8 - 1 - highest;
  return bitString(bytes, unused);
}

export function basicConstraintsValue(ca: boolean, pathLen?: number): Buffer {
  if (!ca) return seq();
  return pathLen === undefined ? seq(bool(true)) : seq(bool(true), int(pathLen));
}

export const extKeyUsageValue = (purposes: readonly string[]): Buffer => seq(...purposes.map((p) => oid(p)));

export type GeneralName = { uri: string } | { email: string } | { dns: string } | { ip: string };

function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v !== 6) throw new PkiError('ARGUMENT_INVALID', `not an IP address: "${ip}"`);
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (v4) out.set(tail, 12);
  return out;
}

function ascii(kind: string, s: string): Buffer {
  if (!/^[\x21-\x7e]+$/.test(s)) throw new PkiError('ARGUMENT_INVALID', `${kind} must be printable ASCII without spaces: "${s}"`);
  return Buffer.from(s, 'ascii');
}

export function generalName(n: GeneralName): Buffer {
  if ('uri' in n) return implicitPrimitive(6, ascii('URI', n.uri));
  if ('email' in n) return implicitPrimitive(1, ascii('email', n.email));
  if ('dns' in n) return implicitPrimitive(2, ascii('DNS name', n.dns));
  return implicitPrimitive(7, ipBytes(n.ip));
}

export const subjectAltNameValue = (names: readonly GeneralName[]): Buffer => seq(...names.map(generalName));

export function crlDistributionPointsValue(urls: readonly string[]): Buffer {
  // DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } }
  return seq(...urls.map((u) => seq(explicit(0, tlv(0xa0, generalName({ uri: u }))))));
}

/** RFC 5280 §4.2.1.4 certificatePolicies: one PolicyInformation per OID, without qualifiers. */
export const certificatePoliciesValue = (policyOids: readonly string[]): Buffer => seq(...policyOids.map((p) => seq(oid(p))));

/** The policy OIDs of a certificatePolicies value (qualifiers ignored). */
export function decodeCertificatePolicies(value: Uint8Array): string[] {
  return wrapParse('DER_MALFORMED', 'certificatePolicies', () =>
    seqOf(parseOne(value, 'certificatePolicies'), 'certificatePolicies', 1).map((info, i) => readOid(seqOf(info, `PolicyInformation[${i}]`, 1, 2)[0]!, `PolicyInformation[${i}]`)),
  );
}

export function authorityInfoAccessValue(a: { ocsp?: readonly string[]; caIssuers?: readonly string[] }): Buffer {
  const ads = [
    ...(a.ocsp ?? []).map((u) => seq(oid(OID.ocspAccess), generalName({ uri: u }))),
    ...(a.caIssuers ?? []).map((u) => seq(oid(OID.caIssuersAccess), generalName({ uri: u }))),
  ];
  return seq(...ads);
}

export const subjectKeyIdentifierValue = (id: Uint8Array): Buffer => octets(id);
/** AuthorityKeyIdentifier with keyIdentifier [0] only (RFC 5280 §4.2.1.1). */
export const authorityKeyIdentifierValue = (id: Uint8Array): Buffer => seq(implicitPrimitive(0, id));
export const ocspNoCheckValue = (): Buffer => nul();

// ------------------------------------------------------------- decoders

/** Parses the [3] extensions of a TBSCertificate or an extensionRequest's Extensions. */
export function decodeExtensions(seqTlv: Tlv, where: string): Map<string, Extension> {
  const out = new Map<string, Extension>();
  for (const [i, e] of seqOf(seqTlv, where).entries()) {
    const parts = seqOf(e, `${where}[${i}]`, 2, 3);
    const o = readOid(parts[0]!, `${where}[${i}].extnID`);
    let critical = false;
    let valueTlv = parts[1]!;
    if (parts.length === 3) {
      critical = readBool(parts[1]!, `${where}[${i}].critical`);
      if (!critical) throw new PkiError('DER_MALFORMED', `${where}[${i}]: DEFAULT FALSE must be omitted in DER`);
      valueTlv = parts[2]!;
    }
    expectTag(valueTlv, TAG.OCTET_STRING, `${where}[${i}].extnValue`);
    if (out.has(o)) throw new PkiError('DER_MALFORMED', `${where}: extension ${o} appears twice`);
    out.set(o, { oid: o, critical, value: content(valueTlv) });
  }
  return out;
}

export function decodeBasicConstraints(value: Uint8Array): { ca: boolean; pathLen: number | undefined } {
  return wrapParse('DER_MALFORMED', 'BasicConstraints', () => {
    const parts = seqOf(parseOne(value, 'BasicConstraints'), 'BasicConstraints', 0, 2);
    let ca = false;
    let pathLen: number | undefined;
    for (const p of parts) {
      if (p.tag === TAG.BOOLEAN) ca = readBool(p, 'BasicConstraints.cA');
      else pathLen = readSmallInt(p, 'BasicConstraints.pathLenConstraint');
    }
    return { ca, pathLen };
  });
}

export function decodeKeyUsage(value: Uint8Array): Set<KeyUsageName> {
  return wrapParse('DER_MALFORMED', 'KeyUsage', () => {
    const { bytes } = readBitString(parseOne(value, 'KeyUsage'), 'KeyUsage');
    const out = new Set<KeyUsageName>();
    for (const [name, bit] of Object.entries(KEY_USAGE_BITS) as [KeyUsageName, number][]) {
      const byte = bytes[bit >> 3];
      if (byte !== undefined && byte & (0x80 >> (bit & 7))) out.add(name);
    }
    return out;
  });
}

export function decodeExtKeyUsage(value: Uint8Array): string[] {
  return wrapParse('DER_MALFORMED', 'ExtKeyUsage', () =>
    seqOf(parseOne(value, 'ExtKeyUsage'), 'ExtKeyUsage', 1).map((t, i) => readOid(t, `ExtKeyUsage[${i}]`)),
  );
}

/** SubjectAltName entries; kinds we do not model are reported as { other: tag }. */
export function decodeSubjectAltName(value: Uint8Array): Array<GeneralName | { other: number }> {
  return wrapParse('DER_MALFORMED', 'SubjectAltName', () =>
    seqOf(parseOne(value, 'SubjectAltName'), 'SubjectAltName').map((t) => {
      const c = content(t);
      switch (t.tag) {
        case 0x81:
          return { email: c.toString('latin1') };
        case 0x82:
          return { dns: c.toString('latin1') };
        case 0x86:
          return { uri: c.toString('latin1') };
        case 0x87:
          if (c.length === 4) return { ip: [...c].join('.') };
          if (c.length === 16) return { ip: (c.toString('hex').match(/.{4}/g) ?? []).join(':') };
          throw new PkiError('DER_MALFORMED', 'SubjectAltName: IP address of bad length');
        default:
          return { other: t.tag };
      }
    }),
  );
}

export function decodeSubjectKeyIdentifier(value: Uint8Array): Buffer {
  return wrapParse('DER_MALFORMED', 'SubjectKeyIdentifier', () =>
    content(expectTag(parseOne(value, 'SubjectKeyIdentifier'), TAG.OCTET_STRING, 'SubjectKeyIdentifier')),
  );
}

export function decodeAuthorityKeyIdentifier(value: Uint8Array): Buffer | undefined {
  return wrapParse('DER_MALFORMED', 'AuthorityKeyIdentifier', () => {
    const parts = seqOf(parseOne(value, 'AuthorityKeyIdentifier'), 'AuthorityKeyIdentifier', 0, 3);
    const kid = parts.find((p) => p.tag === 0x80);
    return kid ? content(kid) : undefined;
  });
}
