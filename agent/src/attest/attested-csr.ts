/**
 * The attested path as enroll.ts and renew.ts use it: from the identity's
 * keystore settings (a tpm2-pkcs11 token: module, label, PIN) to a device
 * key in the TPM, linked into that token, and a CSR carrying the device
 * facts and the CsrAttestation.
 */
import { createCsr } from '@latchkey/pki';
import type { AttestChallenge, AttestEnrollChallengeRequest, AttestRenewChallengeRequest } from '@latchkey/protocol';
import { ATTESTATION_ATTRIBUTE_OID, FACTS_ATTRIBUTE_OID } from '@latchkey/protocol/wire';
import { AgentError } from '../errors.js';
import { type DeviceKey, pkcs11KeyLabel } from '../keystore/keystore.js';
import { pkcs11Pin } from '../keystore/open-keystore.js';
import type { KeystoreConfig } from '../state/identity.js';
import { keyNamespace } from '../state/paths.js';
import { type TpmAttestConfig, createAttestedKey } from './attest.js';

export interface AttestedCsrOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  keystore: KeystoreConfig;
  tpm: TpmAttestConfig;
  mode: 'enroll' | 'renew';
  commonName: string;
  factsJson: string;
  requestChallenge: (body: AttestEnrollChallengeRequest | AttestRenewChallengeRequest) => Promise<AttestChallenge>;
}

/** Throws USAGE unless the keystore is a pkcs11 token named by its label (tpm2_ptool link needs the label). */
export function attestableKeystore(k: KeystoreConfig): { module: string; tokenLabel: string } {
  if (k.kind !== 'pkcs11' || !k.tokenLabel) {
    throw new AgentError('USAGE', '--attest tpm makes the device key in a tpm2-pkcs11 token: use --keystore pkcs11 --pkcs11-module …/libtpm2_pkcs11.so --pkcs11-token <label>');
  }
  return { module: k.module, tokenLabel: k.tokenLabel };
}

const usedElsewhere = (what: string) => (): never => {
  throw new AgentError('KEYSTORE', `a TPM key linked into the token by this process is ${what} from the next process on (tpm2-pkcs11 reads its objects when it starts)`);
};

export async function attestedKeyAndCsr(o: AttestedCsrOptions): Promise<{ key: DeviceKey; csr: Buffer; discard: () => Promise<void> }> {
  const token = attestableKeystore(o.keystore);
  const pin = await pkcs11Pin({ stateDir: o.stateDir, env: o.env }, token);
  const namespace = keyNamespace(o.stateDir);
  const made = await createAttestedKey({
    stateDir: o.stateDir,
    env: o.env,
    tpm: o.tpm,
    mode: o.mode,
    link: { tokenLabel: token.tokenLabel, pin, keyLabel: (id) => pkcs11KeyLabel(namespace, id) },
    requestChallenge: o.requestChallenge,
    makeCsr: (signer, attestationJson) =>
      createCsr({
        subject: [{ type: 'CN', value: o.commonName.slice(0, 64) }],
        signer,
        stringAttributes: [
          { oid: FACTS_ATTRIBUTE_OID, value: o.factsJson },
          { oid: ATTESTATION_ATTRIBUTE_OID, value: attestationJson },
        ],
      }),
  });
  const key: DeviceKey = {
    ref: made.ref,
    spki: made.spki,
    extractable: false,
    signer: { algorithm: 'ecdsa-with-SHA256', spki: made.spki, sign: usedElsewhere('signing') },
    tlsKey: usedElsewhere('used for TLS'),
  };
  return { key, csr: made.csr, discard: made.discard };
}
