/**
 * Device-certificate authentication, the one check behind every device-mTLS
 * way in (EST simplereenroll, the `/v1/agent` upgrade): the presented
 * certificate was issued by our CA, is on record, is its device's current
 * one (or still within a superseded certificate's overlap), is not revoked,
 * belongs to an active device and is within its validity — past notAfter
 * only within the caller's recovery window. The decision is pure
 * (`judgeDeviceCertificate`); `createDeviceCertAuth` parses and looks up.
 * Callers map a refusal to their own error codes.
 */
import { type Certificate, isIssuedBy, parseCertificate } from '@latchkey/pki';
import type { CertificatesRepo } from '../certificates/certificates-repo.js';
import type { DevicesTable } from '../storage/schema.js';

/** What the server knows of a presented certificate and its device. */
export interface DeviceCertRecord {
  serial: string;
  device_id: string;
  spki_hash: string;
  revoked_at: string | null;
  revocation_reason: string | null;
  device_name: string;
  device_status: DevicesTable['status'];
  group_name: string;
  /** The device's bound person, kept on every renewal. */
  user_email?: string | null;
}

export type DeviceCertRefusal =
  /** No client certificate was presented. */
  | 'missing'
  /** Not a certificate we can read. */
  | 'unparsable'
  /** Not signed by our issuing CA. */
  | 'foreign-ca'
  /** Signed by our CA but not in our records. */
  | 'unknown'
  /** Replaced by a later certificate of an active device, and its overlap has ended. */
  | 'superseded'
  /** The device, or this certificate, is revoked. */
  | 'revoked'
  /** The device is pending approval or was denied. */
  | 'not-active'
  | 'not-yet-valid'
  /** Expired longer ago than the caller's recovery window. */
  | 'expired';

export type DeviceCertVerdict =
  | { ok: true; cert: Certificate; record: DeviceCertRecord; /** Past notAfter, within the recovery window. */ expired: boolean }
  | { ok: false; reason: DeviceCertRefusal; /** Set once the record is known (per-device rate limits). */ record?: DeviceCertRecord; cert?: Certificate; /** For 'expired'. */ expiredForSeconds?: number };

export interface DeviceCertPolicy {
  /** How long past notAfter a certificate still authenticates (EST recovery); 0: not at all. */
  recoveryGraceSeconds: number;
}

/** The decision, once the certificate is read and its record looked up. Order matters: it decides which refusal a client sees. */
export function judgeDeviceCertificate(cert: Certificate, record: DeviceCertRecord | undefined, now: Date, policy: DeviceCertPolicy): DeviceCertVerdict {
  if (!record) return { ok: false, reason: 'unknown', cert };
  const refuse = (reason: DeviceCertRefusal, extra: { expiredForSeconds?: number } = {}): DeviceCertVerdict => ({ ok: false, reason, record, cert, ...extra });
  // A certificate superseded by a renewal stays usable until its overlap ends (revoked_at ahead).
  const revokedNow = record.revoked_at !== null && record.revoked_at <= now.toISOString();
  if (record.device_status === 'active' && revokedNow && record.revocation_reason === 'superseded') return refuse('superseded');
  if (record.device_status === 'revoked' || revokedNow) return refuse('revoked');
  if (record.device_status !== 'active') return refuse('not-active');
  if (now < cert.notBefore) return refuse('not-yet-valid');
  if (now > cert.notAfter) {
    const expiredForSeconds = (now.getTime() - cert.notAfter.getTime()) / 1000;
    if (expiredForSeconds > policy.recoveryGraceSeconds) return refuse('expired', { expiredForSeconds });
    return { ok: true, cert, record, expired: true };
  }
  return { ok: true, cert, record, expired: false };
}

export type DeviceCertAuth = (der: Buffer | undefined, policy: DeviceCertPolicy) => Promise<DeviceCertVerdict>;

export function createDeviceCertAuth(deps: { certificates: Pick<CertificatesRepo, 'findWithDevice'>; issuingCa: Certificate; clock: () => Date }): DeviceCertAuth {
  return async (der, policy) => {
    if (!der || der.length === 0) return { ok: false, reason: 'missing' };
    let cert: Certificate;
    try {
      cert = parseCertificate(der);
    } catch {
      return { ok: false, reason: 'unparsable' };
    }
    if (!isIssuedBy(cert, deps.issuingCa)) return { ok: false, reason: 'foreign-ca', cert };
    const record = await deps.certificates.findWithDevice(cert.serialHex);
    return judgeDeviceCertificate(cert, record, deps.clock(), policy);
  };
}
