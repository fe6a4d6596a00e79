/**
 * `tpm.json` in the state dir: what the agent keeps of its TPM between runs.
 * The AK (persistent handle and TPM2B_PUBLIC) is made once and used by every
 * attested renewal, as the server binds the device to it at enrollment; the
 * EK algorithm says which EK the server's credentials are made for; and
 * `certifyHandle` names a device key left at a persistent handle by a
 * certify that was cut short (removed at the next attempt). No secret here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { writeFileAtomic } from '../state/atomic.js';

export const TPM_STATE_FILE = 'tpm.json';

export interface TpmState {
  version: 1;
  ek?: { alg: 'rsa' | 'ecc' };
  ak?: { handle: string; publicBase64: string };
  /** A device key persisted for a certify and not yet removed. */
  certifyHandle?: string;
}

export async function readTpmState(stateDir: string): Promise<TpmState> {
  const path = join(stateDir, TPM_STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1 };
    throw e;
  }
  try {
    const s = JSON.parse(text) as TpmState;
    if (s.version !== 1) throw new Error('not version 1');
    return s;
  } catch (e) {
    throw new AgentError('STATE_CORRUPT', `${path} is not the agent's TPM record (${(e as Error).message}); an attested device cannot renew without its AK — run \`latchkey unenroll\` and enroll again`, {}, { cause: e });
  }
}

export async function writeTpmState(stateDir: string, s: TpmState): Promise<void> {
  await writeFileAtomic(join(stateDir, TPM_STATE_FILE), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
}
