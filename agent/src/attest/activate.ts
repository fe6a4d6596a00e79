/**
 * TPM2_ActivateCredential (Part 3 §12.5): the server's credential, made for
 * the AK's Name and encrypted to the EK, opens only inside this TPM. The EK
 * is used through a policy session satisfied by TPM2_PolicySecret with the
 * endorsement hierarchy (the EK's standard policy); the session is flushed
 * whatever happens.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handleHex } from './tpm-handles.js';
import type { TpmTools } from './tpm-tools.js';
import { credentialFile } from './tpm-wire.js';

const MAX_SECRET = 64;

export async function activateCredential(tools: TpmTools, o: { ekCtx: string; akHandle: number; credentialBlob: Buffer; encryptedSecret: Buffer }): Promise<Buffer> {
  await writeFile(join(tools.cwd, 'cred.bin'), credentialFile(o.credentialBlob, o.encryptedSecret), { mode: 0o600 });
  const hint = 'the credential was not made for this TPM and attestation key; ask for a new challenge (run the command again), and if it persists run `latchkey unenroll` and enroll again';
  await tools.run('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx'], { step: 'TPM2_StartAuthSession', hint: 'the TPM may be out of sessions; try again' });
  try {
    await tools.run('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e'], { step: 'TPM2_PolicySecret (endorsement hierarchy)', hint: 'the endorsement hierarchy must have an empty auth' });
    await tools.run('tpm2_activatecredential', ['-c', handleHex(o.akHandle), '-C', o.ekCtx, '-i', 'cred.bin', '-o', 'secret.bin', '-P', 'session:session.ctx'], { step: 'TPM2_ActivateCredential', hint });
  } finally {
    await tools.attempt('tpm2_flushcontext', ['session.ctx']);
  }
  const secret = await readFile(join(tools.cwd, 'secret.bin'));
  if (secret.length === 0 || secret.length > MAX_SECRET) throw new Error(`TPM2_ActivateCredential returned a ${secret.length}-byte secret`);
  return secret;
}
