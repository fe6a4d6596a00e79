/**
 * One attested key, start to end (issue 14): the EK and the agent's AK, a
 * device key made in the TPM and linked into the tpm2-pkcs11 token, the
 * server's challenge (asked for by the caller: with the enrollment token, or
 * over mTLS with the current certificate), TPM2_ActivateCredential, the AK's
 * TPM2_Certify of the key with the secret as qualifying data, and the CSR
 * carrying the CsrAttestation. Everything the TPM tools need sits in a 0700
 * work dir inside the state dir, removed at the end.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttestChallenge, AttestEnrollChallengeRequest, AttestRenewChallengeRequest, CsrAttestation } from '@latchkey/protocol';
import { MAX_ATTESTATION_JSON } from '@latchkey/protocol/wire';
import type { Signer } from '@latchkey/pki';
import { AgentError } from '../errors.js';
import type { KeyRef } from '../keystore/keystore.js';
import { activateCredential } from './activate.js';
import { type CertifyRecord, certifyKey } from './certify.js';
import { type Ak, type Ek, createAk, loadEk, recordedAk } from './ek-ak.js';
import { handleHex, parseHandle } from './tpm-handles.js';
import { type LinkTarget, type TpmDeviceKey, createLinkedKey, unlinkKey } from './tpm-key.js';
import { type TpmState, readTpmState, writeTpmState } from './tpm-state.js';
import { type TpmTools, createTpmTools } from './tpm-tools.js';

/** How the agent reaches the TPM; recorded in the identity of an attested device. */
export interface TpmAttestConfig {
  kind: 'tpm';
  /** TPM2TOOLS_TCTI for the tools; unset = the tools' default (/dev/tpmrm0). LATCHKEY_TPM_TCTI overrides it. */
  tcti?: string;
  /** The persistent primary the device keys are made under (the tpm2-pkcs11 store's; `tpm2_ptool init` puts it at 0x81000001). */
  parent: string;
}

export const DEFAULT_TPM_PARENT = '0x81000001';

export interface AttestedKeyOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  tpm: TpmAttestConfig;
  link: LinkTarget;
  /** Enrollment: EK and AK go to the server (the AK is made if the device has none). Renewal: the recorded AK only. */
  mode: 'enroll' | 'renew';
  requestChallenge: (body: AttestEnrollChallengeRequest | AttestRenewChallengeRequest) => Promise<AttestChallenge>;
  /** Builds the CSR with the key's signer and the attestation JSON (the caller adds its own attributes). */
  makeCsr: (signer: Signer, attestationJson: string) => Promise<Buffer>;
}

export interface AttestedKey {
  ref: KeyRef;
  spki: Buffer;
  csr: Buffer;
  /**
   * Removes the key from the token when the enrollment or renewal it was
   * made for fails: this process's tpm2-pkcs11 never saw it, so the
   * keystore's delete() would not find it. Never throws.
   */
  discard(): Promise<void>;
}

const b64 = (b: Buffer): string => b.toString('base64');

function challengeBytes(c: AttestChallenge): { credentialBlob: Buffer; encryptedSecret: Buffer } {
  const ok = (s: unknown): s is string => typeof s === 'string' && s.length >= 4 && s.length <= 1024 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
  if (!ok(c.credentialBlob) || !ok(c.encryptedSecret) || typeof c.challengeId !== 'string' || !/^[0-9a-f-]{36}$/i.test(c.challengeId)) {
    throw new AgentError('SERVER_ERROR', 'the server sent an attestation challenge that is not one (challengeId, credentialBlob, encryptedSecret)');
  }
  return { credentialBlob: Buffer.from(c.credentialBlob, 'base64'), encryptedSecret: Buffer.from(c.encryptedSecret, 'base64') };
}

const WORK_PREFIX = 'tpm-work-';

/**
 * Runs `fn` with tpm2-tools in a fresh 0700 work dir of the state dir,
 * removed afterwards. Work dirs a killed process left (they may hold a key's
 * auth value) are removed first: callers hold the state lock, so no other
 * process is using one.
 */
export async function withTpmTools<T>(o: { stateDir: string; env: NodeJS.ProcessEnv; tcti?: string | undefined }, fn: (tools: TpmTools) => Promise<T>): Promise<T> {
  for (const name of await readdir(o.stateDir)) {
    if (name.startsWith(WORK_PREFIX)) await rm(join(o.stateDir, name), { recursive: true, force: true });
  }
  const cwd = await mkdtemp(join(o.stateDir, WORK_PREFIX));
  try {
    const tcti = o.env.LATCHKEY_TPM_TCTI || o.tcti;
    return await fn(createTpmTools({ cwd, env: o.env, ...(tcti ? { tcti } : {}) }));
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

/** The AK: the recorded one; at enrollment a new one when there is none (recorded before use). */
async function theAk(tools: TpmTools, o: AttestedKeyOptions, state: TpmState, ek: Ek): Promise<Ak> {
  const ak = await recordedAk(tools, state);
  if (ak) return ak;
  if (o.mode === 'renew') {
    throw new AgentError(
      'TPM',
      `the attestation key this device enrolled with is no longer in the TPM (${state.ak?.handle ?? 'no record in tpm.json'}), and the server accepts renewals certified by that key only; run \`latchkey unenroll\` and enroll again`,
    );
  }
  const made = await createAk(tools, ek);
  await writeTpmState(o.stateDir, { ...state, ek: { alg: ek.alg }, ak: { handle: handleHex(made.handle), publicBase64: b64(made.public) } });
  return made;
}

export async function createAttestedKey(o: AttestedKeyOptions): Promise<AttestedKey> {
  return withTpmTools({ stateDir: o.stateDir, env: o.env, tcti: o.tpm.tcti }, async (tools) => {
    const state = await readTpmState(o.stateDir);
    const record: CertifyRecord = {
      pending: async () => (await readTpmState(o.stateDir)).certifyHandle,
      setPending: async (h) => {
        const cur = await readTpmState(o.stateDir);
        if (h === undefined) delete cur.certifyHandle;
        else cur.certifyHandle = h;
        await writeTpmState(o.stateDir, cur);
      },
    };
    if (o.mode === 'renew' && !state.ek) throw new AgentError('TPM', 'this device is recorded as TPM-attested but tpm.json names no EK; run `latchkey unenroll` and enroll again');
    const ek = await loadEk(tools, state.ek?.alg);
    const ak = await theAk(tools, o, state, ek);
    const key = await createLinkedKey(tools, { parent: parseHandle(o.tpm.parent), ...o.link });
    const unlink = (t: TpmTools): Promise<unknown> => unlinkKey(t, o.link.tokenLabel, o.link.keyLabel(key.ref.id)).catch(() => undefined);
    /** For the caller, once this work dir is gone (the server refused the CSR): a work dir of its own. */
    const discard = async (): Promise<void> => {
      await withTpmTools({ stateDir: o.stateDir, env: o.env, tcti: o.tpm.tcti }, unlink).catch(() => undefined);
    };
    try {
      return { ref: key.ref, spki: key.spki, csr: await answer(tools, o, { ek, ak, key, record }), discard };
    } catch (e) {
      await unlink(tools);
      throw e;
    }
  });
}

async function answer(tools: TpmTools, o: AttestedKeyOptions, x: { ek: Ek; ak: Ak; key: TpmDeviceKey; record: CertifyRecord }): Promise<Buffer> {
  const { ek, ak, key, record } = x;
  const challenge = await o.requestChallenge(
    o.mode === 'enroll' ? { ekPublic: b64(ek.public), ...(ek.certificate ? { ekCertificate: b64(ek.certificate) } : {}), akPublic: b64(ak.public) } : { akPublic: b64(ak.public) },
  );
  const secret = await activateCredential(tools, { ekCtx: ek.ctx, akHandle: ak.handle, ...challengeBytes(challenge) });
  const certified = await certifyKey(tools, record, { parent: key.parent, auth: key.auth, akHandle: ak.handle, qualifyingData: secret });
  const attestation: CsrAttestation = {
    challengeId: challenge.challengeId,
    secret: b64(secret),
    keyPublic: b64(key.public),
    certifyInfo: b64(certified.certifyInfo),
    signature: b64(certified.signature),
  };
  const json = JSON.stringify(attestation);
  if (json.length > MAX_ATTESTATION_JSON) throw new AgentError('TPM', `the attestation is ${json.length} characters, more than the ${MAX_ATTESTATION_JSON} a CSR may carry`);
  return o.makeCsr(key.signer, json);
}

