/**
 * `file` keystore, for headless hosts without a credential store or token:
 * each key is a PKCS#8 file encrypted with AES-256 (scrypt-derived key, by
 * OpenSSL's PBES2) in `<dir>`, mode 0600, written atomically. The passphrase
 * comes from the caller (LATCHKEY_KEY_PASSPHRASE, a file named in config, or
 * one the agent generated in the state dir); it is never logged.
 */
import * as crypto from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeSigner } from '@latchkey/pki';
import { writeFileAtomic } from '../state/atomic.js';
import { type DeviceKey, type DeviceKeyAlgorithm, type KeyRef, type KeyStore, KeystoreError, isKeyId, newKeyId } from './keystore.js';

const SUFFIX = '.key.pem';

export function createFileKeyStore(opts: { dir: string; passphrase: () => Promise<string> }): KeyStore {
  const file = (id: string): string => join(opts.dir, `${id}${SUFFIX}`);

  const wrap = (ref: KeyRef, privateKey: crypto.KeyObject): DeviceKey => {
    const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    return {
      ref,
      spki,
      signer: nodeSigner(privateKey),
      extractable: true,
      tlsKey: async () => ({ kind: 'pem', key: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string }),
    };
  };

  return {
    kind: 'file',
    async check() {
      try {
        await mkdir(opts.dir, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the file keystore directory ${opts.dir} cannot be created: ${(e as Error).message}`, { cause: e });
      }
      const p = await opts.passphrase();
      if (p.length < 12) throw new KeystoreError('KEYSTORE_UNAVAILABLE', 'the file keystore passphrase is shorter than 12 characters; set a longer LATCHKEY_KEY_PASSPHRASE');
    },
    async generate(algorithm: DeviceKeyAlgorithm = 'P-256') {
      await this.check();
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: algorithm });
      const ref: KeyRef = { keystore: 'file', id: newKeyId(crypto.randomBytes(12).toString('hex')) };
      const pem = privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: await opts.passphrase() });
      await writeFileAtomic(file(ref.id), pem, { mode: 0o600 });
      return wrap(ref, privateKey);
    },
    async load(ref) {
      if (ref.keystore !== 'file' || !isKeyId(ref.id)) return undefined;
      let pem: string;
      try {
        pem = await readFile(file(ref.id), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new KeystoreError('KEYSTORE_FAILED', `the key file ${file(ref.id)} cannot be read: ${(e as Error).message}`, { cause: e });
      }
      let key: crypto.KeyObject;
      try {
        key = crypto.createPrivateKey({ key: pem, format: 'pem', passphrase: await opts.passphrase() });
      } catch (e) {
        throw new KeystoreError('KEY_CORRUPT', `the key file ${file(ref.id)} cannot be decrypted: wrong passphrase (LATCHKEY_KEY_PASSPHRASE) or a damaged file`, { cause: e });
      }
      return wrap(ref, key);
    },
    async delete(ref) {
      if (ref.keystore !== 'file' || !isKeyId(ref.id)) return;
      await rm(file(ref.id), { force: true });
    },
    async list() {
      let names: string[];
      try {
        names = await readdir(opts.dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
      return names
        .filter((n) => n.endsWith(SUFFIX))
        .map((n) => n.slice(0, -SUFFIX.length))
        .filter(isKeyId)
        .map((id) => ({ keystore: 'file' as const, id }));
    },
    async close() {},
  };
}
