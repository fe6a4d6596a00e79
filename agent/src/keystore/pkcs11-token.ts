/**
 * Finding the token the pkcs11 keystore is configured for, opening a session
 * on it and logging in, with errors that say what to do.
 *
 * Login is per process and token: once a session logged in, every session of
 * the process is logged in while any session stays open. openToken keeps one
 * more session per token for the life of the process, so the OpenSSL engine's
 * view of the token stays logged in whichever stores come and go.
 */
import { Crypto } from 'node-webcrypto-p11';
import { KeystoreError } from './keystore.js';
import {
  CKF_LOGIN_REQUIRED,
  CKF_RW_SESSION,
  CKF_SERIAL_SESSION,
  CKF_TOKEN_INITIALIZED,
  CKF_USER_PIN_INITIALIZED,
  CKF_USER_PIN_LOCKED,
  CKR,
  type P11Module,
  type P11Session,
  type P11Slot,
  TOKEN_HINT,
  keepLoginSession,
  loadModule,
  pkcs11Code,
  pkcs11Message,
} from './pkcs11-module.js';
import { DeviceKeyTemplateBuilder } from './pkcs11-objects.js';

export interface TokenSelector {
  /** Path of the PKCS#11 module (.so). */
  module: string;
  /** Selects the token by label (CKA_LABEL of the token, as `pkcs11-tool -L` shows it). */
  tokenLabel?: string;
  /** Selects the token by slot ID (as `pkcs11-tool -L` / `softhsm2-util --show-slots` show it). */
  slot?: number;
}

/** An open, logged-in session on the token. */
export interface OpenToken {
  crypto: Crypto;
  session: P11Session;
  tokenLabel: string;
  tokenSerial: string;
}

/** How messages name the token. */
export const tokenName = (sel: TokenSelector): string =>
  sel.tokenLabel !== undefined ? `token "${sel.tokenLabel}"` : sel.slot !== undefined ? `the token in slot ${sel.slot}` : 'the first token';

/** The slot whose token the selector names (by label, slot ID, or the first initialized one), checked usable. */
export function findSlot(mod: P11Module, sel: TokenSelector): P11Slot {
  const slots = mod.getSlots(true);
  const seen: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const token = slot.getToken();
    const label = token.label.trim();
    const id = Number(slot.handle.readBigUInt64LE(0));
    const initialized = (token.flags & CKF_TOKEN_INITIALIZED) !== 0;
    seen.push(`"${label}" (slot ${id}${initialized ? '' : ', not initialized'})`);
    const match = sel.tokenLabel !== undefined ? label === sel.tokenLabel : sel.slot !== undefined ? id === sel.slot : initialized;
    if (!match) continue;
    if (!initialized) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName(sel)} in ${sel.module} is not initialized; ${TOKEN_HINT}`);
    }
    if ((token.flags & CKF_USER_PIN_INITIALIZED) === 0) {
      throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName(sel)} has no user PIN yet; set one with \`pkcs11-tool --module ${sel.module} --init-pin --login --login-type so\``);
    }
    if ((token.flags & CKF_USER_PIN_LOCKED) !== 0) {
      throw new KeystoreError('KEYSTORE_LOCKED', `${tokenName(sel)} has locked its user PIN after too many wrong tries; unblock it with the SO PIN (\`pkcs11-tool --module ${sel.module} --init-pin --login --login-type so\`)`);
    }
    return slot;
  }
  throw new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName(sel)} was not found in ${sel.module} (tokens: ${seen.length ? seen.join(', ') : 'none'}); ${TOKEN_HINT}`);
}

/** A refused C_Login, in words: wrong PIN, locked or expired PIN, no PIN yet, or anything else. */
export function loginFailure(e: unknown, sel: TokenSelector): KeystoreError {
  const code = pkcs11Code(e);
  if (code === CKR.PIN_INCORRECT || code === CKR.PIN_INVALID || code === CKR.PIN_LEN_RANGE) {
    return new KeystoreError('KEYSTORE_LOCKED', `the PIN for ${tokenName(sel)} was refused (wrong PIN); check the PIN the agent keeps in the OS keystore (re-enter it with \`latchkey enroll --keystore pkcs11\`)`, { cause: e });
  }
  if (code === CKR.PIN_LOCKED || code === CKR.PIN_EXPIRED) {
    return new KeystoreError('KEYSTORE_LOCKED', `the user PIN of ${tokenName(sel)} is ${code === CKR.PIN_LOCKED ? 'locked' : 'expired'}; reset it with the SO PIN (\`pkcs11-tool --module ${sel.module} --init-pin --login --login-type so\`)`, { cause: e });
  }
  if (code === CKR.USER_PIN_NOT_INITIALIZED) {
    return new KeystoreError('KEYSTORE_UNAVAILABLE', `${tokenName(sel)} has no user PIN yet; ${TOKEN_HINT}`, { cause: e });
  }
  return new KeystoreError('KEYSTORE_UNAVAILABLE', `login to ${tokenName(sel)} failed (${pkcs11Message(e)})`, { cause: e });
}

export const closeQuietly = (s: P11Session): void => {
  try {
    s.close();
  } catch {
    // already closed
  }
};

/** Opens a read-write session on the selected token and logs in (asking for the PIN only if the token needs one). */
export async function openToken(sel: TokenSelector, pin: () => Promise<string>): Promise<OpenToken> {
  const slot = findSlot(loadModule(sel.module), sel);
  const token = slot.getToken();
  let session: P11Session;
  try {
    session = slot.open(CKF_SERIAL_SESSION | CKF_RW_SESSION);
  } catch (e) {
    throw new KeystoreError('KEYSTORE_UNAVAILABLE', `cannot open a session on ${tokenName(sel)} (${pkcs11Message(e)}); is the token (or the TPM) still there?`, { cause: e });
  }
  const c = new Crypto({ session, name: 'latchkey' });
  c.templateBuilder = new DeviceKeyTemplateBuilder();
  if (token.flags & CKF_LOGIN_REQUIRED) {
    const p = await pin();
    try {
      c.login(p);
    } catch (e) {
      closeQuietly(session);
      throw loginFailure(e, sel);
    }
  }
  // One more session, kept for the life of the process (see the file comment).
  keepLoginSession(`${sel.module}\0${slot.handle.toString('hex')}`, () => slot.open(CKF_SERIAL_SESSION));
  return { crypto: c, session, tokenLabel: token.label.trim(), tokenSerial: token.serialNumber.trim() };
}

