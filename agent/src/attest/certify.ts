/**
 * TPM2_Certify of the device key by the AK, with the server's secret as
 * qualifyingData. tpm2_send carries one raw command and needs persistent
 * handles, so the key is persisted at a handle of the agent's range for the
 * moment of the certify and removed again, also when the certify fails. The
 * handle is recorded (tpm.json) before it is taken, so a process killed in
 * between leaves a record and the next attempt removes the stale key first.
 * The key's auth travels in the command's password session, on stdin.
 */
import { AgentError } from '../errors.js';
import { CERTIFY_HANDLE_RANGE, evictQuietly, freeHandle, handleHex, parseHandle } from './tpm-handles.js';
import type { TpmTools } from './tpm-tools.js';
import { type CertifyResponse, certifyCommand, parseCertifyResponse, rcText } from './tpm-wire.js';

export interface CertifyRecord {
  /** Called with the handle before the key is persisted there, and with undefined once it is removed. */
  setPending(handle: string | undefined): Promise<void>;
  pending(): Promise<string | undefined>;
}

/** Removes a key an interrupted certify left persistent. */
export async function cleanStaleCertify(tools: TpmTools, rec: CertifyRecord): Promise<void> {
  const stale = await rec.pending();
  if (stale === undefined) return;
  await evictQuietly(tools, parseHandle(stale));
  await rec.setPending(undefined);
}

export async function certifyKey(tools: TpmTools, rec: CertifyRecord, o: { parent: number; auth: string; akHandle: number; qualifyingData: Buffer }): Promise<CertifyResponse> {
  await cleanStaleCertify(tools, rec);
  const secrets = [o.auth];
  const load = { step: 'TPM2_Load (the device key, for TPM2_Certify)', hint: 'try again; if it persists, enroll again', secrets };
  await tools.run('tpm2_load', ['-C', handleHex(o.parent), '-u', 'key.pub', '-r', 'key.priv', '-c', 'certify-key.ctx'], load);
  let handle: number;
  try {
    handle = await freeHandle(tools, CERTIFY_HANDLE_RANGE);
  } catch (e) {
    await tools.attempt('tpm2_flushcontext', ['certify-key.ctx']);
    throw new AgentError('TPM', `${(e as Error).message}; remove stale keys there with \`tpm2_evictcontrol -C o -c <handle>\``, {}, { cause: e });
  }
  await rec.setPending(handleHex(handle));
  try {
    await tools.run('tpm2_evictcontrol', ['-C', 'o', '-c', 'certify-key.ctx', handleHex(handle)], {
      step: 'TPM2_EvictControl (the device key, for TPM2_Certify)',
      hint: 'the owner hierarchy must have an empty auth, or the TPM has no room for one more persistent object',
      secrets,
    });
    await tools.attempt('tpm2_flushcontext', ['certify-key.ctx']);
    const cmd = certifyCommand({ objectHandle: handle, objectAuth: Buffer.from(o.auth, 'utf8'), signHandle: o.akHandle, signAuth: Buffer.alloc(0), qualifyingData: o.qualifyingData });
    const out = await tools.run('tpm2_send', [], { step: 'TPM2_Certify', hint: 'try again; if it persists, enroll again', secrets }, cmd);
    const r = parseCertifyResponse(out);
    if ('rc' in r) throw new AgentError('TPM', `the TPM refused TPM2_Certify (${rcText(r.rc)}); try again, and if it persists run \`latchkey unenroll\` and enroll again`);
    return r;
  } finally {
    await evictQuietly(tools, handle);
    await rec.setPending(undefined);
  }
}
