/**
 * X.501 distinguished names, built from structured attributes (never by
 * string interpolation) and read back for display and policy checks.
 */
import { TAG, children, oid, parseOne, printable, readOid, readString, seq, seqOf, setOf, tlv, utf8 } from './der.js';
import { PkiError, wrapParse } from './errors.js';
import { OID } from './oids.js';

export type NameAttributeType = 'CN' | 'O' | 'OU' | 'C' | 'L' | 'ST' | 'serialNumber' | 'emailAddress' | 'UID';

export interface NameAttribute {
  type: NameAttributeType | string;
  value: string;
}

const SHORT_TO_OID: Record<NameAttributeType, string> = {
  CN: OID.commonName,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
  C: OID.countryName,
  L: OID.localityName,
  ST: OID.stateOrProvinceName,
  serialNumber: OID.serialNumber,
  emailAddress: OID.emailAddress,
  UID: OID.userId,
};
const OID_TO_SHORT = new Map(Object.entries(SHORT_TO_OID).map(([k, v]) => [v, k]));

/** RFC 5280 Appendix A upper bounds. */
const UPPER_BOUND: Record<string, number> = {
  [OID.commonName]: 64,
  [OID.organizationName]: 64,
  [OID.organizationalUnitName]: 64,
  [OID.localityName]: 128,
  [OID.stateOrProvinceName]: 128,
  [OID.serialNumber]: 64,
  [OID.emailAddress]: 255,
  // RFC 4519 gives uid no bound; RFC 1274 had 256.
  [OID.userId]: 256,
};

function attributeValue(typeOid: string, value: string): Buffer {
  if (typeOid === OID.countryName) {
    if (!/^[A-Z]{2}$/.test(value)) throw new PkiError('ARGUMENT_INVALID', `country must be two capital letters, got "${value}"`);
    return printable(value);
  }
  if (typeOid === OID.serialNumber) {
    if (!/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(value)) throw new PkiError('ARGUMENT_INVALID', 'serialNumber must be a PrintableString');
    return printable(value);
  }
  if (typeOid === OID.emailAddress) return tlv(TAG.IA5_STRING, Buffer.from(value, 'ascii'));
  return utf8(value);
}

/** DER Name: one attribute per RDN, in the order given (most significant first). */
export function encodeName(attrs: readonly NameAttribute[]): Buffer {
  const rdns = attrs.map((a) => {
    const typeOid = (SHORT_TO_OID as Record<string, string>)[a.type] ?? a.type;
    if (!/^\d+(\.\d+)+$/.test(typeOid)) throw new PkiError('ARGUMENT_INVALID', `unknown name attribute type "${a.type}"`);
    if (a.value.length === 0) throw new PkiError('ARGUMENT_INVALID', `name attribute ${a.type} is empty`);
    const max = UPPER_BOUND[typeOid];
    if (max !== undefined && a.value.length > max) {
      throw new PkiError('ARGUMENT_INVALID', `name attribute ${a.type} is ${a.value.length} characters; the limit is ${max}`);
    }
    return setOf(seq(oid(typeOid), attributeValue(typeOid, a.value)));
  });
  return seq(...rdns);
}

/** Reads a DER Name into its attributes (multi-valued RDNs flattened, in order). */
export function decodeName(der: Uint8Array): NameAttribute[] {
  return wrapParse('DER_MALFORMED', 'Name', () => {
    const out: NameAttribute[] = [];
    for (const [i, rdn] of seqOf(parseOne(der, 'Name'), 'Name').entries()) {
      if (rdn.tag !== TAG.SET) throw new PkiError('DER_MALFORMED', `Name[${i}]: expected a SET`);
      const avas = children(rdn, `Name[${i}]`);
      if (avas.length === 0) throw new PkiError('DER_MALFORMED', `Name[${i}]: empty RDN`);
      for (const ava of avas) {
        const [t, v] = seqOf(ava, `Name[${i}].attribute`, 2, 2) as [typeof ava, typeof ava];
        const typeOid = readOid(t, `Name[${i}].type`);
        out.push({ type: OID_TO_SHORT.get(typeOid) ?? typeOid, value: readString(v, `Name[${i}].value`) });
      }
    }
    return out;
  });
}

const escape4514 = (v: string): string =>
  v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');

/** Human-readable form, most significant first: "CN=laptop-7, O=Example". */
export function nameToString(attrs: readonly NameAttribute[]): string {
  return attrs.map((a) => `${a.type}=${escape4514(a.value)}`).join(', ');
}

export function firstValue(attrs: readonly NameAttribute[], type: NameAttributeType): string | undefined {
  return attrs.find((a) => a.type === type)?.value;
}
