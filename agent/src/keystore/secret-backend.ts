/**
 * The OS credential store as the `os` keystore uses it: get / set / delete a
 * secret by service + account, and list the accounts of a service. Two
 * bindings implement it, so the same keystore logic (os-keystore.ts) runs on
 * either:
 *
 * - `keytar` (atom/node-keytar 7.9.0): built from source at install, the
 *   default where it loads (Linux builds here).
 * - `napi` (@napi-rs/keyring, the Rust keyring crate): prebuilt binaries on
 *   npm for every platform, so a cross-built agent (win-x64, darwin-*,
 *   linux-arm64) has a working `os` keystore.
 *
 * LATCHKEY_OS_KEYRING=keytar|napi chooses; unset, keytar is used where it
 * loads, else napi. Both are native addons loaded on first use through
 * literal imports, so the single-executable bundle carries them.
 *
 * On Linux the napi binding is pinned to the Secret Service: the keyring
 * crate otherwise falls back to the kernel keyring (keyutils), which forgets
 * the key at reboot and would hide a missing gnome-keyring behind a store
 * that seems to work.
 *
 * The two bindings write different Secret Service items (keytar: attributes
 * `service`, `account` under the org.freedesktop.Secret.Generic schema;
 * keyring-rs: `service`, `username`, no schema), and keytar crashes on an
 * item of the other kind under its service, so each binding has its own
 * service name (osKeystoreService): a key stored by one is not seen by the
 * other, and switching binding on a machine means enrolling again
 * (os-keystore.test.ts shows both).
 */
import { KeystoreError } from './keystore.js';

export type SecretBackendName = 'keytar' | 'napi';
export const SECRET_BACKENDS: readonly SecretBackendName[] = ['keytar', 'napi'];

export interface SecretBackend {
  readonly name: SecretBackendName;
  get(service: string, account: string): Promise<string | null>;
  set(service: string, account: string, secret: string): Promise<void>;
  /** False when there was nothing to delete (keytar also answers false when the keyring is locked). */
  delete(service: string, account: string): Promise<boolean>;
  /** The accounts stored under `service`. */
  accounts(service: string): Promise<string[]>;
}

/** The part of keytar this store uses (injectable for the no-addon case). */
export interface KeytarLike {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
  findCredentials(service: string): Promise<Array<{ account: string; password: string }>>;
}

export function keytarBackend(k: KeytarLike): SecretBackend {
  return {
    name: 'keytar',
    get: (s, a) => k.getPassword(s, a),
    set: (s, a, p) => k.setPassword(s, a, p),
    delete: (s, a) => k.deletePassword(s, a),
    accounts: async (s) => (await k.findCredentials(s)).map((c) => c.account),
  };
}

/** The part of @napi-rs/keyring this store uses. */
export interface NapiKeyringLike {
  AsyncEntry: new (service: string, username: string, options?: { linux?: { store?: 'secret-service' | 'keyutils' } }) => {
    getPassword(): Promise<string | null>;
    setPassword(password: string): Promise<void>;
    deletePassword(): Promise<boolean>;
  };
  findCredentialsAsync(service: string): Promise<Array<{ account: string; password: string }>>;
}

export function napiBackend(m: NapiKeyringLike): SecretBackend {
  // Ignored off Linux; on Linux, no silent fallback to the kernel keyring.
  const options = { linux: { store: 'secret-service' as const } };
  const entry = (s: string, a: string) => new m.AsyncEntry(s, a, options);
  return {
    name: 'napi',
    get: (s, a) => entry(s, a).getPassword(),
    set: (s, a, p) => entry(s, a).setPassword(p),
    delete: (s, a) => entry(s, a).deletePassword(),
    // Lists through the Secret Service / Keychain / Credential Manager search by service.
    accounts: async (s) => (await m.findCredentialsAsync(s)).map((c) => c.account),
  };
}

/** LATCHKEY_OS_KEYRING, checked: undefined when unset (auto). */
export function chosenBackend(env: NodeJS.ProcessEnv): SecretBackendName | undefined {
  const v = env.LATCHKEY_OS_KEYRING?.trim();
  if (!v) return undefined;
  if ((SECRET_BACKENDS as readonly string[]).includes(v)) return v as SecretBackendName;
  throw new KeystoreError('KEYSTORE_FAILED', `LATCHKEY_OS_KEYRING=${JSON.stringify(v.slice(0, 40))} is not a keyring binding: use keytar or napi (or leave it unset to use keytar where it loads, else napi)`);
}

const firstLine = (e: unknown): string => ((e as Error).message ?? String(e)).split('\n')[0] ?? '';

// Literal imports: esbuild bundles both, and rewrites their `.node` requires into SEA assets.
async function importKeytar(): Promise<SecretBackend> {
  const m = (await import('keytar')) as unknown as { default?: KeytarLike } & KeytarLike;
  return keytarBackend(m.default ?? m);
}
async function importNapi(): Promise<SecretBackend> {
  const m = (await import('@napi-rs/keyring')) as unknown as { default?: NapiKeyringLike } & NapiKeyringLike;
  return napiBackend(m.AsyncEntry ? m : m.default!);
}

const cache = new Map<string, SecretBackend>();

/**
 * The binding `env` asks for, loaded once per process. A binding that cannot
 * load is KEYSTORE_UNAVAILABLE with the loader's first line and what to do.
 */
export async function loadSecretBackend(env: NodeJS.ProcessEnv = process.env): Promise<SecretBackend> {
  const choice = chosenBackend(env);
  const key = choice ?? 'auto';
  const hit = cache.get(key);
  if (hit) return hit;
  const tried: string[] = [];
  for (const name of choice ? [choice] : SECRET_BACKENDS) {
    try {
      const b = await (name === 'keytar' ? importKeytar() : importNapi());
      cache.set(key, b);
      return b;
    } catch (e) {
      tried.push(`${name === 'keytar' ? 'keytar' : '@napi-rs/keyring'}: ${firstLine(e)}`);
    }
  }
  const text = tried.join('; ');
  const hint = /libsecret/.test(text) ? 'install libsecret (apt-get install libsecret-1-0)' : choice ? `unset LATCHKEY_OS_KEYRING to try the other binding, or reinstall the agent` : 'reinstall the agent';
  throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the OS keystore addon cannot be loaded (${text}): ${hint}, or use --keystore file`);
}
