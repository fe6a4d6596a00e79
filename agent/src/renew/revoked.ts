/**
 * The server said this device is revoked: the identity is worthless, so the
 * agent deletes its key and certificate, and keeps only a record that says
 * so (`latchkey status` → revoked, exit 3) until the device is enrolled again.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { removeBrowserCertificate } from '../browser/browser.js';
import { openKeyStore } from '../keystore/open-keystore.js';
import { readIdentity, updateStatusFile } from '../state/identity.js';
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
