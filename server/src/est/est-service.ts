/**
 * EST front-ends (RFC 7030): bootstrap enrollment with an enrollment token
 * (simpleenroll), renewal and recovery with the device's certificate
 * (simplereenroll). Each decides who the device is from the server's records,
 * then hands off to the issuing pipeline.
 */
import { randomUUID } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import {
  type Certificate,
  type Csr,
  checkCsrPolicy,
  csrStringAttribute,
  firstValue,
  isIssuedBy,
  parseCertificate,
  pemDecode,
  readVerifiedCsr,
  type PkiError,
} from '@latchkey/pki';
import { DeviceFacts, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON } from '@latchkey/protocol';
import { hashSecret } from '../auth/secret-hash.js';
import type { CaContext } from '../ca/ca-context.js';
import { auditRepo } from '../audit/audit-repo.js';
import type { ServerConfig } from '../config/config-schema.js';
import { certificatesRepo } from '../certificates/certificates-repo.js';
import { devicesRepo } from '../devices/devices-repo.js';
import { LatchkeyError, fromCsrError } from '../errors.js';
import type { Transaction } from 'kysely';
import { compromisedKeysRepo } from '../devices/compromised-keys-repo.js';
import { type IssuanceService, type Issued, keyCompromised, spkiHash } from '../issuance/issuance-service.js';
import type { Db } from '../storage/db.js';
import type { Database } from '../storage/schema.js';
import { groupsRepo } from '../groups/groups-repo.js';
import { tokensRepo } from '../tokens/tokens-repo.js';
import type { KeyedMutex } from '../util/keyed-mutex.js';
import type { RateLimiter } from '../rate-limit.js';


/** Device names go into a certificate CN: keep them short and plain. */
export function sanitizeDeviceName(s: string | undefined): string {
  const clean = (s ?? '').normalize('NFKC').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 64);
  return clean || 'device';
}

function readCsr(body: Buffer): Csr {
  try {
    const csr = readVerifiedCsr(body);
    checkCsrPolicy(csr);
    return csr;
  } catch (e) {
    throw fromCsrError(e);
  }
}

function readFacts(csr: Csr): DeviceFacts | null {
  let json: string | undefined;
  try {
    json = csrStringAttribute(csr, FACTS_ATTRIBUTE_OID, MAX_FACTS_JSON);
  } catch (e) {
    throw new LatchkeyError('BAD_REQUEST', `device facts in the CSR are invalid: ${(e as PkiError).message}`);
  }
  if (json === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new LatchkeyError('BAD_REQUEST', 'device facts in the CSR are not valid JSON');
  }
  const err = Value.Errors(DeviceFacts, v).First();
  if (err) throw new LatchkeyError('BAD_REQUEST', `device facts in the CSR are invalid: ${err.path || '/'} ${err.message}`);
  return v as DeviceFacts;
}

/** Kept for init.ts (owned by another change) until its import moves to auth/secret-hash.ts. */
export { hashSecret } from '../auth/secret-hash.js';

export interface EnrollResult {
  status: 'issued' | 'pending';
  issued?: Issued;
  deviceId: string;
  retryAfterSeconds?: number;
}

export interface EstService {
  simpleEnroll(input: { body: Buffer; token: string | undefined; remote: string }): Promise<EnrollResult>;
  simpleReenroll(input: { body: Buffer; clientCertDer: Buffer | undefined; remote: string }): Promise<Issued & { deviceId: string; kind: 'renew' | 'recover' }>;
}

export function createEstService(deps: { db: Db; ca: CaContext; config: ServerConfig; issuance: IssuanceService; clock: () => Date; commitLocks: KeyedMutex; reenrollLimiter: RateLimiter }): EstService {
  const { db, config } = deps;

  async function authenticate(clientCertDer: Buffer | undefined) {
    if (!clientCertDer || clientCertDer.length === 0) {
      throw new LatchkeyError('CLIENT_CERT_REQUIRED', 'present the device certificate as the TLS client certificate (curl --cert/--key)');
    }
    let cert: Certificate;
    try {
      cert = parseCertificate(clientCertDer);
    } catch {
      throw new LatchkeyError('CLIENT_CERT_UNKNOWN', 'the client certificate cannot be parsed');
    }
    if (!isIssuedBy(cert, deps.ca.issuing.cert)) {
      throw new LatchkeyError('CLIENT_CERT_UNKNOWN', 'the client certificate was not issued by this server\'s CA');
    }
    const row = await certificatesRepo(db.kysely).findBySerial(cert.serialHex);
    if (!row) throw new LatchkeyError('CLIENT_CERT_UNKNOWN', 'the client certificate is not in this server\'s records');
    return { cert, row };
  }

  /**
   * The enrollment's answer again, for a client whose first answer was lost
   * (crash, timeout): the same token and the same key get the certificate
   * already issued for them — same serial, no second device, no second use.
   */
  async function replay(tokenId: string, keyHash: string): Promise<EnrollResult | undefined> {
    const prior = await tokensRepo(db.kysely).enrolledWithKey(tokenId, keyHash);
    if (!prior) return undefined;
    if (prior.device_status === 'revoked' || prior.revoked_at) {
      throw new LatchkeyError('DEVICE_REVOKED', `this key was enrolled as device ${prior.device_id}, which has been revoked; enroll again with a new key and a new token`);
    }
    const latest = await certificatesRepo(db.kysely).latestForDevice(prior.device_id);
    if (latest?.serial !== prior.serial || new Date(prior.not_after) <= deps.clock()) {
      throw new LatchkeyError('CONFLICT', `this key was already enrolled as device ${prior.device_id}, whose certificate has been renewed or has expired since; it renews with its current certificate, or enroll with a new key and a new token`);
    }
    const der = pemDecode(prior.pem, 'CERTIFICATE');
    return { status: 'issued', deviceId: prior.device_id, issued: { der, pem: prior.pem, serial: prior.serial, notBefore: new Date(prior.not_before), notAfter: new Date(prior.not_after) } };
  }

  async function simpleEnroll({ body, token, remote }: { body: Buffer; token: string | undefined; remote: string }, raced = false): Promise<EnrollResult> {
    if (!token) throw new LatchkeyError('UNAUTHORIZED', 'enrollment needs a token: send `Authorization: Bearer <token>` (create one with `latchkey-server token create`)');
    const csr = readCsr(body);
    const now = deps.clock();
    const nowIso = now.toISOString();
    const facts = readFacts(csr);
    const keyHash = spkiHash(csr.spki);
    const tok = await tokensRepo(db.kysely).findForEnrollment(hashSecret(token), keyHash);
    if (!tok) throw new LatchkeyError('TOKEN_INVALID', 'the enrollment token is not valid; check it, or create a new one with `latchkey-server token create`');
    if (tok.revoked_at) throw new LatchkeyError('TOKEN_REVOKED', 'the enrollment token was revoked; create a new one with `latchkey-server token create`');
    // Checked again when issuing; here too, so a compromised key never even waits for approval.
    if (await compromisedKeysRepo(db.kysely).has(keyHash)) throw keyCompromised();
    const group = { name: tok.group_name, require_approval: tok.require_approval };
    const lifetime = Math.min(tok.cert_lifetime_seconds, config.maxCertLifetimeSeconds);

    // The same request again: a device waiting for approval, or approved since.
    if (tok.device_id) {
      const existing = { id: tok.device_id, name: tok.device_name!, approved_by: tok.device_approved_by };
      if (tok.device_status === 'denied') throw denied(existing.id);
      if (tok.device_status === 'revoked') throw new LatchkeyError('DEVICE_REVOKED', 'this device was refused or revoked by an administrator');
      if (tok.device_status === 'pending') {
        return { status: 'pending', deviceId: existing.id, retryAfterSeconds: config.approvalRetrySeconds };
      }
      const issued = await deps.issuance.issue({
        csr,
        device: { id: existing.id, name: existing.name },
        kind: 'enroll',
        lifetimeSeconds: lifetime,
        actor: `device:${existing.id}`,
        auditDetails: { token: tok.id, approvedBy: existing.approved_by, remote },
        async inTransaction(trx) {
          const r = await trx
            .updateTable('devices')
            .set({ pending_spki_hash: null, pending_csr: null, last_seen: nowIso })
            .where('id', '=', existing.id)
            .where('status', '=', 'active')
            .where('pending_spki_hash', '=', keyHash)
            .executeTakeFirst();
          if (r.numUpdatedRows !== 1n) throw new LatchkeyError('CONFLICT', 'this enrollment was already completed or the device changed state; enroll again');
        },
      });
      return { status: 'issued', issued, deviceId: existing.id };
    }

    // The same request again, after it was answered: the certificate already issued.
    const again = await replay(tok.id, keyHash);
    if (again) return again;

    if (tok.expires_at <= nowIso) throw new LatchkeyError('TOKEN_EXPIRED', `the enrollment token expired at ${tok.expires_at}; create a new one with \`latchkey-server token create\``);
    if (tok.used_count >= tok.uses) throw exhausted(tok.uses);

    const device = {
      id: randomUUID(),
      name: sanitizeDeviceName(firstValue(csr.subject, 'CN') ?? facts?.hostname),
      group_name: group.name,
      token_id: tok.id,
      facts: facts ? JSON.stringify(facts) : null,
      // Facts are reported, not trusted: a claimed user email stays a fact, never the device's identity.
      user_email: null,
      first_seen: nowIso,
      last_seen: nowIso,
      approved_at: null,
      approved_by: null,
      revoked_at: null,
      revocation_reason: null,
    };
    // Taking the token use is the last write before COMMIT: the token row's
    // lock, which serializes every enrollment sharing the token, is held briefly.
    // Then, holding the token row's lock: the same request sent twice at once
    // (another replica, a client that did not wait) makes one device, not two.
    const consume = async (trx: Parameters<NonNullable<Parameters<IssuanceService['issue']>[0]['beforeCommit']>>[0]): Promise<void> => {
      const took = await tokensRepo(trx).consume(tok.id, nowIso);
      if (await tokensRepo(trx).otherDeviceHoldsKey(tok.id, keyHash, device.id)) throw new SameRequestRaced();
      if (!took) throw exhausted(tok.uses);
    };

    const commitLock = `token:${tok.id}`;
    try {
      if (group.require_approval) {
        let unlock: (() => void) | undefined;
        try {
          await db.kysely.transaction().execute(async (trx) => {
            await devicesRepo(trx).insert({ ...device, status: 'pending', pending_spki_hash: keyHash, pending_csr: csr.der.toString('base64') });
            await auditRepo(trx).insert({ at: nowIso, actor: `token:${tok.id}`, action: 'device.pending', target: device.id, details: { name: device.name, group: group.name, remote } });
            unlock = await deps.commitLocks.acquire(commitLock);
            await consume(trx);
          });
        } finally {
          unlock?.();
        }
        await db.durable();
        return { status: 'pending', deviceId: device.id, retryAfterSeconds: config.approvalRetrySeconds };
      }

      const issued = await deps.issuance.issue({
        csr,
        device: { id: device.id, name: device.name },
        kind: 'enroll',
        lifetimeSeconds: lifetime,
        actor: `token:${tok.id}`,
        auditDetails: { token: tok.id, group: group.name, remote },
        async inTransaction(trx) {
          await devicesRepo(trx).insert({ ...device, status: 'active', pending_spki_hash: null, pending_csr: null });
        },
        beforeCommit: consume,
        commitLock,
      });
      return { status: 'issued', issued, deviceId: device.id };
    } catch (e) {
      // The twin committed first: answer as it was answered (pending, or its certificate).
      if (e instanceof SameRequestRaced && !raced) return simpleEnroll({ body, token, remote }, true);
      throw e;
    }
  }

  return {
    simpleEnroll: (input) => simpleEnroll(input),

    async simpleReenroll({ body, clientCertDer, remote }) {
      const { cert, row } = await authenticate(clientCertDer);
      if (!deps.reenrollLimiter.take(row.device_id)) {
        throw new LatchkeyError('RATE_LIMITED', `this device asked to renew more than ${config.reenrollRateLimitPerMinute} times in a minute; retry later`, { headers: { 'retry-after': '60' } });
      }
      const now = deps.clock();
      const nowIso = now.toISOString();
      const device = await devicesRepo(db.kysely).findById(row.device_id);
      if (!device) throw new LatchkeyError('CLIENT_CERT_UNKNOWN', 'the device of this certificate no longer exists');
      const certRevoked = row.revoked_at !== null && row.revoked_at <= nowIso;
      if (device.status === 'active' && certRevoked && row.revocation_reason === 'superseded') throw superseded();
      if (device.status === 'revoked' || certRevoked) {
        throw new LatchkeyError('DEVICE_REVOKED', 'this device has been revoked; it cannot renew or recover — enroll it again with a new token if it should be trusted');
      }
      if (device.status !== 'active') throw new LatchkeyError('FORBIDDEN', 'this device is not active');
      if (now < cert.notBefore) throw new LatchkeyError('FORBIDDEN', 'the client certificate is not valid yet; check the device clock');
      let kind: 'renew' | 'recover' = 'renew';
      if (now > cert.notAfter) {
        const expiredFor = (now.getTime() - cert.notAfter.getTime()) / 1000;
        if (expiredFor > config.recoveryGraceSeconds) {
          throw new LatchkeyError(
            'CERT_EXPIRED_PAST_GRACE',
            `the certificate expired ${Math.floor(expiredFor / 86400)} days ago, past the ${Math.floor(config.recoveryGraceSeconds / 86400)}-day recovery window; enroll again with a new token (\`latchkey enroll --token …\`)`,
          );
        }
        kind = 'recover';
      }
      const csr = readCsr(body);
      const facts = readFacts(csr);
      if (spkiHash(csr.spki) === row.spki_hash) {
        throw new LatchkeyError('CSR_POLICY', 're-enrollment needs a fresh key: the CSR carries the key of the current certificate');
      }
      const group = await groupsRepo(db.kysely).get(device.group_name);
      const lifetime = Math.min(group?.cert_lifetime_seconds ?? config.certLifetimeSeconds, config.maxCertLifetimeSeconds);
      const issued = await deps.issuance.issue({
        csr,
        device: { id: device.id, name: device.name },
        kind,
        lifetimeSeconds: lifetime,
        actor: `device:${device.id}`,
        auditDetails: { previousSerial: row.serial, remote },
        replacesSerial: row.serial,
        async inTransaction(trx) {
          // Re-check under the transaction: a revoke that raced this request wins.
          // Facts change over a device's life (OS updates): a renewal CSR that carries them refreshes the inventory.
          // On PostgreSQL this update also locks the device's row: its renewals are decided one at a time.
          const r = await trx
            .updateTable('devices')
            .set({ last_seen: nowIso, ...(facts ? { facts: JSON.stringify(facts) } : {}) })
            .where('id', '=', device.id)
            .where('status', '=', 'active')
            .executeTakeFirst();
          if (r.numUpdatedRows !== 1n) throw new LatchkeyError('DEVICE_REVOKED', 'this device has been revoked; enroll it again with a new token');
          await checkLineage(trx, { deviceId: device.id, serial: row.serial, kind, now: nowIso, cap: config.maxCertificatesPerDevice });
        },
      });
      return { ...issued, deviceId: device.id, kind };
    },
  };
}

function superseded(): LatchkeyError {
  return new LatchkeyError(
    'CERT_SUPERSEDED',
    'this certificate was superseded by a later one of this device, and only the latest certificate renews; if this identity was copied to another machine, enroll each machine on its own',
  );
}

/**
 * Which certificate may renew (under the device's row lock): the device's
 * latest; or the one before it while that is still within its overlap —
 * the device never received its renewal (a lost answer, a crash): the
 * certificate it never got is revoked and replaced. And never past
 * maxCertificatesPerDevice unexpired certificates: whatever one device
 * does, it can put only that many serials on the CRL.
 */
async function checkLineage(trx: Transaction<Database>, a: { deviceId: string; serial: string; kind: 'renew' | 'recover'; now: string; cap: number }): Promise<void> {
  const certs = certificatesRepo(trx);
  const latest = await certs.latestForDevice(a.deviceId);
  if (latest && latest.serial !== a.serial) {
    const current = await certs.findBySerial(a.serial);
    const stillInOverlap = current && (current.revoked_at === null || current.revoked_at > a.now);
    if (a.kind === 'recover' || latest.replaces_serial !== a.serial || !stillInOverlap) throw superseded();
    await certs.revokeOne(latest.serial, a.now, 'superseded');
  }
  const live = await certs.unexpiredForDevice(a.deviceId, a.now);
  if (live.length >= a.cap) {
    const wait = Math.max(1, Math.ceil((Date.parse(live[0]!.not_after) - Date.parse(a.now)) / 1000));
    throw new LatchkeyError(
      'TOO_MANY_CERTIFICATES',
      `this device already holds ${live.length} unexpired certificates, the most allowed (maxCertificatesPerDevice ${a.cap}); it can renew again in ${wait} s, when the oldest expires`,
      { headers: { 'retry-after': String(wait) } },
    );
  }
}

/** A concurrent identical enrollment committed first; this one rolls back and answers like a retry. */
class SameRequestRaced extends Error {}

function denied(deviceId: string): LatchkeyError {
  return new LatchkeyError('DEVICE_DENIED', `an administrator denied the enrollment of device ${deviceId}; this key and token will not be accepted again — ask your IT team`);
}

function exhausted(uses: number): LatchkeyError {
  return new LatchkeyError('TOKEN_EXHAUSTED', `the enrollment token has been used ${uses}/${uses} times; create a new one with \`latchkey-server token create\``);
}
