/**
 * macOS: the user's login keychain, through `security` (Safari, Chrome and
 * Edge use it for client certificates).
 *
 * - Import: `security import BUNDLE -k LOGIN_KEYCHAIN -f pkcs12 -x -P PASSWORD`;
 *   `-x` makes the private key non-extractable. The bundle uses the
 *   'legacy-3des-sha1' PKCS#12 profile (pkcs12.ts says why).
 *   `security import` takes the bundle password only in argv (`-P`) or from a
 *   GUI prompt — no file, no stdin — so here, and only here, a secret is in
 *   argv: a random single-use password of a bundle that exists for the
 *   duration of this one command in a 0700 directory and is deleted after.
 * - No `-T`: the first browser that uses the key asks the user once
 *   ("Always Allow").
 * - Ours = certificates whose SAN names this device (`find-certificate -a -p`
 *   lists them as PEM); the new identity is imported first, then the older
 *   ones are removed by SHA-1 with `delete-identity -Z` (certificate and key),
 *   or `delete-certificate -Z` for a certificate left without its key.
 * - A key on a PKCS#11 token cannot be put in the keychain: not supported.
 */
import { parseCertificate, pemDecodeAll } from '@latchkey/pki';
import { deviceIdOf } from '../identity-fns.js';
import { BrowserStoreError, type BrowserCredential, type CertStore, type CertStoreStatus, type Runner, type StoreEntry, checkDeviceId, commandFailed, entryLabel, entryOf, withPrivateDir, writeDeviceBundle } from './cert-store.js';

export interface MacosStoreOptions {
  /** ~/Library/Keychains/login.keychain-db */
  keychain: string;
  run: Runner;
  tmp?: string;
}

export const TOKEN_UNSUPPORTED_MACOS =
  'the device key is on a PKCS#11 token (keystore pkcs11) and cannot leave it, and the macOS keychain only takes keys it imports: putting this identity in the keychain is not supported. Firefox can use the token directly (Settings → Privacy & Security → Security Devices → Load, with the same PKCS#11 module)';

export function createMacosStore(o: MacosStoreOptions): CertStore {
  /** Certificates in the keychain that name this device. */
  const ours = async (deviceId: string): Promise<StoreEntry[]> => {
    const r = await o.run('security', ['find-certificate', '-a', '-p', o.keychain]);
    if (r.code !== 0) throw commandFailed(`security find-certificate (listing ${o.keychain})`, r);
    const found: StoreEntry[] = [];
    for (const b of pemDecodeAll(r.stdout)) {
      if (b.label !== 'CERTIFICATE') continue;
      try {
        if (deviceIdOf(parseCertificate(b.der)) === deviceId) found.push(entryOf(b.der, entryLabel(deviceId)));
      } catch {
        // someone else's certificate our parser does not take: not ours either
      }
    }
    return found;
  };

  const removeEntries = async (entries: StoreEntry[]): Promise<number> => {
    for (const e of entries) {
      const r = await o.run('security', ['delete-identity', '-Z', e.sha1, o.keychain]);
      if (r.code === 0) continue;
      const c = await o.run('security', ['delete-certificate', '-Z', e.sha1, o.keychain]);
      if (c.code !== 0) throw commandFailed(`security delete-certificate -Z ${e.sha1}`, c);
    }
    return entries.length;
  };

  return {
    kind: 'macos',
    location: o.keychain,

    async install(c: BrowserCredential): Promise<StoreEntry> {
      const label = entryLabel(checkDeviceId(c.deviceId));
      if (c.key.kind === 'token') throw new BrowserStoreError('UNSUPPORTED', TOKEN_UNSUPPORTED_MACOS);
      const der = parseCertificate(c.certPem).der;
      const entry = entryOf(der, label);
      const pem = c.key.pem;
      await withPrivateDir(async (dir) => {
        const { bundle, password } = await writeDeviceBundle(dir, { der, keyPem: pem, friendlyName: label, profile: 'legacy-3des-sha1' });
        const r = await o.run('security', ['import', bundle, '-k', o.keychain, '-f', 'pkcs12', '-x', '-P', password]);
        if (r.code !== 0) throw commandFailed('security import', r, [password]);
      }, o.tmp);
      const now = await ours(c.deviceId);
      if (!now.some((e) => e.sha1 === entry.sha1)) throw new BrowserStoreError('COMMAND_FAILED', `security import succeeded but ${o.keychain} does not hold the device certificate ${entry.sha1}`);
      await removeEntries(now.filter((e) => e.sha1 !== entry.sha1));
      return entry;
    },

    async remove(deviceId: string): Promise<number> {
      return removeEntries(await ours(checkDeviceId(deviceId)));
    },

    async status(deviceId: string): Promise<CertStoreStatus> {
      return { location: o.keychain, available: true, entries: await ours(checkDeviceId(deviceId)) };
    },
  };
}
