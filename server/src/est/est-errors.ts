/** The EST front-ends' refusals that more than one step gives, with what to do next. */
import type { DeviceCertRefusal } from '../auth/device-cert-auth.js';
import { LatchkeyError } from '../errors.js';
import type { Transactor } from '../storage/transaction.js';
import { auditRefusal } from './est-audit.js';

export function denied(deviceId: string): LatchkeyError {
  return new LatchkeyError('DEVICE_DENIED', `an administrator denied the enrollment of device ${deviceId}; this key and token will not be accepted again — ask your IT team`);
}

export function exhausted(uses: number): LatchkeyError {
  return new LatchkeyError('TOKEN_EXHAUSTED', `the enrollment token has been used ${uses}/${uses} times; create a new one with \`latchkey-server token create\``);
}

export function superseded(): LatchkeyError {
  return new LatchkeyError(
    'CERT_SUPERSEDED',
    'this certificate was superseded by a later one of this device, and only the latest certificate renews; if this identity was copied to another machine, enroll each machine on its own',
  );
}

export function tooManyCertificates(held: number, cap: number, oldestExpiresInMs: number): LatchkeyError {
  const wait = Math.max(1, Math.ceil(oldestExpiresInMs / 1000));
  return new LatchkeyError(
    'TOO_MANY_CERTIFICATES',
    `this device already holds ${held} unexpired certificates, the most allowed (maxCertificatesPerDevice ${cap}); it can renew again in ${wait} s, when the oldest expires`,
    { headers: { 'retry-after': String(wait) } },
  );
}

/** A refused device certificate, in simplereenroll's error codes. */
export function reenrollRefusal(reason: DeviceCertRefusal, expiredForSeconds: number, graceSeconds: number): LatchkeyError {
  switch (reason) {
    case 'missing':
      return new LatchkeyError('CLIENT_CERT_REQUIRED', 'present the device certificate as the TLS client certificate (curl --cert/--key)');
    case 'unparsable':
      return new LatchkeyError('CLIENT_CERT_UNKNOWN', 'the client certificate cannot be parsed');
    case 'foreign-ca':
      return new LatchkeyError('CLIENT_CERT_UNKNOWN', "the client certificate was not issued by this server's CA");
    case 'unknown':
      return new LatchkeyError('CLIENT_CERT_UNKNOWN', "the client certificate is not in this server's records");
    case 'superseded':
      return superseded();
    case 'revoked':
      return new LatchkeyError('DEVICE_REVOKED', 'this device has been revoked; it cannot renew or recover — enroll it again with a new token if it should be trusted');
    case 'not-active':
      return new LatchkeyError('FORBIDDEN', 'this device is not active');
    case 'not-yet-valid':
      return new LatchkeyError('FORBIDDEN', 'the client certificate is not valid yet; check the device clock');
    case 'expired':
      return new LatchkeyError(
        'CERT_EXPIRED_PAST_GRACE',
        `the certificate expired ${Math.floor(expiredForSeconds / 86400)} days ago, past the ${Math.floor(graceSeconds / 86400)}-day recovery window; enroll again with a new token (\`latchkey enroll --token …\`)`,
      );
  }
}

/** A group whose attestation is `tpm` (issue 14): a request without a TPM attestation is refused. */
export function attestationRequired(group: string, what: 'enrollment' | 'renewal'): LatchkeyError {
  return new LatchkeyError(
    'ATTESTATION_REQUIRED',
    `group ${group} requires a TPM-attested device key; this ${what} carried no attestation (keystore file, os or pkcs11 without a TPM attestation); enroll with a TPM keystore, or an admin sets \`latchkey-server groups set ${group} --attestation none\``,
  );
}

/** A device enrolled with a TPM attestation renews only with one, whatever its group's policy (issue 14). */
export function deviceAttestationRequired(deviceId: string): LatchkeyError {
  return new LatchkeyError(
    'ATTESTATION_REQUIRED',
    `device ${deviceId} is TPM-attested: every renewal must carry a TPM attestation of the new key by the device's attestation key; renew with the TPM keystore it enrolled with (a key outside the TPM is refused), or enroll again`,
  );
}

/** The challenge was taken by another request first: a replayed activation, or two requests racing. */
export const alreadyUsed = (challengeId: string): LatchkeyError =>
  new LatchkeyError('ATTESTATION_INVALID', `attestation challenge ${challengeId} was already used; ask for a new challenge and attest again`);

/** Runs an attestation check; a refusal (ATTESTATION_INVALID, EK_NOT_REGISTERED) is audited, then thrown. */
export async function attestationAudit<T>(tx: Transactor, at: Omit<Parameters<typeof auditRefusal>[1], 'code' | 'reason'>, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (e) {
    if (e instanceof LatchkeyError && (e.code === 'ATTESTATION_INVALID' || e.code === 'EK_NOT_REGISTERED')) {
      await tx.inTransaction((trx) => auditRefusal(trx, { ...at, code: e.code as 'ATTESTATION_INVALID', reason: e.message }));
    }
    throw e;
  }
}
