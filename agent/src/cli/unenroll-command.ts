/**
 * `latchkey unenroll`: delete this device's key and identity (or what an
 * unfinished enrollment or a revocation left behind).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readPendingEnroll, removePendingEnroll } from '../enroll-pending.js';
import { forgetPkcs11Pin, openKeyStore } from '../keystore/open-keystore.js';
import { readIdentity, readStatusFile } from '../state/identity.js';
import { acquireStateLock } from '../state/lock.js';
import { STATE_FILES } from '../state/paths.js';

export async function unenrollCommand(stateDir: string, env: NodeJS.ProcessEnv, out: (line: string) => void): Promise<number> {
  const release = await acquireStateLock(stateDir);
  try {
    const id = await readIdentity(stateDir);
    if (!id) {
      // An enrollment that never got its answer: its key and request go too.
      const pending = await readPendingEnroll(stateDir);
      if (pending) {
        const store = await openKeyStore(pending.keystore, { stateDir, env });
        try {
          await store.delete(pending.key);
        } finally {
          await store.close();
        }
        await removePendingEnroll(stateDir);
        out(`not enrolled; removed the key and request of an unfinished enrollment with ${pending.server}`);
        return 0;
      }
      // A revoked identity leaves only its record (status: revoked); unenroll clears that too.
      const st = await readStatusFile(stateDir);
      if (st?.state === 'revoked') {
        await rm(join(stateDir, STATE_FILES.status), { force: true });
        out(`not enrolled; removed the record of revoked device ${st.deviceId ?? ''}`.trimEnd());
        return 0;
      }
      out('not enrolled; nothing to do');
      return 0;
    }
    const store = await openKeyStore(id.keystore, { stateDir, env });
    try {
      for (const ref of await store.list()) await store.delete(ref);
    } finally {
      await store.close();
    }
    if (id.keystore.kind === 'pkcs11') await forgetPkcs11Pin({ stateDir, env }, id.keystore);
    await (await import('../browser/browser.js')).removeBrowserCertificate(stateDir, env, id);
    await rm(join(stateDir, STATE_FILES.identity), { force: true });
    await rm(join(stateDir, STATE_FILES.status), { force: true });
    out(`unenrolled device ${id.deviceId}: key and certificate deleted from this device (revoke it on the server with \`latchkey-server devices revoke ${id.deviceId}\`)`);
    return 0;
  } finally {
    await release();
  }
}
