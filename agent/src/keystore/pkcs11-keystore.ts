/**
 * `pkcs11` keystore: the device key is generated inside a PKCS#11 token (a
 * TPM through tpm2-pkcs11, a smart card, SoftHSM in tests), sensitive and
 * non-extractable. The agent signs its CSRs through node-webcrypto-p11 and
 * node:tls signs TLS handshakes through OpenSSL's `pkcs11` engine (libp11,
 * Debian `libengine-pkcs11-openssl`) with an RFC 7512 `pkcs11:` URI.
 *
 * Objects: a key pair per key, private and public object both labelled
 * `latchkey:<namespace>:<keyId>`; `list()` returns the private keys whose
 * label has this store's namespace prefix. Both objects carry CKA_ID = SHA-1
 * of the EC point (04||X||Y), the id NSS looks a certificate's key up by
 * (PK11_MakeIDFromPubKey), so a browser finds the key on the token for the
 * certificate the agent imports. Keys made before carry node-webcrypto-p11's
 * own id (SHA-1 of the SPKI, 16 bytes); they still load, as the store finds
 * keys by label and tlsKey() names a key by the CKA_ID it reads from it.
 *
 * Process-wide facts this module manages (they come from PKCS#11 and OpenSSL,
 * not from us):
 * - A PKCS#11 module is initialized once per process (C_Initialize) and is
 *   never finalized here: C_Finalize would also kill the sessions the OpenSSL
 *   engine holds for live TLS contexts. Module settings read from the
 *   environment (SOFTHSM2_CONF, TPM2_PKCS11_TCTI, TPM2_PKCS11_STORE) are thus
 *   read once, at the first open.
 * - Login is per process and token: once a session logged in, every session
 *   of the process is logged in while any session stays open.
 * - OpenSSL's pkcs11 engine loads ONE PKCS#11 module per process (libp11
 *   reads PKCS11_MODULE_PATH when the engine is first bound and keeps it):
 *   `tlsKey()` refuses keys of a second module with a clear error.
 * - The URI carries no PIN: the engine's session is logged in because this
 *   store's session is (same module instance, same process). tlsKey() keeps
 *   one engine context alive for the life of the process so the engine never
 *   finalizes the module under us.
 */
import * as crypto from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Crypto, type CryptoKey as P11CryptoKey, TemplateBuilder, type ITemplate, type ITemplateBuildParameters, type Pkcs11EcKeyGenParams } from 'node-webcrypto-p11';
import { keyIdentifier, webCryptoSigner } from '@latchkey/pki';
import { type DeviceKey, type DeviceKeyAlgorithm, type KeyRef, type KeyStore, KeystoreError, type TlsKey, isKeyId, newKeyId } from './keystore.js';

export interface Pkcs11KeyStoreOptions {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** Selects the token by label (CKA_LABEL of the token, as `pkcs11-tool -L` shows it). */
  tokenLabel?: string;
  /** Selects the token by slot ID (as `pkcs11-tool -L` / `softhsm2-util --show-slots` show it). */
  slot?: number;
  /** The user PIN; asked for when the store first opens its session. Never logged. */
  pin: () => Promise<string>;
  /** Keys of other namespaces on the same token are invisible to this store. */
  namespace: string;
  /** Path of OpenSSL's pkcs11 engine; by default it is looked for in the usual engines-3 directories. */
  engine?: string;
}

type P11Slot = Crypto['slot'];
type P11Module = P11Slot['module'];
type P11Session = Crypto['session'];
type P11Object = ReturnType<ReturnType<P11Session['find']>['items']>;

// PKCS#11 constants (pkcs11t.h).
const CKO_PUBLIC_KEY = 2;
const CKO_PRIVATE_KEY = 3;
const CKF_RW_SESSION = 2;
const CKF_SERIAL_SESSION = 4;
const CKF_LOGIN_REQUIRED = 0x4;
const CKF_USER_PIN_INITIALIZED = 0x8;
const CKF_TOKEN_INITIALIZED = 0x400;
const CKF_USER_PIN_LOCKED = 0x40000;
const CKR = {
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  USER_PIN_NOT_INITIALIZED: 0x102,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  DEVICE_ERROR: 0x30,
  GENERAL_ERROR: 0x5,
} as const;

const SOFTHSM_HINT = 'install a PKCS#11 module (SoftHSM: `apt-get install softhsm2`; TPM: `apt-get install libtpm2-pkcs11-1 libtpm2-pkcs11-tools`) and pass its path';
const TOKEN_HINT =
  'create one: `softhsm2-util --init-token --free --label <label> --pin <pin> --so-pin <so-pin>` (SoftHSM) or `tpm2_ptool init && tpm2_ptool addtoken --pid=1 --label=<label> --userpin=<pin> --sopin=<so-pin>` (TPM)';

const pkcs11Code = (e: unknown): number | undefined => {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
};
/** The pkcs11js message names the CKR_ code ("CKR_PIN_INCORRECT:160"); it never contains the PIN. */
const pkcs11Message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ------------------------------------------------------------ process-wide state

/** Initialized modules by path; never finalized (see the file comment). */
const modules = new Map<string, P11Module>();

function loadModule(path: string): P11Module {
  const known = modules.get(path);
  if (known) return known;
  if (!existsSync(path)) {
    throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the PKCS#11 module ${path} was not found; ${SOFTHSM_HINT}`);
  }
  let owner: Crypto;
  try {
    // node-webcrypto-p11 gives us the module through a first Crypto; its session is closed at once.
    owner = new Crypto({ library: path, slot: 0, readWrite: false, name: 'latchkey' });
  } catch (e) {
    const msg = pkcs11Message(e);
    if (/Slot by index 0 is not found/.test(msg)) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the PKCS#11 module ${path} has no token present; ${TOKEN_HINT}`, { cause: e });
    }
    if (/dlopen|cannot open shared object|invalid ELF|Cannot load/i.test(msg) || !(pkcs11Code(e) !== undefined)) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the PKCS#11 module ${path} cannot be loaded (${msg}); ${SOFTHSM_HINT}`, { cause: e });
    }
    throw new KeystoreError(
      'KEYSTORE_UNAVAILABLE',
      `the PKCS#11 module ${path} failed to initialize (${msg}); for SoftHSM check SOFTHSM2_CONF, for a TPM check TPM2_PKCS11_TCTI / TPM2_PKCS11_STORE and that the TPM (or tpm2-abrmd) is reachable`,
      { cause: e },
    );
  }
  try {
    owner.session.close();
  } catch {
    // a session that is already gone is fine
  }
  const mod = owner.slot.module;
  modules.set(path, mod);
  return mod;
}

/** A session per token held open for the life of the process (see doOpen). */
const loginSessions = new Map<string, P11Session>();

/** The module the OpenSSL engine of this process was bound to, and a context that keeps it initialized. */
let engineBinding: { module: string; keepAlive?: tls.SecureContext } | undefined;

const ENGINE_DIRS = (): string[] => {
  const multiarch = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : `${process.arch}-linux-gnu`;
  return [
    ...(process.env.OPENSSL_ENGINES ? [process.env.OPENSSL_ENGINES] : []),
    `/usr/lib/${multiarch}/engines-3`,
    '/usr/lib64/engines-3',
    '/usr/lib/engines-3',
    '/usr/local/lib/engines-3',
    '/opt/homebrew/lib/engines-3',
  ];
};
const ENGINE_FILE = process.platform === 'darwin' ? 'pkcs11.dylib' : 'pkcs11.so';
const ENGINE_HINT = 'install OpenSSL\'s pkcs11 engine (`apt-get install libengine-pkcs11-openssl`; macOS: `brew install libp11`)';

function locateEngine(explicit: string | undefined): { dir: string; file: string } {
  if (explicit !== undefined) {
    if (!existsSync(explicit)) throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the OpenSSL pkcs11 engine ${explicit} was not found; ${ENGINE_HINT}`);
    const dir = explicit.slice(0, explicit.lastIndexOf('/')) || '/';
    if (!explicit.endsWith(`/${ENGINE_FILE}`)) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `the OpenSSL pkcs11 engine must be a file named ${ENGINE_FILE} (OpenSSL loads it by the id "pkcs11"); got ${explicit}`);
    }
    return { dir, file: explicit };
  }
  for (const dir of ENGINE_DIRS()) {
    const file = join(dir, ENGINE_FILE);
    if (existsSync(file)) return { dir, file };
  }
  throw new KeystoreError('KEYSTORE_UNAVAILABLE', `OpenSSL's pkcs11 engine (${ENGINE_FILE}) was not found in ${ENGINE_DIRS().join(', ')}; ${ENGINE_HINT}`);
}

/** RFC 7512 §2.3: every byte that is not unreserved is percent-encoded. */
const pct = (bytes: Uint8Array): string =>
  Array.from(bytes, (b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`)).join('');

// ------------------------------------------------------------ templates

/**
 * node-webcrypto-p11's templates name every usage, most of them `false`;
 * tpm2-pkcs11 refuses some explicit `false` attributes (CKR_ATTRIBUTE_VALUE_INVALID).
 * Keep only what we mean: a token object, a private key that is private,
 * sensitive and not extractable, and the sign / verify usages.
 */
class DeviceKeyTemplateBuilder extends TemplateBuilder {
  override build(params: ITemplateBuildParameters): ITemplate {
    const t = super.build(params) as Record<string, unknown>;
    for (const k of Object.keys(t)) if (t[k] === false) delete t[k];
    if (params.type === 'private') {
      t.sensitive = true;
      t.extractable = false;
    }
    return t as ITemplate;
  }
}

/**
 * The CKA_ID NSS pairs a certificate with its key by: SHA-1 of the EC public
 * point, the subjectPublicKey bits of the SPKI (NSS PK11_MakeIDFromPubKey over
 * the key's publicValue; the same bytes as RFC 5280 §4.2.1.2 method 1).
 */
const nssKeyId = (spki: Uint8Array): Buffer => keyIdentifier(spki);

// ------------------------------------------------------------ the store

interface OpenState {
  crypto: Crypto;
  session: P11Session;
  tokenLabel: string;
  tokenSerial: string;
}

/** The WebCrypto side of a pkcs11 DeviceKey, for tests and diagnostics. */
const webCryptoKeys = new WeakMap<DeviceKey, { crypto: Crypto; privateKey: P11CryptoKey; publicKey: P11CryptoKey }>();
export function pkcs11WebCryptoKey(k: DeviceKey): { crypto: Crypto; privateKey: P11CryptoKey; publicKey: P11CryptoKey } | undefined {
  return webCryptoKeys.get(k);
}

export function createPkcs11KeyStore(opts: Pkcs11KeyStoreOptions): KeyStore {
  const prefix = `latchkey:${opts.namespace}:`;
  const labelOf = (id: string): string => `${prefix}${id}`;
  let state: OpenState | undefined;
  let opening: Promise<OpenState> | undefined;

  const tokenName = (): string => (opts.tokenLabel !== undefined ? `token "${opts.tokenLabel}"` : opts.slot !== undefined ? `the token in slot ${opts.slot}` : 'the first token');

  const findSlot = (mod: P11Module): P11Slot => {
    const slots = mod.getSlots(true);
    const seen: string[] = [];
    for (let i = 0; i < slots.length; i++) {
      const slot = slots.items(i);
      const token = slot.getToken();
      const label = token.label.trim();
      const id = Number(slot.handle.readBigUInt64LE(0));
      const initialized = (token.flags & CKF_TOKEN_INITIALIZED) !== 0;
      seen.push(`"${label}" (slot ${id}${initialized ? '' : ', not initialized'})`);
      const match = opts.tokenLabel !== undefined ? label === opts.tokenLabel : opts.slot !== undefined ? id === opts.slot : initialized;
      if (!match) continue;
      if (!initialized) {
        throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName()} in ${opts.module} is not initialized; ${TOKEN_HINT}`);
      }
      if ((token.flags & CKF_USER_PIN_INITIALIZED) === 0) {
        throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName()} has no user PIN yet; set one with \`pkcs11-tool --module ${opts.module} --init-pin --login --login-type so\``);
      }
      if ((token.flags & CKF_USER_PIN_LOCKED) !== 0) {
        throw new KeystoreError('KEYSTORE_LOCKED', `${tokenName()} has locked its user PIN after too many wrong tries; unblock it with the SO PIN (\`pkcs11-tool --module ${opts.module} --init-pin --login --login-type so\`)`);
      }
      return slot;
    }
    throw new KeystoreError(
      'KEYSTORE_UNAVAILABLE',
      `${tokenName()} was not found in ${opts.module} (tokens: ${seen.length ? seen.join(', ') : 'none'}); ${TOKEN_HINT}`,
    );
  };

  const doOpen = async (): Promise<OpenState> => {
    const mod = loadModule(opts.module);
    const slot = findSlot(mod);
    const token = slot.getToken();
    let session: P11Session;
    try {
      session = slot.open(CKF_SERIAL_SESSION | CKF_RW_SESSION);
    } catch (e) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `cannot open a session on ${tokenName()} (${pkcs11Message(e)}); is the token (or the TPM) still there?`, { cause: e });
    }
    const c = new Crypto({ session, name: 'latchkey' });
    c.templateBuilder = new DeviceKeyTemplateBuilder();
    if (token.flags & CKF_LOGIN_REQUIRED) {
      const pin = await opts.pin();
      try {
        c.login(pin);
      } catch (e) {
        try {
          session.close();
        } catch {
          // already closed
        }
        const code = pkcs11Code(e);
        if (code === CKR.PIN_INCORRECT || code === CKR.PIN_INVALID || code === CKR.PIN_LEN_RANGE) {
          throw new KeystoreError('KEYSTORE_LOCKED', `the PIN for ${tokenName()} was refused (wrong PIN); check the PIN the agent keeps in the OS keystore (re-enter it with \`latchkey enroll --keystore pkcs11\`)`, { cause: e });
        }
        if (code === CKR.PIN_LOCKED || code === CKR.PIN_EXPIRED) {
          throw new KeystoreError('KEYSTORE_LOCKED', `the user PIN of ${tokenName()} is ${code === CKR.PIN_LOCKED ? 'locked' : 'expired'}; reset it with the SO PIN (\`pkcs11-tool --module ${opts.module} --init-pin --login --login-type so\`)`, { cause: e });
        }
        if (code === CKR.USER_PIN_NOT_INITIALIZED) {
          throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName()} has no user PIN yet; ${TOKEN_HINT}`, { cause: e });
        }
        throw new KeystoreError('KEYSTORE_UNAVAILABLE', `login to ${tokenName()} failed (${pkcs11Message(e)})`, { cause: e });
      }
    }
    // One more session, kept for the life of the process: PKCS#11 login is
    // per process and token and ends when the token's last session closes;
    // this one keeps the OpenSSL engine's view of the token logged in
    // whichever stores come and go.
    const tokenKey = `${opts.module}\0${slot.handle.toString('hex')}`;
    if (!loginSessions.has(tokenKey)) {
      try {
        loginSessions.set(tokenKey, slot.open(CKF_SERIAL_SESSION));
      } catch {
        // the store works without it; only engine logins may be asked again
      }
    }
    return { crypto: c, session, tokenLabel: token.label.trim(), tokenSerial: token.serialNumber.trim() };
  };

  const open = async (): Promise<OpenState> => {
    if (state) return state;
    opening ??= doOpen().finally(() => {
      opening = undefined;
    });
    state = await opening;
    return state;
  };

  const find = (st: OpenState, cls: number, label: string): P11Object[] => {
    const found = st.session.find({ class: cls, token: true, label });
    const out: P11Object[] = [];
    for (let i = 0; i < found.length; i++) out.push(found.items(i));
    return out;
  };

  const failed = (what: string, e: unknown): KeystoreError =>
    e instanceof KeystoreError ? e : new KeystoreError('KEYSTORE_FAILED', `${what} on ${tokenName()} failed (${pkcs11Message(e)})`, { cause: e });

  const keyOf = async (st: OpenState, o: P11Object): Promise<P11CryptoKey> => (await st.crypto.keyStorage.getItem(P11CryptoKeyId(o))) as P11CryptoKey;
  const spkiOf = async (st: OpenState, pubObj: P11Object): Promise<Buffer> => Buffer.from(await st.crypto.subtle.exportKey('spki', await keyOf(st, pubObj)));

  const wrap = async (st: OpenState, ref: KeyRef, privObj: P11Object, pubObj: P11Object): Promise<DeviceKey> => {
    const privateKey = await keyOf(st, privObj);
    const publicKey = await keyOf(st, pubObj);
    const spki = Buffer.from(await st.crypto.subtle.exportKey('spki', publicKey));
    const ckaId = privObj.getAttribute({ id: null }).id as Buffer;
    const key: DeviceKey = {
      ref,
      spki,
      signer: webCryptoSigner(st.crypto as unknown as Parameters<typeof webCryptoSigner>[0], privateKey as unknown as crypto.webcrypto.CryptoKey, spki),
      extractable: false,
      tlsKey: async () => tlsKeyFor(st, ckaId),
    };
    webCryptoKeys.set(key, { crypto: st.crypto, privateKey, publicKey });
    return key;
  };

  const tlsKeyFor = async (st: OpenState, ckaId: Buffer): Promise<TlsKey> => {
    await open(); // the engine's session rides on this store's login
    const { dir } = locateEngine(opts.engine);
    if (engineBinding && engineBinding.module !== opts.module) {
      throw new KeystoreError(
        'KEYSTORE_UNAVAILABLE',
        `OpenSSL's pkcs11 engine in this process already uses the module ${engineBinding.module}; node:tls can use keys of one PKCS#11 module per process (run a separate agent for ${opts.module})`,
      );
    }
    // libp11 reads these when the engine is first bound (once per process).
    if (!process.env.OPENSSL_ENGINES || !existsSync(join(process.env.OPENSSL_ENGINES, ENGINE_FILE))) process.env.OPENSSL_ENGINES = dir;
    if (!engineBinding) process.env.PKCS11_MODULE_PATH = opts.module;
    const identifier = `pkcs11:token=${pct(Buffer.from(st.tokenLabel))};serial=${pct(Buffer.from(st.tokenSerial))};id=${pct(ckaId)};type=private`;
    let ctx: tls.SecureContext;
    try {
      ctx = tls.createSecureContext({ privateKeyEngine: 'pkcs11', privateKeyIdentifier: identifier });
    } catch (e) {
      const stack = [pkcs11Message(e), ...((e as { opensslErrorStack?: string[] }).opensslErrorStack ?? [])].join('; ');
      if (/no such engine|dso not found|could not load the shared library|ENGINE_UNKNOWN/i.test(stack)) {
        throw new KeystoreError('KEYSTORE_UNAVAILABLE', `OpenSSL's pkcs11 engine could not be loaded from ${dir} (${stack}); ${ENGINE_HINT}`, { cause: e });
      }
      throw new KeystoreError('KEYSTORE_FAILED', `OpenSSL's pkcs11 engine could not load the key from ${tokenName()} (${stack})`, { cause: e });
    }
    // Keep one engine context for the life of the process: when the last one
    // is freed, libp11 calls C_Finalize, which would end this store's sessions.
    engineBinding ??= { module: opts.module, keepAlive: ctx };
    const out = { kind: 'engine' as const, privateKeyEngine: 'pkcs11' } as { kind: 'engine'; privateKeyEngine: string; privateKeyIdentifier: string };
    // Not enumerable: a TlsKey that ends up in a log line shows no token details.
    Object.defineProperty(out, 'privateKeyIdentifier', { value: identifier, enumerable: false });
    return out;
  };

  return {
    kind: 'pkcs11',
    async check() {
      await open();
    },
    async generate(algorithm: DeviceKeyAlgorithm = 'P-256') {
      const st = await open();
      const ref: KeyRef = { keystore: 'pkcs11', id: newKeyId(crypto.randomBytes(12).toString('hex')) };
      const label = labelOf(ref.id);
      try {
        await st.crypto.subtle.generateKey(
          { name: 'ECDSA', namedCurve: algorithm, label, token: true, sensitive: true } as Pkcs11EcKeyGenParams & { name: string },
          false,
          ['sign', 'verify'],
        );
      } catch (e) {
        throw failed(`generating an ECDSA ${algorithm} key`, e);
      }
      const [priv] = find(st, CKO_PRIVATE_KEY, label);
      const [pub] = find(st, CKO_PUBLIC_KEY, label);
      if (!priv || !pub) throw new KeystoreError('KEYSTORE_FAILED', `${tokenName()} did not keep the key pair it generated (${label})`);
      const attrs = priv.getAttribute({ extractable: null, sensitive: null });
      if (attrs.extractable !== false || attrs.sensitive !== true) {
        for (const o of [priv, pub]) o.destroy();
        throw new KeystoreError('KEYSTORE_FAILED', `${tokenName()} made an extractable or non-sensitive private key; the pkcs11 keystore needs a token that keeps keys inside`);
      }
      // The id is known only once the key exists: set it on both objects
      // (C_SetAttributeValue; SoftHSM2 and tpm2-pkcs11 take it, as they take
      // node-webcrypto-p11's own id set the same way inside generateKey).
      try {
        const id = nssKeyId(await spkiOf(st, pub));
        for (const o of [priv, pub]) o.setAttribute({ id });
        for (const o of [priv, pub]) {
          if (!Buffer.from(o.getAttribute({ id: null }).id as Buffer).equals(id)) throw new Error('the token kept another CKA_ID');
        }
      } catch (e) {
        for (const o of [priv, pub]) {
          try {
            o.destroy();
          } catch {
            // gone already
          }
        }
        throw new KeystoreError(
          'KEYSTORE_FAILED',
          `${tokenName()} did not let the new key take the CKA_ID browsers (NSS) find it by, SHA-1 of its public key (${pkcs11Message(e)}); the key was deleted`,
          { cause: e },
        );
      }
      return wrap(st, ref, priv, pub);
    },
    async load(ref) {
      if (ref.keystore !== 'pkcs11' || !isKeyId(ref.id)) return undefined;
      const st = await open();
      try {
        const label = labelOf(ref.id);
        const [priv] = find(st, CKO_PRIVATE_KEY, label);
        if (!priv) return undefined;
        const [pub] = find(st, CKO_PUBLIC_KEY, label);
        if (!pub) throw new KeystoreError('KEY_CORRUPT', `the key ${ref.id} on ${tokenName()} has lost its public key object; delete it and enroll again`);
        return await wrap(st, ref, priv, pub);
      } catch (e) {
        throw failed(`loading the key ${ref.id}`, e);
      }
    },
    async delete(ref) {
      if (ref.keystore !== 'pkcs11' || !isKeyId(ref.id)) return;
      const st = await open();
      try {
        const label = labelOf(ref.id);
        for (const o of [...find(st, CKO_PRIVATE_KEY, label), ...find(st, CKO_PUBLIC_KEY, label)]) o.destroy();
      } catch (e) {
        throw failed(`deleting the key ${ref.id}`, e);
      }
    },
    async list() {
      const st = await open();
      try {
        const found = st.session.find({ class: CKO_PRIVATE_KEY, token: true });
        const refs: KeyRef[] = [];
        for (let i = 0; i < found.length; i++) {
          const label = String(found.items(i).getAttribute({ label: null }).label ?? '');
          if (!label.startsWith(prefix)) continue;
          const id = label.slice(prefix.length);
          if (isKeyId(id)) refs.push({ keystore: 'pkcs11', id });
        }
        return refs;
      } catch (e) {
        throw failed('listing keys', e);
      }
    },
    async close() {
      const st = state;
      state = undefined;
      if (!st) return;
      // Close only this store's session: C_Logout or C_Finalize would end
      // every session of the process, the engine's included.
      try {
        st.session.close();
      } catch {
        // already closed
      }
    },
  };
}

/** node-webcrypto-p11's key storage index for an object ("private-<handle>-<id>"). */
function P11CryptoKeyId(o: P11Object): string {
  const cls = o.class === CKO_PRIVATE_KEY ? 'private' : 'public';
  const id = o.getAttribute({ id: null }).id as Buffer;
  return `${cls}-${o.handle.toString('hex')}-${id.toString('hex')}`;
}
