/**
 * The server said this device is revoked: the identity is worthless, so the
 * agent deletes its key and certificate, and keeps only a record that says
 * so (`latchkey status` → revoked, exit 3) until the device is enrolled again.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { removeBrowserCertificate } from '../browser/browser.js';
import type { AgentError } from '../errors.js';
import { openKeyStore } from '../keystore/open-keystore.js';
import { parseCertificate } from '@latchkey/pki';
import { userOf } from '../identity-fns.js';
import { type Identity, readIdentity, updateStatusFile } from '../state/identity.js';
import { acquireStateLock } from '../state/lock.js';
import { STATE_FILES } from '../state/paths.js';

export async function forgetRevokedIdentity(stateDir: string, env: NodeJS.ProcessEnv, reason: string, at: string): Promise<void> {
  const release = await acquireStateLock(stateDir);
  try {
    const id = await readIdentity(stateDir);
    if (!id) return;
    // The record first: a crash after it still reports revoked, and a key left behind is an orphan.
    await updateStatusFile(stateDir, {
      state: 'revoked',
      deviceId: id.deviceId,
      server: id.server,
      revokedAt: at,
      revocationReason: reason,
      lastError: { at, code: 'DEVICE_REVOKED', message: `the server revoked this device (${reason})` },
      nextRenewalAt: undefined,
    });
    await rm(join(stateDir, STATE_FILES.identity), { force: true });
    const store = await openKeyStore(id.keystore, { stateDir, env }).catch(() => undefined);
    if (store) {
      try {
        for (const ref of await store.list()) await store.delete(ref).catch(() => undefined);
      } finally {
        await store.close().catch(() => undefined);
      }
    }
    // `latchkey browser enable`: the revoked certificate leaves the browser's store too. Never throws.
    await removeBrowserCertificate(stateDir, env, id);
  } finally {
    await release();
  }
}

export type Refusal = 'revoked' | 'reenroll-required';

/**
 * A renewal the server refused for good (REENROLL_REQUIRED): the status file
 * says so, and when the server said DEVICE_REVOKED the identity is forgotten
 * (`onRevoked`, normally forgetRevokedIdentity). The one path for the daemon
 * (`latchkey run`) and a one-shot `latchkey renew`. Returns what was recorded,
 * or undefined for any other error (a transient one, retried).
 */
export async function recordRefusedRenewal(stateDir: string, err: AgentError, at: string, onRevoked?: (reason: string, at: string) => Promise<void>): Promise<Refusal | undefined> {
  // Only the server's answer (it has an HTTP status) changes the record; a refusal we derived from the record does not.
  if (err.code !== 'REENROLL_REQUIRED' || err.details.status === undefined) return undefined;
  const state: Refusal = err.details.serverCode === 'DEVICE_REVOKED' ? 'revoked' : 'reenroll-required';
  await updateStatusFile(stateDir, { state, lastError: { at, code: err.details.serverCode ?? err.code, message: err.message } });
  if (state === 'revoked') await onRevoked?.('unspecified', at);
  return state;
}

/**
 * How to enroll again after the server refused to renew (past the grace
 * window, superseded, unknown): a device bound to a person (its certificate
 * names them, see identity-fns `userOf`) signs in again with `--sso`; any
 * other needs a new token. With the identity at hand, the command is complete.
 */
export function enrollAgainHint(id: Pick<Identity, 'server' | 'rootFingerprint' | 'certPem'> | undefined): string {
  if (!id) return 'Enroll it again: `latchkey unenroll && latchkey enroll --server URL --token T` (or --sso to sign in)';
  const base = `latchkey unenroll && latchkey enroll --server ${id.server} --ca-fingerprint ${id.rootFingerprint}`;
  const user = userOf(parseCertificate(id.certPem));
  return user ? `Sign in again as ${user} to enroll it: \`${base} --sso\`` : `Enroll it again with a new token: \`${base} --token T\``;
}

/** What to tell the user after recordRefusedRenewal; `id` is the identity as it was before (for the reenroll hint). */
export function refusalMessage(state: Refusal, err: AgentError, id?: Pick<Identity, 'server' | 'rootFingerprint' | 'certPem'>): string {
  return state === 'revoked'
    ? `THIS DEVICE HAS BEEN REVOKED; renewal stopped. ${err.message}. Its key and certificate are deleted from this device. Enroll it again with a new token: \`latchkey enroll --server URL --token T\``
    : `THIS DEVICE MUST BE ENROLLED AGAIN; renewal stopped. ${err.message}. ${enrollAgainHint(id)}`;
}
