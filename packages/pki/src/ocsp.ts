/**
 * OCSP (RFC 6960): request parsing (POST body and GET path), a delegated
 * responder that signs good / revoked / unknown answers and echoes the nonce
 * (RFC 8954), error responses, and a response reader for clients and tests.
 */
import { createHash } from 'node:crypto';
import {
  TAG,
  bitString,
  children,
  content,
  enumerated,
  explicit,
  expectTag,
  generalizedTime,
  octets,
  oid,
  parseOne,
  raw,
  readBitString,
  readOid,
  readSmallInt,
  readTime,
  seq,
  seqOf,
  tlv,
  type Tlv,
} from './der.js';
import { type Certificate, extKeyUsage, isIssuedBy, parseCertificate } from './certificate.js';
import { CRL_REASON_CODES, CRL_REASON_NAMES, type CrlReason } from './crl.js';
import { PkiError, wrapParse } from './errors.js';
import { decodeExtensions, encodeExtension } from './extensions.js';
import { type Signer, readSignatureAlgorithm, signatureAlgorithmDer, spkiKeyBits, verifySignature } from './keys.js';
import { OID } from './oids.js';

/** Largest OCSP request accepted (one with 32 CertIDs and a nonce is ~3 KB). */
export const MAX_OCSP_REQUEST_BYTES = 64 * 1024;
/** Most CertIDs answered in one request. */
export const MAX_OCSP_REQUESTS = 32;
/**
 * Largest nonce extnValue echoed: RFC 8954 §2.1 allows 1..32 octets of nonce,
 * wrapped in an OCTET STRING (2 bytes). Longer nonces are refused as
 * malformedRequest rather than silently dropped, so a client is never misled.
 */
export const MAX_OCSP_NONCE_BYTES = 34;

export interface OcspCertId {
  hashAlgorithmOid: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serial: Buffer;
  serialHex: string;
  /** The CertID exactly as received, echoed in the response. */
  der: Buffer;
}

export interface OcspRequest {
  requests: OcspCertId[];
  /** extnValue of id-pkix-ocsp-nonce, as received. */
  nonce: Buffer | undefined;
  signed: boolean;
}

const HASHES: Record<string, 'sha1' | 'sha256' | 'sha384' | 'sha512'> = {
  [OID.sha1]: 'sha1',
  [OID.sha256]: 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

const bad = (message: string): PkiError => new PkiError('OCSP_MALFORMED', message);

function readCertId(t: Tlv, where: string): OcspCertId {
  const [alg, nameHash, keyHash, serialT] = seqOf(t, where, 4, 4) as [Tlv, Tlv, Tlv, Tlv];
  const algParts = seqOf(alg, `${where}.hashAlgorithm`, 1, 2);
  const hashAlgorithmOid = readOid(algParts[0]!, `${where}.hashAlgorithm`);
  const issuerNameHash = content(expectTag(nameHash, TAG.OCTET_STRING, `${where}.issuerNameHash`));
  const issuerKeyHash = content(expectTag(keyHash, TAG.OCTET_STRING, `${where}.issuerKeyHash`));
  const s = content(expectTag(serialT, TAG.INTEGER, `${where}.serialNumber`));
  if (s.length === 0 || s.length > 21) throw bad(`${where}: serial number of ${s.length} bytes`);
  let serial = s;
  while (serial.length > 1 && serial[0] === 0) serial = serial.subarray(1);
  return { hashAlgorithmOid, issuerNameHash, issuerKeyHash, serial, serialHex: serial.toString('hex'), der: raw(t) };
}

/** Parses a DER OCSPRequest (the POST body, or the decoded GET path). */
export function parseOcspRequest(input: Uint8Array): OcspRequest {
  if (input.byteLength > MAX_OCSP_REQUEST_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `OCSP request is ${input.byteLength} bytes; the limit is ${MAX_OCSP_REQUEST_BYTES}`);
  }
  if (input.byteLength === 0) throw bad('OCSP request is empty');
  return wrapParse('OCSP_MALFORMED', 'OCSP request', () => {
    try {
      const top = seqOf(parseOne(input, 'OCSPRequest'), 'OCSPRequest', 1, 2);
      if (top[1] && top[1].tag !== 0xa0) throw bad('OCSPRequest: unexpected element after tbsRequest');
      const parts = seqOf(top[0]!, 'TBSRequest', 1, 4);
      let i = 0;
      if (parts[i]?.tag === 0xa0) {
        const v = children(parts[i++]!, 'version');
        if (v.length !== 1 || readSmallInt(v[0]!, 'version') !== 0) throw bad('OCSP request version must be v1');
      }
      if (parts[i]?.tag === 0xa1) i++; // requestorName: informational only
      const listT = parts[i++];
      if (!listT) throw bad('OCSP request has no requestList');
      const list = seqOf(listT, 'requestList');
      if (list.length === 0) throw bad('OCSP request asks about no certificate');
      if (list.length > MAX_OCSP_REQUESTS) throw bad(`OCSP request asks about ${list.length} certificates; the limit is ${MAX_OCSP_REQUESTS}`);
      const requests = list.map((r, n) => {
        const rp = seqOf(r, `requestList[${n}]`, 1, 2);
        if (rp[1] && rp[1].tag !== 0xa0) throw bad(`requestList[${n}]: unexpected element`);
        return readCertId(rp[0]!, `requestList[${n}].reqCert`);
      });
      let nonce: Buffer | undefined;
      if (parts[i]?.tag === 0xa2) {
        const e = children(parts[i++]!, 'requestExtensions');
        if (e.length !== 1) throw bad('requestExtensions: expected one SEQUENCE');
        const exts = decodeExtensions(e[0]!, 'requestExtensions');
        const n = exts.get(OID.ocspNonce);
        if (n) {
          if (n.value.length === 0 || n.value.length > MAX_OCSP_NONCE_BYTES) {
            throw bad(`OCSP nonce is ${n.value.length} bytes; RFC 8954 allows 1 to 32 octets`);
          }
          nonce = n.value;
        }
      }
      if (i !== parts.length) throw bad('TBSRequest: unexpected trailing element');
      return { requests, nonce, signed: top.length === 2 };
    } catch (e) {
      if (e instanceof PkiError && e.code === 'DER_MALFORMED') throw bad(`OCSP request is not valid DER: ${e.message}`);
      throw e;
    }
  });
}

/**
 * RFC 6960 Appendix A.1: GET {url}/{url-encoded base64 of the DER request}.
 * `path` is what follows the responder's base path (leading '/' allowed).
 */
export function parseOcspGetPath(path: string): Buffer {
  let s = path.replace(/^\/+/, '');
  if (s.length === 0) throw bad('OCSP GET request has no request in its path');
  if (s.length > MAX_OCSP_REQUEST_BYTES * 2) throw new PkiError('INPUT_TOO_LARGE', 'OCSP GET path is too long');
  try {
    s = decodeURIComponent(s);
  } catch {
    throw bad('OCSP GET path is not valid URL encoding');
  }
  // Some clients send base64url or drop padding.
  s = s.replace(/-/g, '+').replace(/_/g, '/').replace(/\s/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw bad('OCSP GET path is not base64');
  }
  return Buffer.from(s, 'base64');
}

// ---------------------------------------------------------------- responder

export type CertStatus =
  | { status: 'good' }
  | { status: 'revoked'; revokedAt: Date; reason?: CrlReason }
  | { status: 'unknown' };

export type OcspErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'sigRequired' | 'unauthorized';

const RESPONSE_STATUS = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;
export type OcspResponseStatus = keyof typeof RESPONSE_STATUS;
const STATUS_NAMES: ReadonlyMap<number, OcspResponseStatus> = new Map(
  Object.entries(RESPONSE_STATUS).map(([k, v]) => [v as number, k as OcspResponseStatus]),
);

/** An OCSPResponse without responseBytes (RFC 6960 §4.2.1). */
export function ocspErrorResponse(status: OcspErrorStatus): Buffer {
  return seq(enumerated(RESPONSE_STATUS[status]));
}

export interface OcspResponderOptions {
  /** The CA whose certificates this responder answers for. */
  issuer: Certificate;
  /** Delegated responder certificate, issued by `issuer` (RFC 6960 §4.2.2.2). */
  responderCert: Certificate;
  signer: Signer;
}

export interface OcspRespondInput {
  request: OcspRequest;
  now: Date;
  nextUpdate: Date;
  lookup: (serialHex: string) => CertStatus | Promise<CertStatus>;
}

export interface OcspResponder {
  /** True if this CertID names our issuer (by name and key hash). */
  matches(id: OcspCertId): boolean;
  /** A signed response; `unauthorized` if no CertID names our issuer. */
  respond(input: OcspRespondInput): Promise<Buffer>;
}

export function createOcspResponder(o: OcspResponderOptions): OcspResponder {
  if (!o.responderCert.spki.equals(o.signer.spki)) {
    throw new PkiError('KEY_MISMATCH', 'the OCSP signer key does not belong to the responder certificate');
  }
  if (!(extKeyUsage(o.responderCert) ?? []).includes(OID.kpOcspSigning)) {
    throw new PkiError('ARGUMENT_INVALID', 'the responder certificate lacks id-kp-OCSPSigning');
  }
  if (!o.responderCert.issuerDer.equals(o.issuer.subjectDer)) {
    throw new PkiError('ARGUMENT_INVALID', 'the responder certificate must be issued by the CA it answers for');
  }
  const keyBits = spkiKeyBits(o.issuer.spki);
  const hashes = new Map<string, { name: Buffer; key: Buffer }>();
  for (const [algOid, h] of Object.entries(HASHES)) {
    hashes.set(algOid, {
      name: createHash(h).update(o.issuer.subjectDer).digest(),
      key: createHash(h).update(keyBits).digest(),
    });
  }
  const responderId = explicit(2, octets(createHash('sha1').update(spkiKeyBits(o.responderCert.spki)).digest()));
  const alg = signatureAlgorithmDer(o.signer.algorithm);
  const certs = explicit(0, seq(o.responderCert.der));
  const good = Buffer.from([0x80, 0x00]);
  const unknown = Buffer.from([0x82, 0x00]);

  const matches = (id: OcspCertId): boolean => {
    const h = hashes.get(id.hashAlgorithmOid);
    return !!h && h.name.equals(id.issuerNameHash) && h.key.equals(id.issuerKeyHash);
  };

  return {
    matches,
    async respond({ request, now, nextUpdate, lookup }) {
      const ours = request.requests.map(matches);
      if (!ours.some(Boolean)) return ocspErrorResponse('unauthorized');
      const thisUpd = generalizedTime(now);
      const nextUpd = explicit(0, generalizedTime(nextUpdate));
      const singles: Buffer[] = [];
      for (const [i, id] of request.requests.entries()) {
        const st: CertStatus = ours[i] ? await lookup(id.serialHex) : { status: 'unknown' };
        let status: Buffer;
        if (st.status === 'good') status = good;
        else if (st.status === 'unknown') status = unknown;
        else {
          const reason = st.reason && st.reason !== 'unspecified' ? [explicit(0, enumerated(CRL_REASON_CODES[st.reason]))] : [];
          status = tlv(0xa1, generalizedTime(st.revokedAt), ...reason);
        }
        singles.push(seq(id.der, status, thisUpd, nextUpd));
      }
      const exts = request.nonce ? [explicit(1, seq(encodeExtension(OID.ocspNonce, false, request.nonce)))] : [];
      const tbs = seq(responderId, generalizedTime(now), seq(...singles), ...exts);
      const sig = await o.signer.sign(tbs);
      const basic = seq(tbs, alg, bitString(sig), certs);
      return seq(enumerated(0), explicit(0, seq(oid(OID.ocspBasic), octets(basic))));
    },
  };
}

// ---------------------------------------------------------------- reader

export interface OcspSingleResponse {
  serialHex: string;
  certIdDer: Buffer;
  status: CertStatus['status'];
  revokedAt: Date | undefined;
  reason: CrlReason | undefined;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
}

export interface OcspResponse {
  status: OcspResponseStatus;
  /** Present when status is 'successful'. */
  basic?: {
    tbs: Buffer;
    producedAt: Date;
    responderKeyHash: Buffer | undefined;
    responses: OcspSingleResponse[];
    nonce: Buffer | undefined;
    signatureAlgorithmOid: string;
    signature: Buffer;
    certs: Buffer[];
  };
}

/** Reads an OCSPResponse (for clients and tests). */
export function parseOcspResponse(input: Uint8Array): OcspResponse {
  return wrapParse('DER_MALFORMED', 'OCSP response', () => {
    const top = seqOf(parseOne(input, 'OCSPResponse'), 'OCSPResponse', 1, 2);
    const st = content(expectTag(top[0]!, TAG.ENUMERATED, 'responseStatus'));
    const status = STATUS_NAMES.get(st.length === 1 ? st[0]! : -1);
    if (!status) throw new PkiError('DER_MALFORMED', 'OCSP response has an unknown status');
    if (status !== 'successful') return { status };
    if (!top[1] || top[1].tag !== 0xa0) throw new PkiError('DER_MALFORMED', 'successful OCSP response without responseBytes');
    const [rb] = children(top[1], 'responseBytes');
    const [typeT, respT] = seqOf(rb!, 'ResponseBytes', 2, 2) as [Tlv, Tlv];
    if (readOid(typeT, 'responseType') !== OID.ocspBasic) throw new PkiError('DER_MALFORMED', 'OCSP response is not id-pkix-ocsp-basic');
    const basicParts = seqOf(parseOne(content(expectTag(respT, TAG.OCTET_STRING, 'response')), 'BasicOCSPResponse'), 'BasicOCSPResponse', 3, 4);
    const [tbsT, algT, sigT, certsT] = basicParts as [Tlv, Tlv, Tlv, Tlv | undefined];
    const tp = seqOf(tbsT, 'ResponseData', 3, 5);
    let i = 0;
    if (tp[i]?.tag === 0xa0) i++;
    const rid = tp[i++]!;
    let responderKeyHash: Buffer | undefined;
    if (rid.tag === 0xa2) responderKeyHash = content(expectTag(children(rid, 'responderID')[0]!, TAG.OCTET_STRING, 'KeyHash'));
    const producedAt = readTime(tp[i++]!, 'producedAt');
    const responses = seqOf(tp[i++]!, 'responses').map((r, n): OcspSingleResponse => {
      const sp = seqOf(r, `responses[${n}]`, 3, 5);
      const id = readCertId(sp[0]!, `responses[${n}].certID`);
      const cs = sp[1]!;
      let status: CertStatus['status'];
      let revokedAt: Date | undefined;
      let reason: CrlReason | undefined;
      if (cs.tag === 0x80) status = 'good';
      else if (cs.tag === 0x82) status = 'unknown';
      else if (cs.tag === 0xa1) {
        status = 'revoked';
        const ri = children(cs, 'RevokedInfo');
        revokedAt = readTime(ri[0]!, 'revocationTime');
        if (ri[1]) {
          const e = content(expectTag(children(ri[1], 'revocationReason')[0]!, TAG.ENUMERATED, 'CRLReason'));
          reason = CRL_REASON_NAMES.get(e[0] ?? -1);
        }
      } else throw new PkiError('DER_MALFORMED', `responses[${n}]: bad certStatus`);
      const thisUpdate = readTime(sp[2]!, 'thisUpdate');
      const nu = sp[3]?.tag === 0xa0 ? readTime(children(sp[3], 'nextUpdate')[0]!, 'nextUpdate') : undefined;
      return { serialHex: id.serialHex, certIdDer: id.der, status, revokedAt, reason, thisUpdate, nextUpdate: nu };
    });
    let nonce: Buffer | undefined;
    if (tp[i]?.tag === 0xa1) {
      const exts = decodeExtensions(children(tp[i]!, 'responseExtensions')[0]!, 'responseExtensions');
      nonce = exts.get(OID.ocspNonce)?.value;
    }
    const certs = certsT ? seqOf(children(certsT, 'certs')[0]!, 'certs').map((c) => Buffer.from(raw(c))) : [];
    return {
      status,
      basic: {
        tbs: raw(tbsT),
        producedAt,
        responderKeyHash,
        responses,
        nonce,
        signatureAlgorithmOid: readSignatureAlgorithm(raw(algT), 'signatureAlgorithm').oid,
        signature: readBitString(sigT, 'signature').bytes,
        certs,
      },
    };
  });
}

/**
 * RFC 6960 §4.2.2.2: the response is signed by a responder certificate that
 * `issuer` signed and that carries id-kp-OCSPSigning (or by the issuer itself).
 */
export function verifyOcspResponse(resp: OcspResponse, issuer: Certificate): boolean {
  const b = resp.basic;
  if (!b) return false;
  for (const candidate of [issuer, ...b.certs.map((c) => parseCertificate(c))]) {
    const delegated = candidate !== issuer;
    if (delegated && !(isIssuedBy(candidate, issuer) && (extKeyUsage(candidate) ?? []).includes(OID.kpOcspSigning))) continue;
    if (verifySignature(candidate.spki, b.signatureAlgorithmOid, b.tbs, b.signature)) return true;
  }
  return false;
}

