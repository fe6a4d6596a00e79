/**
 * The PKCS#11 module of the pkcs11 keystore, process-wide: a module is
 * initialized once per process (C_Initialize) and never finalized here, since
 * C_Finalize would also kill the sessions OpenSSL's engine holds for live TLS
 * contexts. Module settings read from the environment (SOFTHSM2_CONF,
 * TPM2_PKCS11_TCTI, TPM2_PKCS11_STORE) are thus read once, at the first open.
 * Also the PKCS#11 constants and error helpers the other pkcs11-* files use.
 */
import { existsSync } from 'node:fs';
import { Crypto } from 'node-webcrypto-p11';
import { KeystoreError } from './keystore.js';

export type P11Slot = Crypto['slot'];
export type P11Module = P11Slot['module'];
export type P11Session = Crypto['session'];
export type P11Object = ReturnType<ReturnType<P11Session['find']>['items']>;

// PKCS#11 constants (pkcs11t.h).
export const CKO_PUBLIC_KEY = 2;
export const CKO_PRIVATE_KEY = 3;
export const CKF_RW_SESSION = 2;
export const CKF_SERIAL_SESSION = 4;
export const CKF_LOGIN_REQUIRED = 0x4;
export const CKF_USER_PIN_INITIALIZED = 0x8;
export const CKF_TOKEN_INITIALIZED = 0x400;
export const CKF_USER_PIN_LOCKED = 0x40000;
export const CKR = {
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

export const SOFTHSM_HINT = 'install a PKCS#11 module (SoftHSM: `apt-get install softhsm2`; TPM: `apt-get install libtpm2-pkcs11-1 libtpm2-pkcs11-tools`) and pass its path';
export const TOKEN_HINT =
  'create one: `softhsm2-util --init-token --free --label <label> --pin <pin> --so-pin <so-pin>` (SoftHSM) or `tpm2_ptool init && tpm2_ptool addtoken --pid=1 --label=<label> --userpin=<pin> --sopin=<so-pin>` (TPM)';


export const pkcs11Code = (e: unknown): number | undefined => {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
};
/** The pkcs11js message names the CKR_ code ("CKR_PIN_INCORRECT:160"); it never contains the PIN. */
export const pkcs11Message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Initialized modules by path; never finalized (see the file comment). */
const modules = new Map<string, P11Module>();

export function loadModule(path: string): P11Module {
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

/** A session per token held open for the life of the process (see pkcs11-token.ts). */
const loginSessions = new Map<string, P11Session>();

/** Opens the token's life-long session once per process; a token that refuses it is left without (only engine logins may be asked again). */
export function keepLoginSession(tokenKey: string, openSession: () => P11Session): void {
  if (loginSessions.has(tokenKey)) return;
  try {
    loginSessions.set(tokenKey, openSession());
  } catch {
    // the store works without it
  }
}
