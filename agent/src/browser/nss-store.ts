/**
 * Linux: an NSS database — the user's `~/.pki/nssdb` (Chromium, Chrome) and
 * each Firefox profile's own (browser.ts opens one store per profile) —
 * driven by certutil / pk12util / modutil from libnss3-tools.
 *
 * - The database is created if missing, without a password, as Chromium does.
 * - A key from the file or os keystore arrives as a PKCS#12 bundle imported
 *   with `pk12util -w P12_PASSWORD_FILE -k DB_PASSWORD_FILE`: both passwords
 *   in files, none in argv.
 * - A key on a PKCS#11 token (pkcs11 keystore) stays there: the token's module
 *   is registered in the database (`modutil -add "Latchkey token"`) and only
 *   the certificate is imported; NSS pairs them by CKA_ID (SHA-1 of the EC
 *   point, which the pkcs11 keystore sets on every key it makes). The browser then
 *   asks for the token PIN, and must see the module's own environment
 *   (SOFTHSM2_CONF, TPM2_PKCS11_TCTI, …).
 *
 * NSS gives every certificate with the same subject the same nickname, so a
 * renewed certificate cannot sit next to the old one under a name of its own:
 * the old entries (`certutil -F`: key and certificate; then `certutil -D` for
 * any certificate left without a key) go first, the new one is imported
 * right after, and the import is checked with `certutil -L -n NICKNAME -a`.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCertificate, pemDecodeAll } from '@latchkey/pki';
import { BrowserStoreError, type BrowserCredential, type CertStore, type CertStoreStatus, type Runner, type StoreEntry, checkDeviceId, commandFailed, entryLabel, entryOf, withPrivateDir, writeDeviceBundle, writePrivate } from './cert-store.js';

/** The module name the agent registers a token under in the NSS database. */
export const NSS_TOKEN_MODULE = 'Latchkey token';
/** How many same-nickname entries one removal goes through at most (normally one or two). */
const MAX_ENTRIES = 16;

export interface NssStoreOptions {
  /** The database directory, e.g. ~/.pki/nssdb. */
  dbDir: string;
  run: Runner;
  /** Where the private temp dirs go (default: the OS temp dir). */
  tmp?: string;
}

const passwordHint = (e: BrowserStoreError): BrowserStoreError =>
  /SEC_ERROR_BAD_PASSWORD|Incorrect password/i.test(e.message)
    ? new BrowserStoreError('COMMAND_FAILED', `${e.message}\n(the NSS database has a password; latchkey can only update a database without one, as Chromium creates it)`)
    : e;

export function createNssStore(o: NssStoreOptions): CertStore {
  const db = `sql:${o.dbDir}`;
  const must = async (what: string, cmd: string, args: string[], secrets: string[] = []): Promise<string> => {
    const r = await o.run(cmd, args);
    if (r.code !== 0) throw passwordHint(commandFailed(what, r, secrets));
    return r.stdout;
  };

  const ensureDb = async (): Promise<void> => {
    if (existsSync(join(o.dbDir, 'cert9.db'))) return;
    await mkdir(o.dbDir, { recursive: true, mode: 0o700 });
    await must(`creating the NSS database ${o.dbDir}`, 'certutil', ['-N', '-d', db, '--empty-password']);
  };

  /** Our entries' certificates, by nickname. */
  const certsOf = async (nickname: string): Promise<Buffer[]> => {
    const r = await o.run('certutil', ['-L', '-d', db, '-n', nickname, '-a']);
    if (r.code !== 0) return []; // "Could not find cert"
    return pemDecodeAll(r.stdout)
      .filter((b) => b.label === 'CERTIFICATE')
      .map((b) => b.der);
  };

  /** Deletes every entry named `nickname`: with its key (certutil -F) unless the key is on a token, then any certificate left. */
  const removeNickname = async (nickname: string, dbPasswordFile: string, withKeys: boolean): Promise<number> => {
    let n = 0;
    if (withKeys) {
      for (let i = 0; i < MAX_ENTRIES; i++) {
        if ((await o.run('certutil', ['-F', '-d', db, '-f', dbPasswordFile, '-n', nickname])).code !== 0) break;
        n++;
      }
    }
    for (let i = 0; i < MAX_ENTRIES; i++) {
      if ((await o.run('certutil', ['-D', '-d', db, '-n', nickname])).code !== 0) break;
      n++;
    }
    const left = await certsOf(nickname);
    if (left.length) throw new BrowserStoreError('COMMAND_FAILED', `${left.length} certificate(s) named "${nickname}" could not be removed from ${o.dbDir}`);
    return n;
  };

  const moduleLibrary = async (): Promise<string | undefined> => {
    const r = await o.run('modutil', ['-dbdir', db, '-list', NSS_TOKEN_MODULE]);
    if (r.code !== 0) return undefined;
    return /^Library file: (.+)$/m.exec(r.stdout)?.[1]?.trim();
  };

  const registerModule = async (module: string): Promise<void> => {
    const current = await moduleLibrary();
    if (current === module) return;
    if (current !== undefined) await must(`removing the old "${NSS_TOKEN_MODULE}" module`, 'modutil', ['-dbdir', db, '-delete', NSS_TOKEN_MODULE, '-force']);
    await must(`registering the PKCS#11 module ${module} in ${o.dbDir}`, 'modutil', ['-dbdir', db, '-add', NSS_TOKEN_MODULE, '-libfile', module, '-force']);
  };

  return {
    kind: 'nss',
    location: o.dbDir,

    async install(c: BrowserCredential): Promise<StoreEntry> {
      const nickname = entryLabel(checkDeviceId(c.deviceId));
      const der = parseCertificate(c.certPem).der;
      await ensureDb();
      return withPrivateDir(async (dir) => {
        const dbPassword = join(dir, 'db.pw');
        await writePrivate(dbPassword, ''); // the database's own password: none
        if (c.key.kind === 'token') {
          await registerModule(c.key.module);
          await removeNickname(nickname, dbPassword, false);
          const certFile = join(dir, 'device.der');
          await writePrivate(certFile, der);
          await must('certutil -A (importing the device certificate)', 'certutil', ['-A', '-d', db, '-n', nickname, '-t', ',,', '-i', certFile]);
        } else {
          const { bundle, password } = await writeDeviceBundle(dir, { der, keyPem: c.key.pem, friendlyName: nickname, profile: 'aes256-sha256' });
          const passwordFile = join(dir, 'bundle.pw');
          await writePrivate(passwordFile, password);
          await removeNickname(nickname, dbPassword, true);
          await must('pk12util -i (importing the device certificate and key)', 'pk12util', ['-i', bundle, '-d', db, '-w', passwordFile, '-k', dbPassword], [password]);
        }
        const found = await certsOf(nickname);
        if (found.length !== 1 || !found[0]!.equals(der)) {
          throw new BrowserStoreError('COMMAND_FAILED', `after the import, ${o.dbDir} holds ${found.length} certificate(s) named "${nickname}", not the device certificate alone`);
        }
        return entryOf(der, nickname);
      }, o.tmp);
    },

    async remove(deviceId: string, opts: { token?: boolean } = {}): Promise<number> {
      const nickname = entryLabel(checkDeviceId(deviceId));
      if (!existsSync(join(o.dbDir, 'cert9.db'))) return 0;
      const n = await withPrivateDir(async (dir) => {
        const dbPassword = join(dir, 'db.pw');
        await writePrivate(dbPassword, '');
        return removeNickname(nickname, dbPassword, !opts.token);
      }, o.tmp);
      if (opts.token && (await moduleLibrary()) !== undefined) {
        await must(`removing the "${NSS_TOKEN_MODULE}" module`, 'modutil', ['-dbdir', db, '-delete', NSS_TOKEN_MODULE, '-force']);
      }
      return n;
    },

    async status(deviceId: string): Promise<CertStoreStatus> {
      const nickname = entryLabel(checkDeviceId(deviceId));
      if (!existsSync(join(o.dbDir, 'cert9.db'))) return { location: o.dbDir, available: false, entries: [] };
      const entries = (await certsOf(nickname)).map((d) => entryOf(d, nickname));
      const tokenModule = await moduleLibrary();
      return { location: o.dbDir, available: true, entries, ...(tokenModule ? { tokenModule } : {}) };
    },
  };
}
