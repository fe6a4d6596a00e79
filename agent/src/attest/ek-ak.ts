/**
 * The TPM's endorsement key (its public part and, when the manufacturer put
 * one in NV, its certificate) and the agent's attestation key: a restricted
 * ECDSA signing key made under the EK (tpm2_createak), persisted once at a
 * handle of the agent's range and recorded in tpm.json, so that every
 * renewal is certified by the AK the server bound at enrollment.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { AK_HANDLE_RANGE, freeHandle, handleHex, parseHandle } from './tpm-handles.js';
import type { TpmState } from './tpm-state.js';
import type { TpmTools } from './tpm-tools.js';
import { MAX_PUBLIC } from './tpm-wire.js';

/** TCG EK Credential Profile §2.2.1.5: NV indices of the EK certificates (low-range templates). */
export const EK_CERT_NV = { rsa: '0x01c00002', ecc: '0x01c0000a' } as const;
const MAX_EK_CERT = 6144;

export interface Ek {
  alg: 'rsa' | 'ecc';
  /** TPM2B_PUBLIC of the EK. */
  public: Buffer;
  /** DER, when the TPM holds one. */
  certificate?: Buffer;
  /** The EK's saved context in the work dir (for tpm2_createak / tpm2_activatecredential). */
  ctx: string;
}

const EK_HINT = 'the TPM must have its endorsement hierarchy enabled with an empty endorsement auth (`tpm2_changeauth -c e` clears it)';

/** The EK of the given algorithm, or RSA then ECC when none was chosen yet. */
export async function loadEk(tools: TpmTools, alg?: 'rsa' | 'ecc'): Promise<Ek> {
  const tries: ('rsa' | 'ecc')[] = alg ? [alg] : ['rsa', 'ecc'];
  let last: unknown;
  for (const a of tries) {
    try {
      await tools.run('tpm2_createek', ['-G', a, '-c', `ek-${a}.ctx`, '-u', `ek-${a}.pub`], { step: `TPM2_CreatePrimary (the ${a.toUpperCase()} endorsement key)`, hint: EK_HINT });
    } catch (e) {
      last = e;
      continue;
    }
    const pub = await readFile(join(tools.cwd, `ek-${a}.pub`));
    const nv = await tools.attempt('tpm2_nvread', [EK_CERT_NV[a]]);
    const certificate = nv.code === 0 && nv.stdout.length > 0 && nv.stdout.length <= MAX_EK_CERT && nv.stdout[0] === 0x30 ? derPrefix(nv.stdout) : undefined;
    return { alg: a, public: pub, ctx: `ek-${a}.ctx`, ...(certificate ? { certificate } : {}) };
  }
  throw last;
}

/** The DER element at the start of an NV index (NV areas may be larger than the certificate and padded). */
function derPrefix(b: Buffer): Buffer | undefined {
  if (b.length < 4 || b[0] !== 0x30) return undefined;
  const l = b[1]!;
  const total = l < 0x80 ? 2 + l : l === 0x81 ? 3 + b[2]! : l === 0x82 ? 4 + b.readUInt16BE(2) : -1;
  return total > 0 && total <= b.length ? Buffer.from(b.subarray(0, total)) : undefined;
}

export interface Ak {
  handle: number;
  /** TPM2B_PUBLIC of the AK. */
  public: Buffer;
}

/** The AK tpm.json names, checked to still be at its handle with the same public area; undefined if it is gone. */
export async function recordedAk(tools: TpmTools, state: TpmState): Promise<Ak | undefined> {
  if (!state.ak) return undefined;
  const handle = parseHandle(state.ak.handle);
  const r = await tools.attempt('tpm2_readpublic', ['-c', state.ak.handle, '-o', 'ak-now.pub']);
  if (r.code !== 0) return undefined;
  const now = await readFile(join(tools.cwd, 'ak-now.pub'));
  if (!now.equals(Buffer.from(state.ak.publicBase64, 'base64'))) return undefined;
  return { handle, public: now };
}

/** A new AK under the EK, persisted at a free handle of the agent's range. */
export async function createAk(tools: TpmTools, ek: Ek): Promise<Ak> {
  const step = { step: 'TPM2_Create (the attestation key)', hint: EK_HINT };
  await tools.run('tpm2_createak', ['-C', ek.ctx, '-c', 'ak.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak.pub', '-n', 'ak.name', '-r', 'ak.priv'], step);
  const pub = await readFile(join(tools.cwd, 'ak.pub'));
  if (pub.length > MAX_PUBLIC) throw new AgentError('TPM', `the TPM made an AK public area of ${pub.length} bytes`);
  let handle: number;
  try {
    handle = await freeHandle(tools, AK_HANDLE_RANGE);
  } catch (e) {
    throw new AgentError('TPM', `${(e as Error).message}: the agent keeps its attestation key there; remove stale keys with \`tpm2_evictcontrol -C o -c <handle>\``, {}, { cause: e });
  }
  await tools.run('tpm2_evictcontrol', ['-C', 'o', '-c', 'ak.ctx', handleHex(handle)], {
    step: 'TPM2_EvictControl (persisting the attestation key)',
    hint: 'the owner hierarchy must have an empty auth, or the TPM has no room for one more persistent object',
  });
  await tools.attempt('tpm2_flushcontext', ['ak.ctx']);
  return { handle, public: pub };
}
