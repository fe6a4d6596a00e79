/**
 * `os` keystore, the default on desktops: the key is generated here with
 * node:crypto and kept only in the OS credential store (macOS Keychain,
 * Windows Credential Manager, the Secret Service on Linux: gnome-keyring,
 * KeePassXC…) through a SecretBackend: keytar or @napi-rs/keyring
 * (secret-backend.ts), the same logic on either. Service `latchkey:<namespace>:device-keys`,
 * account = key id, password = the PKCS#8 PEM. Nothing is written to disk by
 * us; the PEM is never logged nor put in an error message.
 *
 * Both bindings are native addons that need a D-Bus session on Linux (keytar
 * also libsecret): loaded on first use, so the agent starts without them and
 * only this store fails, with a KeystoreError that says what is missing.
 *
 * keytar 7.9.0 on Linux hides a locked keyring: getPassword returns null,
 * deletePassword returns false, and findCredentials crashes the process
 * (strdup of the NULL secret of a locked item). So every answer that could
 * mean "locked" is confirmed by a probe write, and list() probes first.
 */
import * as crypto from 'node:crypto';
import { nodeSigner } from '@latchkey/pki';
import { type DeviceKey, type DeviceKeyAlgorithm, type KeyRef, type KeyStore, type KeystoreErrorCode, KeystoreError, isKeyId, newKeyId } from './keystore.js';
import { type KeytarLike, type SecretBackend, type SecretBackendName, keytarBackend, loadSecretBackend } from './secret-backend.js';

export type { KeytarLike, SecretBackend } from './secret-backend.js';

const NAMESPACE = /^[A-Za-z0-9._-]{1,64}$/;
const PROBE_ACCOUNT = 'latchkey-probe';

/**
 * The service name. It ends with a fixed word because keytar on Windows lists
 * by prefix (`<service>*`): `latchkey:ns` would also list `latchkey:ns2`.
 * Each binding has its own (keytar keeps the name it always had, napi's is
 * `latchkey:<ns>:napi-device-keys`): keytar's findCredentials dereferences
 * the `account` attribute of every item it finds under its service, and an
 * item written by keyring-rs has none (it says `username`), so a napi item
 * under keytar's service crashes the process (SIGSEGV, seen with keytar 7.9.0).
 */
export const osKeystoreService = (namespace: string, binding: SecretBackendName = 'keytar'): string => `latchkey:${namespace}:${binding === 'keytar' ? '' : `${binding}-`}device-keys`;
const probeService = (namespace: string, binding: SecretBackendName): string => `latchkey:${namespace}:${binding === 'keytar' ? '' : `${binding}-`}probe`;

export interface KeytarErrorClass {
  code: KeystoreErrorCode;
  message: string;
}

/**
 * Sorts an error text from keytar (GLib/libsecret, Security.framework,
 * Win32 FormatMessage) or @napi-rs/keyring (keyring-rs over zbus, which
 * words the same D-Bus errors and says "unlock prompt was dismissed" for a
 * locked keyring) into a code and a message that says how to fix it.
 * The texts never contain secrets; they are quoted for diagnosis.
 */
export function classifyKeytarError(text: string, platform: NodeJS.Platform): KeytarErrorClass {
  const said = ` (${text.trim()})`;
  const fallback = { code: 'KEYSTORE_FAILED' as const, message: `the OS credential store failed${said}` };
  if (platform === 'darwin') {
    if (/User interaction is not allowed/i.test(text)) {
      return { code: 'KEYSTORE_LOCKED', message: `the macOS login keychain is locked and cannot ask for its password here (SSH or a launch daemon?)${said}: unlock it with \`security unlock-keychain\`, or run the agent as a LaunchAgent in the user's session` };
    }
    if (/passphrase you entered is not correct|canceled|cancelled/i.test(text)) {
      return { code: 'KEYSTORE_LOCKED', message: `access to the macOS keychain was refused${said}: allow latchkey when the keychain asks, then retry` };
    }
    if (/No keychain is available|keychain could not be found|default keychain/i.test(text)) {
      return { code: 'KEYSTORE_UNAVAILABLE', message: `no macOS keychain is available to this process${said}: run the agent as the logged-in user, or use --keystore file` };
    }
    return fallback;
  }
  if (platform === 'win32') {
    if (/logon session does not exist/i.test(text)) {
      return { code: 'KEYSTORE_UNAVAILABLE', message: `Windows Credential Manager is not available in this logon session (a service account without a loaded profile?)${said}: run the agent as the user, or use --keystore file` };
    }
    return fallback;
  }
  // Linux and the BSDs: libsecret over the D-Bus session bus.
  if (/Cannot autolaunch D-Bus|dbus-launch|DBUS_SESSION_BUS_ADDRESS/i.test(text)) {
    return { code: 'KEYSTORE_UNAVAILABLE', message: `no D-Bus session${said}: run the agent inside a desktop session (or under scripts/with-keyring.sh), or use --keystore file on headless hosts` };
  }
  if (/^Could not connect:|Address element|Unknown or unsupported transport|in address/i.test(text)) {
    return { code: 'KEYSTORE_UNAVAILABLE', message: `the D-Bus session bus in DBUS_SESSION_BUS_ADDRESS cannot be reached${said}: run the agent inside a live desktop session, or use --keystore file on headless hosts` };
  }
  if (/connection is closed/i.test(text)) {
    return { code: 'KEYSTORE_UNAVAILABLE', message: `the D-Bus session ended while the agent was running${said}: restart the agent in the new session` };
  }
  if (/org\.freedesktop\.secrets was not provided|ServiceUnknown|NameHasNoOwner/i.test(text)) {
    return { code: 'KEYSTORE_UNAVAILABLE', message: `no Secret Service provider on the D-Bus session${said}: install and start gnome-keyring (apt-get install gnome-keyring), or enable KeePassXC's Secret Service integration, or use --keystore file` };
  }
  if (/Object does not exist at path .*\/collection\//i.test(text)) {
    return { code: 'KEYSTORE_UNAVAILABLE', message: `the Secret Service has no default (login) keyring${said}: log in to the desktop session so it is created and unlocked, or start \`gnome-keyring-daemon --unlock\` with the keyring password on stdin` };
  }
  if (/locked collection|is locked|Cannot unlock|prompt/i.test(text)) {
    return { code: 'KEYSTORE_LOCKED', message: `the login keyring is locked${said}: unlock it (log in to the desktop session, or open Passwords and Keys / seahorse), then retry` };
  }
  return fallback;
}

const keytarError = (e: unknown): KeystoreError => {
  if (e instanceof KeystoreError) return e;
  const { code, message } = classifyKeytarError(e instanceof Error ? e.message : String(e), process.platform);
  return new KeystoreError(code, message, { cause: e });
};

export interface OsKeyStoreOptions {
  namespace: string;
  /** The binding; default: the one LATCHKEY_OS_KEYRING names in `env`, loaded on first use. */
  backend?: SecretBackend;
  /** Shorthand for `backend: keytarBackend(keytar)`. */
  keytar?: KeytarLike;
  env?: NodeJS.ProcessEnv;
}

export function createOsKeyStore(opts: OsKeyStoreOptions): KeyStore {
  if (!NAMESPACE.test(opts.namespace)) throw new KeystoreError('KEYSTORE_FAILED', `invalid os keystore namespace ${JSON.stringify(opts.namespace)}: use 1-64 letters, digits, '.', '_' or '-'`);
  const service = (k: SecretBackend): string => osKeystoreService(opts.namespace, k.name);
  const given = opts.backend ?? (opts.keytar ? keytarBackend(opts.keytar) : undefined);
  const backend = async (): Promise<SecretBackend> => given ?? loadSecretBackend(opts.env ?? process.env);

  /** Every credential-store call goes through here: its errors become KeystoreErrors. */
  const call = async <T>(f: (k: SecretBackend) => Promise<T>): Promise<T> => {
    try {
      return await f(await backend());
    } catch (e) {
      throw keytarError(e);
    }
  };

  /** A write and a delete: the only way to tell "locked" from "absent" on Linux. */
  const probe = async (): Promise<void> => {
    await call((k) => k.set(probeService(opts.namespace, k.name), PROBE_ACCOUNT, crypto.randomBytes(8).toString('hex')));
    await call((k) => k.delete(probeService(opts.namespace, k.name), PROBE_ACCOUNT));
  };

  const wrap = (ref: KeyRef, privateKey: crypto.KeyObject): DeviceKey => ({
    ref,
    spki: crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' }),
    signer: nodeSigner(privateKey),
    extractable: true,
    tlsKey: async () => ({ kind: 'pem', key: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string }),
  });

  const ours = (ref: KeyRef): boolean => ref.keystore === 'os' && isKeyId(ref.id);

  return {
    kind: 'os',
    check: probe,
    async generate(algorithm: DeviceKeyAlgorithm = 'P-256') {
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: algorithm });
      const ref: KeyRef = { keystore: 'os', id: newKeyId(crypto.randomBytes(12).toString('hex')) };
      await call((k) => k.set(service(k), ref.id, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string));
      return wrap(ref, privateKey);
    },
    async load(ref) {
      if (!ours(ref)) return undefined;
      const [pem, svc] = await call(async (k) => [await k.get(service(k), ref.id), service(k)] as const);
      if (pem === null) {
        await probe(); // a locked keyring also answers null
        return undefined;
      }
      let key: crypto.KeyObject;
      try {
        key = crypto.createPrivateKey({ key: pem, format: 'pem' });
        if (key.asymmetricKeyType !== 'ec') throw new Error('not an EC key');
      } catch (e) {
        // Neither the stored text nor the parser's message goes into ours.
        throw new KeystoreError('KEY_CORRUPT', `the key ${ref.id} in the OS credential store (service ${svc}) is not a valid EC PKCS#8 key: delete it and enroll again`, { cause: e instanceof Error ? new Error(e.message) : undefined });
      }
      return wrap(ref, key);
    },
    async delete(ref) {
      if (!ours(ref)) return;
      const gone = await call((k) => k.delete(service(k), ref.id));
      if (!gone) await probe(); // a locked keyring also answers false
    },
    async list() {
      await probe(); // findCredentials on a locked keyring crashes keytar 7.9.0
      const accounts = await call((k) => k.accounts(service(k)));
      return accounts
        .filter(isKeyId)
        .map((id) => ({ keystore: 'os' as const, id }));
    },
    async close() {},
  };
}
