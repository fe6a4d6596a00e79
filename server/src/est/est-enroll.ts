/**
 * EST simpleenroll (RFC 7030 §4.2.1): bootstrap enrollment with an
 * enrollment token. The token's row says what this request is (a device
 * already made for this key: waiting, approved since, refused — with this
 * token, or with another one the device had before its token file was
 * replaced; an answer lost and asked again; or a new device),
 * `enrollmentStep` decides, and each step ends in the issuing pipeline or a
 * pending device.
 */
import { randomUUID } from 'node:crypto';
import { type Csr, firstValue, pemDecode } from '@latchkey/pki';
import type { DeviceFacts } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { CertificatesRepo } from '../certificates/certificates-repo.js';
import type { ServerConfig } from '../config/config-schema.js';
import type { CompromisedKeysRepo } from '../devices/compromised-keys-repo.js';
import { devicesRepo } from '../devices/devices-repo.js';
import { LatchkeyError } from '../errors.js';
import { type IssuanceService, type Issued, keyCompromised, spkiHash } from '../issuance/issuance-service.js';
import type { DevicesTable } from '../storage/schema.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import { type TokensRepo, tokensRepo } from '../tokens/tokens-repo.js';
import { usersRepo } from '../users/users-repo.js';
import type { KeyedMutex } from '../util/keyed-mutex.js';
import type { AttestationService } from '../attestation/attestation-service.js';
import { type VerifiedAttestation, readCsrAttestation } from '../attestation/attestation-fns.js';
import { attestationRepo } from '../attestation/attestation-repo.js';
import { registeredDevicesRepo } from '../registered-devices/registered-devices-repo.js';
import { alreadyUsed, attestationAudit, attestationRequired, exhausted } from './est-errors.js';
import { auditRefusal } from './est-audit.js';
import { checkTokenFound, checkTokenUsable, enrollmentStep, readCsr, readFacts, sanitizeDeviceName } from './est-fns.js';

export interface EnrollResult {
  status: 'issued' | 'pending';
  issued?: Issued;
  deviceId: string;
  retryAfterSeconds?: number;
}

export interface EnrollInput {
  body: Buffer;
  token: string | undefined;
  remote: string;
}

export interface EnrollmentDeps {
  tokens: Pick<TokensRepo, 'findForEnrollment' | 'waitingWithKey' | 'enrolledWithKey'>;
  certificates: Pick<CertificatesRepo, 'latestForDevice'>;
  compromisedKeys: Pick<CompromisedKeysRepo, 'has'>;
  tx: Transactor;
  issuance: IssuanceService;
  commitLocks: KeyedMutex;
  clock: () => Date;
  config: Pick<ServerConfig, 'maxCertLifetimeSeconds' | 'approvalRetrySeconds' | 'oidc'>;
  attestation: Pick<AttestationService, 'verifyForCsr'>;
}

type TokenRow = NonNullable<Awaited<ReturnType<TokensRepo['findForEnrollment']>>>;

/** One enrollment request, read and with its token found. */
interface Request {
  csr: Csr;
  facts: DeviceFacts | null;
  keyHash: string;
  tok: TokenRow;
  nowIso: string;
  lifetime: number;
  remote: string;
  /** What the CSR's TPM attestation proved (verified against its challenge), if it had one. */
  attested?: VerifiedAttestation;
}

/**
 * An attested enrollment's writes, in its transaction: the challenge is taken
 * (once: a replay or a racing twin finds it used), the device row records the
 * TPM, and the EK inventory names the device.
 */
async function recordAttested(trx: Trx, a: VerifiedAttestation, deviceId: string, nowIso: string, opts: { takeChallenge: boolean; requireUnusedEk: boolean }): Promise<void> {
  if (opts.takeChallenge && !(await attestationRepo(trx).markUsed(a.challengeId, nowIso))) throw alreadyUsed(a.challengeId);
  if (opts.requireUnusedEk && (await devicesRepo(trx).liveWithEk(a.ekHash)).some((d) => d.id !== deviceId)) {
    throw new LatchkeyError('EK_NOT_REGISTERED', `EK ${a.ekHash} became the TPM of another device meanwhile; revoke that device first if this machine replaces it`);
  }
  await devicesRepo(trx).recordAttestation(deviceId, a, nowIso);
  await registeredDevicesRepo(trx).markUsedBy(a.ekHash, deviceId);
}

/** What an attested issuance adds to its audit entry. */
const attestedDetails = (a: VerifiedAttestation | undefined): Record<string, unknown> => (a ? { attested: true, ekHash: a.ekHash, ekTrust: a.ekTrust } : {});

/** A concurrent identical enrollment committed first; this one rolls back and answers like a retry. */
class SameRequestRaced extends Error {}

export function createEnrollment(deps: EnrollmentDeps): (input: EnrollInput) => Promise<EnrollResult> {
  const { config } = deps;

  /** An approved device's request again: its certificate is issued now. */
  async function completeApproved(r: Request): Promise<EnrollResult> {
    const id = r.tok.device_id!;
    // The attestation was verified (and its challenge used) when the device became pending.
    const attested = r.tok.device_pending_attestation ? (JSON.parse(r.tok.device_pending_attestation) as VerifiedAttestation) : undefined;
    if (r.tok.attestation === 'tpm' && !attested) {
      await deps.tx.inTransaction((trx) => auditRefusal(trx, { at: r.nowIso, actor: `token:${r.tok.id}`, target: id, group: r.tok.group_name, kind: 'enroll', remote: r.remote }));
      throw attestationRequired(r.tok.group_name, 'enrollment');
    }
    const issued = await deps.issuance.issue({
      csr: r.csr,
      device: { id, name: r.tok.device_name!, email: r.tok.user_email ?? null },
      kind: 'enroll',
      lifetimeSeconds: r.lifetime,
      actor: `device:${id}`,
      auditDetails: { token: r.tok.id, approvedBy: r.tok.device_approved_by, remote: r.remote, ...attestedDetails(attested) },
      attested: attested !== undefined,
      async inTransaction(trx) {
        if (!(await devicesRepo(trx).completeApprovedEnrollment(id, r.keyHash, r.nowIso))) {
          throw new LatchkeyError('CONFLICT', 'this enrollment was already completed or the device changed state; enroll again');
        }
        if (attested) await recordAttested(trx, attested, id, r.nowIso, { takeChallenge: false, requireUnusedEk: r.tok.require_registered_ek === 1 });
      },
    });
    return { status: 'issued', issued, deviceId: id };
  }

  /**
   * The enrollment's answer again, for a client whose first answer was lost
   * (crash, timeout): the same token and the same key get the certificate
   * already issued for them — same serial, no second device, no second use.
   */
  async function replay(tokenId: string, keyHash: string): Promise<EnrollResult | undefined> {
    const prior = await deps.tokens.enrolledWithKey(tokenId, keyHash);
    if (!prior) return undefined;
    if (prior.device_status === 'revoked' || prior.revoked_at) {
      throw new LatchkeyError('DEVICE_REVOKED', `this key was enrolled as device ${prior.device_id}, which has been revoked; enroll again with a new key and a new token`);
    }
    const latest = await deps.certificates.latestForDevice(prior.device_id);
    if (latest?.serial !== prior.serial || new Date(prior.not_after) <= deps.clock()) {
      throw new LatchkeyError('CONFLICT', `this key was already enrolled as device ${prior.device_id}, whose certificate has been renewed or has expired since; it renews with its current certificate, or enroll with a new key and a new token`);
    }
    const der = pemDecode(prior.pem, 'CERTIFICATE');
    return { status: 'issued', deviceId: prior.device_id, issued: { der, pem: prior.pem, serial: prior.serial, notBefore: new Date(prior.not_before), notAfter: new Date(prior.not_after) } };
  }

  /** A new device: pending approval, or certified now; the token's use is taken in the same transaction. */
  async function enrollNew(r: Request): Promise<EnrollResult> {
    const { tok, nowIso, keyHash } = r;
    const device: Omit<DevicesTable, 'status' | 'pending_spki_hash' | 'pending_csr'> = {
      id: randomUUID(),
      name: sanitizeDeviceName(firstValue(r.csr.subject, 'CN') ?? r.facts?.hostname),
      group_name: tok.group_name,
      token_id: tok.id,
      facts: r.facts ? JSON.stringify(r.facts) : null,
      // Facts are reported, not trusted: a claimed user email stays a fact, never the device's identity.
      // The person comes only from a token a sign-in at the identity provider made (/v1/auth).
      user_email: tok.user_id ? tok.user_email : null,
      user_id: tok.user_id ?? null,
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
    const consume = async (trx: Trx): Promise<void> => {
      if (tok.user_id) await checkUserMayAddDevice(trx, tok.user_id, tok.user_email ?? '', device.id);
      const took = await tokensRepo(trx).consume(tok.id, nowIso);
      if (await tokensRepo(trx).otherDeviceHoldsKey(tok.id, keyHash, device.id)) throw new SameRequestRaced();
      if (!took) throw exhausted(tok.uses);
    };
    const commitLock = `token:${tok.id}`;
    if (tok.require_approval) {
      let unlock: (() => void) | undefined;
      try {
        await deps.tx.inTransaction(async (trx) => {
          await devicesRepo(trx).insert({ ...device, status: 'pending', pending_spki_hash: keyHash, pending_csr: r.csr.der.toString('base64'), pending_attestation: r.attested ? JSON.stringify(r.attested) : null });
          if (r.attested && !(await attestationRepo(trx).markUsed(r.attested.challengeId, nowIso))) throw alreadyUsed(r.attested.challengeId);
          await auditRepo(trx).insert({ at: nowIso, actor: `token:${tok.id}`, action: 'device.pending', target: device.id, details: { name: device.name, group: tok.group_name, remote: r.remote } });
          unlock = await deps.commitLocks.acquire(commitLock);
          await consume(trx);
        });
      } finally {
        unlock?.();
      }
      await deps.tx.durable();
      return { status: 'pending', deviceId: device.id, retryAfterSeconds: config.approvalRetrySeconds };
    }
    const issued = await deps.issuance.issue({
      csr: r.csr,
      device: { id: device.id, name: device.name, email: device.user_email },
      kind: 'enroll',
      lifetimeSeconds: r.lifetime,
      actor: `token:${tok.id}`,
      auditDetails: { token: tok.id, group: tok.group_name, remote: r.remote, ...attestedDetails(r.attested) },
      attested: r.attested !== undefined,
      async inTransaction(trx) {
        await devicesRepo(trx).insert({ ...device, status: 'active', pending_spki_hash: null, pending_csr: null });
        if (r.attested) await recordAttested(trx, r.attested, device.id, nowIso, { takeChallenge: true, requireUnusedEk: tok.require_registered_ek === 1 });
      },
      beforeCommit: consume,
      commitLock,
    });
    return { status: 'issued', issued, deviceId: device.id };
  }

  /**
   * A person's device limit, counted in the enrollment's transaction with the new device
   * already inserted (so the count includes it). Two enrollments of one person racing on
   * PostgreSQL may both pass; the limit is then exceeded by at most the replicas' concurrency.
   */
  async function checkUserMayAddDevice(trx: Trx, userId: string, email: string, newDeviceId: string): Promise<void> {
    const max = config.oidc?.maxDevicesPerUser ?? 5;
    const users = usersRepo(trx);
    const user = await users.findById(userId);
    if (!user || user.status !== 'active') throw new LatchkeyError('USER_NOT_ALLOWED', `${email} is no longer allowed to enroll devices at the identity provider; ask IT`);
    const live = await users.liveDeviceCount(userId);
    const others = live - ((await devicesRepo(trx).findById(newDeviceId)) ? 1 : 0);
    if (others >= max) {
      throw new LatchkeyError('USER_DEVICE_LIMIT', `${email} already has ${others} devices, the most one person may have (${max}); ask an admin to revoke one you no longer use (\`latchkey-server devices list --user ${email}\`)`);
    }
  }

  async function simpleEnroll({ body, token, remote }: EnrollInput, raced = false): Promise<EnrollResult> {
    if (!token) throw new LatchkeyError('UNAUTHORIZED', 'enrollment needs a token: send `Authorization: Bearer <token>` (create one with `latchkey-server token create`)');
    const csr = readCsr(body);
    const nowIso = deps.clock().toISOString();
    const facts = readFacts(csr);
    const attestation = readCsrAttestation(csr);
    const keyHash = spkiHash(csr.spki);
    let tok = checkTokenFound(await deps.tokens.findForEnrollment(hashSecret(token), keyHash));
    // This key already waits (or was refused) with another token: its token file was replaced
    // while it waited. That request goes on, with its own token, group and person; this token,
    // valid but not used, only let it in. The CSR's signature proves the key, and the
    // certificate is only ever for that key.
    if (!tok.device_id) {
      const waiting = await deps.tokens.waitingWithKey(keyHash);
      if (waiting && waiting.id !== tok.id) tok = waiting;
    }
    // Before anything else about this request: a pending or approved device of a group switched to tpm is refused too.
    if (tok.attestation === 'tpm' && !attestation) {
      await deps.tx.inTransaction((trx) => auditRefusal(trx, { at: nowIso, actor: `token:${tok.id}`, target: tok.device_id ?? null, group: tok.group_name, kind: 'enroll', remote }));
      throw attestationRequired(tok.group_name, 'enrollment');
    }
    // Checked again when issuing; here too, so a compromised key never even waits for approval.
    if (await deps.compromisedKeys.has(keyHash)) throw keyCompromised();
    const r: Request = { csr, facts, keyHash, tok, nowIso, lifetime: Math.min(tok.cert_lifetime_seconds, config.maxCertLifetimeSeconds), remote };
    const step = enrollmentStep(tok);
    if (step === 'pending') return { status: 'pending', deviceId: tok.device_id!, retryAfterSeconds: config.approvalRetrySeconds };
    if (step === 'complete-approved') return completeApproved(r);
    // The same request again, after it was answered: the certificate already issued.
    const again = await replay(tok.id, keyHash);
    if (again) return again;
    checkTokenUsable(tok, nowIso);
    if (attestation) {
      r.attested = await attestationAudit(deps.tx, { at: nowIso, actor: `token:${tok.id}`, target: null, group: tok.group_name, kind: 'enroll', remote }, () =>
        deps.attestation.verifyForCsr(attestation, { tokenId: tok.id }, csr.spki),
      );
    }
    try {
      return await enrollNew(r);
    } catch (e) {
      // The twin committed first: answer as it was answered (pending, or its certificate).
      if (e instanceof SameRequestRaced && !raced) return simpleEnroll({ body, token, remote }, true);
      throw e;
    }
  }

  return (input) => simpleEnroll(input);
}
