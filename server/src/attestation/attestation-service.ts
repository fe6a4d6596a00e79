/**
 * The attestation exchange (issue 14): a challenge is TPM2_MakeCredential,
 * done here, for the AK's Name and encrypted to the EK around a fresh
 * secret; EST then verifies the CSR's attestation against it
 * (`verifyForCsr`) and uses it once, in the issuing transaction.
 *
 * Enrollment challenges: an enrollment token, and an EK that is genuine (its
 * certificate chains to a configured TPM manufacturer CA) or registered by
 * an admin. Renewal challenges: a device certificate of an attested device,
 * with the EK and AK bound at its enrollment. Bounded per token / device
 * (maxOpenChallenges, the oldest dropped) and in time (challengeTtlSeconds);
 * expired challenges are pruned a batch at a time as new ones are made.
 */
import { randomUUID } from 'node:crypto';
import { type AttestChallenge, type AttestEnrollChallengeRequest, type AttestRenewChallengeRequest, type CsrAttestation } from '@latchkey/protocol';
import { certificateToPem, type Certificate } from '@latchkey/pki';
import { akAttributeProblems, ekTpmInfo, makeCredential, objectName, type ParsedPublic, publicKeySpki, readEkCertificate, verifyEkCertificate } from '@latchkey/tpm';
import { hashSecret } from '../auth/secret-hash.js';
import type { DeviceCertAuth } from '../auth/device-cert-auth.js';
import type { ServerConfig } from '../config/config-schema.js';
import type { DevicesRepo } from '../devices/devices-repo.js';
import { LatchkeyError } from '../errors.js';
import { reenrollRefusal } from '../est/est-errors.js';
import { checkTokenFound, checkTokenUsable } from '../est/est-fns.js';
import type { RateLimiter } from '../rate-limit.js';
import type { RegisteredDevicesRepo } from '../registered-devices/registered-devices-repo.js';
import type { AttestationChallengesTable } from '../storage/schema.js';
import type { Transactor } from '../storage/transaction.js';
import type { TokensRepo } from '../tokens/tokens-repo.js';
import { attestationRepo, type ChallengeOwner } from './attestation-repo.js';
import { PRUNE_BATCH, SECRET_BYTES, decodeB64, ekHashOf, invalid, readPublic, secretHash, type VerifiedAttestation, verifyAgainstChallenge } from './attestation-fns.js';
import type { EkRoots } from './ek-roots.js';

export interface AttestationService {
  enrollChallenge(i: { token: string | undefined; body: AttestEnrollChallengeRequest }): Promise<AttestChallenge>;
  renewChallenge(i: { clientCertDer: Buffer | undefined; body: AttestRenewChallengeRequest }): Promise<AttestChallenge>;
  /** The CSR's attestation against its challenge, which must be this owner's: what it proved, or ATTESTATION_INVALID. Writes nothing. */
  verifyForCsr(a: CsrAttestation, owner: ChallengeOwner, csrSpki: Uint8Array): Promise<VerifiedAttestation>;
}

export interface AttestationDeps {
  tx: Transactor;
  tokens: Pick<TokensRepo, 'findForEnrollment'>;
  registered: Pick<RegisteredDevicesRepo, 'findByEkHash'>;
  devices: Pick<DevicesRepo, 'findById' | 'liveWithEk'>;
  challenges: Pick<ReturnType<typeof attestationRepo>, 'findById'>;
  deviceCertAuth: DeviceCertAuth;
  /** Shared with simplereenroll: what one device may ask per minute. */
  reenrollLimiter: RateLimiter;
  ekRoots: EkRoots;
  clock: () => Date;
  random: (n: number) => Uint8Array;
  config: Pick<ServerConfig, 'attestation' | 'recoveryGraceSeconds' | 'reenrollRateLimitPerMinute'>;
  /** PostgreSQL: take the owner's advisory lock before counting its open challenges. */
  rowLocks: boolean;
}

/** How the server came to trust an EK. */
interface TrustedEk {
  ekHash: string;
  ekTrust: 'certificate' | 'registered';
  manufacturer: string | null;
  ekCert: string | null;
  registered?: { group_name: string | null; used_by_device: string | null };
}

const registerHint = (hash: string): string => `an admin registers it with \`latchkey-server devices register --ek-hash ${hash}\``;

export function createAttestationService(deps: AttestationDeps): AttestationService {
  const ttl = deps.config.attestation?.challengeTtlSeconds ?? 300;
  const maxOpen = deps.config.attestation?.maxOpenChallenges ?? 5;

  /** The EK's certificate chain to a configured manufacturer CA, else its hash in the inventory, else refused saying what to do. */
  async function trustEk(ek: ParsedPublic, certB64: string | undefined, now: Date): Promise<TrustedEk> {
    const hash = ekHashOf(ek);
    let why: string;
    let certPem: string | null = null;
    if (certB64 === undefined) {
      why = 'the device sent no EK certificate (its TPM has none in NV)';
    } else {
      const der = decodeB64(certB64, 'ekCertificate');
      let cert: Certificate;
      try {
        cert = readEkCertificate(der).certificate;
      } catch (e) {
        throw invalid(`ekCertificate cannot be read: ${(e as Error).message}`);
      }
      if (!cert.spki.equals(publicKeySpki(ek))) throw invalid('the EK certificate is for another key than ekPublic: send the certificate of the EK the TPM uses');
      certPem = certificateToPem(der);
      if (deps.ekRoots.roots.length === 0) {
        why = 'no TPM manufacturer CAs are configured (attestation.ekRootsDir)';
      } else {
        try {
          const r = verifyEkCertificate({ certificate: der, intermediates: deps.ekRoots.intermediates.map((c) => c.der), roots: deps.ekRoots.roots.map((c) => c.der), now, ekPublic: ek });
          return { ekHash: hash, ekTrust: 'certificate', manufacturer: r.tpm.manufacturer ?? null, ekCert: certPem };
        } catch (e) {
          why = (e as Error).message;
        }
      }
    }
    const reg = await deps.registered.findByEkHash(hash);
    if (reg) {
      const manufacturer = reg.manufacturer ?? (certPem ? (ekTpmInfo(readEkCertificate(certPem).certificate).manufacturer ?? null) : null);
      return { ekHash: hash, ekTrust: 'registered', manufacturer, ekCert: certPem ?? reg.ek_cert, registered: reg };
    }
    throw invalid(
      `this TPM's endorsement key is not trusted: ${why}, and its EK hash ${hash} is not registered; configure the TPM manufacturer's CA in attestation.ekRootsDir, or ${registerHint(hash)}`,
    );
  }

  /** requireRegisteredEk: registered, for this group, not the EK of another live device. */
  async function checkRegistered(t: TrustedEk, group: string): Promise<void> {
    const reg = t.registered ?? (await deps.registered.findByEkHash(t.ekHash));
    if (!reg) {
      throw new LatchkeyError('EK_NOT_REGISTERED', `group ${group} admits only registered TPMs, and EK ${t.ekHash} is not registered; ${registerHint(t.ekHash)} --group ${group}`);
    }
    if (reg.group_name !== null && reg.group_name !== group) {
      throw new LatchkeyError('EK_NOT_REGISTERED', `EK ${t.ekHash} is registered for group ${reg.group_name}, not ${group}; enroll with a token of group ${reg.group_name}, or an admin registers it again for ${group}`);
    }
    const live = await deps.devices.liveWithEk(t.ekHash);
    if (live.length > 0) {
      throw new LatchkeyError('EK_NOT_REGISTERED', `EK ${t.ekHash} is already the TPM of device ${live[0]!.id}; revoke that device first if this machine replaces it (\`latchkey-server devices revoke ${live[0]!.id}\`)`);
    }
  }

  /** Makes the credential, and records the challenge (the owner's oldest dropped past maxOpen; a batch of expired ones pruned). */
  async function issueChallenge(owner: ChallengeOwner, ek: ParsedPublic, ekB64: string, ak: ParsedPublic, akB64: string, t: Omit<TrustedEk, 'registered'>, now: Date): Promise<AttestChallenge> {
    const secret = Buffer.from(deps.random(SECRET_BYTES));
    let made;
    try {
      made = makeCredential({ ekPublic: ek, objectName: objectName(ak), secret, random: deps.random });
    } catch (e) {
      throw new LatchkeyError('BAD_REQUEST', `no credential can be made for this EK: ${(e as Error).message}`);
    }
    const nowIso = now.toISOString();
    const row: AttestationChallengesTable = {
      id: randomUUID(),
      token_id: 'tokenId' in owner ? owner.tokenId : null,
      device_id: 'deviceId' in owner ? owner.deviceId : null,
      ek_hash: t.ekHash,
      ek_public: ekB64,
      ek_cert: t.ekCert,
      ek_trust: t.ekTrust,
      manufacturer: t.manufacturer,
      ak_public: akB64,
      secret_hash: secretHash(secret),
      created_at: nowIso,
      expires_at: new Date(now.getTime() + ttl * 1000).toISOString(),
      used_at: null,
    };
    await deps.tx.inTransaction(async (trx) => {
      const repo = attestationRepo(trx);
      await repo.lockOwner(owner, deps.rowLocks);
      await repo.deleteIds(await repo.expiredIds(nowIso, PRUNE_BATCH));
      const open = await repo.open(owner, nowIso);
      if (open.length >= maxOpen) await repo.deleteIds(open.slice(0, open.length - maxOpen + 1).map((c) => c.id));
      await repo.insert(row);
    });
    return { challengeId: row.id, credentialBlob: made.credentialBlob.toString('base64'), encryptedSecret: made.encryptedSecret.toString('base64'), expiresAt: row.expires_at };
  }

  function checkAk(ak: ParsedPublic): void {
    const problems = akAttributeProblems(ak);
    if (problems.length > 0) throw invalid(`akPublic is not usable as an attestation key: ${problems.join('; ')}`);
  }

  return {
    async enrollChallenge({ token, body }) {
      if (!token) throw new LatchkeyError('UNAUTHORIZED', 'an attestation challenge needs the enrollment token: send `Authorization: Bearer <token>` (create one with `latchkey-server token create`)');
      const now = deps.clock();
      // No key yet: the token's own row (no device is looked up by key).
      const tok = checkTokenFound(await deps.tokens.findForEnrollment(hashSecret(token), ''));
      checkTokenUsable(tok, now.toISOString());
      const ek = readPublic(body.ekPublic, 'ekPublic');
      const ak = readPublic(body.akPublic, 'akPublic');
      const trusted = await trustEk(ek, body.ekCertificate, now);
      if (tok.require_registered_ek) await checkRegistered(trusted, tok.group_name);
      checkAk(ak);
      return issueChallenge({ tokenId: tok.id }, ek, body.ekPublic, ak, body.akPublic, trusted, now);
    },

    async renewChallenge({ clientCertDer, body }) {
      const config = deps.config;
      const v = await deps.deviceCertAuth(clientCertDer, { recoveryGraceSeconds: config.recoveryGraceSeconds });
      if (v.record && !deps.reenrollLimiter.take(v.record.device_id)) {
        throw new LatchkeyError('RATE_LIMITED', `this device asked to renew more than ${config.reenrollRateLimitPerMinute} times in a minute; retry later`, { headers: { 'retry-after': '60' } });
      }
      if (!v.ok) throw reenrollRefusal(v.reason, v.expiredForSeconds ?? 0, config.recoveryGraceSeconds);
      const device = await deps.devices.findById(v.record.device_id);
      if (!device?.ek_public || !device.ak_public || device.assurance !== 'tpm-attested') {
        throw invalid(`device ${v.record.device_id} was not enrolled with a TPM attestation, so it has no attestation key to renew with; enroll it again with a TPM keystore to make it TPM-attested`);
      }
      if (body.akPublic !== device.ak_public) {
        throw invalid(`this device's attestation key is the one bound at its enrollment (Name ${objectName(readPublic(device.ak_public, 'stored AK')).toString('hex')}), not the akPublic sent; renew with that AK, or enroll again`);
      }
      const now = deps.clock();
      const ek = readPublic(device.ek_public, 'stored EK');
      const ak = readPublic(device.ak_public, 'stored AK');
      return issueChallenge({ deviceId: device.id }, ek, device.ek_public, ak, device.ak_public, { ekHash: device.ek_hash!, ekTrust: device.ek_trust ?? 'registered', manufacturer: device.tpm_manufacturer ?? null, ekCert: device.ek_cert ?? null }, now);
    },

    async verifyForCsr(a, owner, csrSpki) {
      const ch = await deps.challenges.findById(a.challengeId);
      const mine = ch && ('tokenId' in owner ? ch.token_id === owner.tokenId : ch.device_id === owner.deviceId);
      if (!ch || !mine) {
        throw invalid(`attestation challenge ${a.challengeId} is unknown or was not made for this ${'tokenId' in owner ? 'enrollment token' : 'device'} (it may have been dropped for a newer one, or expired and pruned); ask for a new challenge and attest again`);
      }
      return verifyAgainstChallenge(a, ch, csrSpki, deps.clock().toISOString());
    },
  };
}
