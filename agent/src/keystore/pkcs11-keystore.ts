/**
 * `pkcs11` keystore: the device key is generated inside a PKCS#11 token (a
 * TPM through tpm2-pkcs11, a smart card, SoftHSM in tests), sensitive and
 * non-extractable. The agent signs its CSRs through node-webcrypto-p11 and
 * node:tls signs TLS handshakes through OpenSSL's `pkcs11` engine.
 *
 * The parts, one concern each:
 * - pkcs11-module.ts: the module, loaded once per process and never finalized;
 *   PKCS#11 constants and error helpers.
 * - pkcs11-token.ts: finding the token, the session and the login.
 * - pkcs11-objects.ts: the key pair objects, their labels and CKA_ID.
 * - pkcs11-engine.ts: the key as node:tls takes it (one module per process).
 * This file composes them into the KeyStore interface.
 *
 * `list()` returns the private keys whose label has this store's namespace
 * prefix. close() closes only this store's session: C_Logout or C_Finalize
 * would end every session of the process, the OpenSSL engine's included.
 */
import * as crypto from 'node:crypto';
import type { Crypto, CryptoKey as P11CryptoKey } from 'node-webcrypto-p11';
import { webCryptoSigner } from '@latchkey/pki';
import { type DeviceKey, type DeviceKeyAlgorithm, type KeyRef, type KeyStore, KeystoreError, isKeyId, newKeyId, pkcs11KeyLabel } from './keystore.js';
import { engineTlsKey } from './pkcs11-engine.js';
import { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, type P11Object, pkcs11Message } from './pkcs11-module.js';
import { adoptLinkedKeyId, findObjects, generateKeyPair, keyOf, listLabelledKeyIds } from './pkcs11-objects.js';
import { type OpenToken, type TokenSelector, closeQuietly, openToken, tokenName } from './pkcs11-token.js';

export interface Pkcs11KeyStoreOptions extends TokenSelector {
  /** The user PIN; asked for when the store first opens its session. Never logged. */
  pin: () => Promise<string>;
  /** Keys of other namespaces on the same token are invisible to this store. */
  namespace: string;
  /** Path of OpenSSL's pkcs11 engine; by default it is looked for in the usual engines-3 directories. */
  engine?: string;
}

/** The WebCrypto side of a pkcs11 DeviceKey, for tests and diagnostics. */
const webCryptoKeys = new WeakMap<DeviceKey, { crypto: Crypto; privateKey: P11CryptoKey; publicKey: P11CryptoKey }>();
export function pkcs11WebCryptoKey(k: DeviceKey): { crypto: Crypto; privateKey: P11CryptoKey; publicKey: P11CryptoKey } | undefined {
  return webCryptoKeys.get(k);
}

export function createPkcs11KeyStore(opts: Pkcs11KeyStoreOptions): KeyStore {
  const prefix = pkcs11KeyLabel(opts.namespace, '');
  const labelOf = (id: string): string => pkcs11KeyLabel(opts.namespace, id);
  const name = tokenName(opts);
  let state: OpenToken | undefined;
  let opening: Promise<OpenToken> | undefined;

  const open = async (): Promise<OpenToken> => {
    if (state) return state;
    opening ??= openToken(opts, opts.pin).finally(() => {
      opening = undefined;
    });
    state = await opening;
    return state;
  };

  const failed = (what: string, e: unknown): KeystoreError => (e instanceof KeystoreError ? e : new KeystoreError('KEYSTORE_FAILED', `${what} on ${name} failed (${pkcs11Message(e)})`, { cause: e }));

  const wrap = async (st: OpenToken, ref: KeyRef, privObj: P11Object, pubObj: P11Object): Promise<DeviceKey> => {
    const privateKey = await keyOf(st, privObj);
    const publicKey = await keyOf(st, pubObj);
    const spki = Buffer.from(await st.crypto.subtle.exportKey('spki', publicKey));
    const ckaId = privObj.getAttribute({ id: null }).id as Buffer;
    const key: DeviceKey = {
      ref,
      spki,
      signer: webCryptoSigner(st.crypto as unknown as Parameters<typeof webCryptoSigner>[0], privateKey as unknown as crypto.webcrypto.CryptoKey, spki),
      extractable: false,
      tlsKey: async () => {
        await open(); // the engine's session rides on this store's login
        return engineTlsKey({ module: opts.module, ...(opts.engine !== undefined ? { engine: opts.engine } : {}), tokenLabel: st.tokenLabel, tokenSerial: st.tokenSerial, ckaId, tokenName: name });
      },
    };
    webCryptoKeys.set(key, { crypto: st.crypto, privateKey, publicKey });
    return key;
  };

  const owns = (ref: KeyRef): boolean => ref.keystore === 'pkcs11' && isKeyId(ref.id);

  return {
    kind: 'pkcs11',
    async check() {
      await open();
    },
    async generate(algorithm: DeviceKeyAlgorithm = 'P-256') {
      const st = await open();
      const ref: KeyRef = { keystore: 'pkcs11', id: newKeyId(crypto.randomBytes(12).toString('hex')) };
      const { priv, pub } = await generateKeyPair(st, algorithm, labelOf(ref.id), name, failed);
      return wrap(st, ref, priv, pub);
    },
    async load(ref) {
      if (!owns(ref)) return undefined;
      const st = await open();
      try {
        const label = labelOf(ref.id);
        const [priv] = findObjects(st, CKO_PRIVATE_KEY, label);
        if (!priv) return undefined;
        const [pub] = findObjects(st, CKO_PUBLIC_KEY, label);
        if (!pub) throw new KeystoreError('KEY_CORRUPT', `the key ${ref.id} on ${name} has lost its public key object; delete it and enroll again`);
        adoptLinkedKeyId(priv, pub, Buffer.from(await st.crypto.subtle.exportKey('spki', await keyOf(st, pub))));
        return await wrap(st, ref, priv, pub);
      } catch (e) {
        throw failed(`loading the key ${ref.id}`, e);
      }
    },
    async delete(ref) {
      if (!owns(ref)) return;
      const st = await open();
      try {
        const label = labelOf(ref.id);
        for (const o of [...findObjects(st, CKO_PRIVATE_KEY, label), ...findObjects(st, CKO_PUBLIC_KEY, label)]) o.destroy();
      } catch (e) {
        throw failed(`deleting the key ${ref.id}`, e);
      }
    },
    async list() {
      const st = await open();
      try {
        return listLabelledKeyIds(st, prefix, isKeyId).map((id): KeyRef => ({ keystore: 'pkcs11', id }));
      } catch (e) {
        throw failed('listing keys', e);
      }
    },
    async close() {
      const st = state;
      state = undefined;
      if (st) closeQuietly(st.session);
    },
  };
}
