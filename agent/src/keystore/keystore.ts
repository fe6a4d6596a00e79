/**
 * One interface over the places a device key can live: the OS credential
 * store (keytar), a PKCS#11 token (smart card, TPM via tpm2-pkcs11, SoftHSM),
 * or an encrypted file for headless hosts. Every implementation passes the
 * same conformance suite (keystore-conformance.ts).
 *
 * A key is created for one certificate and deleted when that certificate is
 * replaced: the agent state names the key by a KeyRef, and a key the state
 * does not name (left by a renewal that died half-way) is an orphan that
 * `list()` lets the agent clean up.
 */
import { CodedError } from '../errors.js';
import type { Signer } from '@latchkey/pki';
import type { KeystoreKind } from '@latchkey/protocol/wire';

export { KEYSTORE_KINDS, type KeystoreKind } from '@latchkey/protocol/wire';

/**
 * Whether node:tls can use a key of this kind only in a process started after
 * the key was made: OpenSSL's pkcs11 engine (libp11) caches a token's objects
 * at its first key load, so a long-lived process never sees a renewed key.
 * Such TLS runs in a token worker (agent/src/token-worker/).
 */
export function tlsNeedsFreshProcess(kind: KeystoreKind): boolean {
  return kind === 'pkcs11';
}

/** Names a key in its store; stored in the agent state (JSON). */
export interface KeyRef {
  keystore: KeystoreKind;
  /** Unique within the store and its namespace. */
  id: string;
}

/** How node:tls uses the key as a TLS client key. */
export type TlsKey =
  /** A PEM private key held only in memory. */
  | { kind: 'pem'; key: string }
  /** A key that never leaves its token, used through an OpenSSL engine. */
  | { kind: 'engine'; privateKeyEngine: string; privateKeyIdentifier: string };

export type DeviceKeyAlgorithm = 'P-256' | 'P-384';

export interface DeviceKey {
  readonly ref: KeyRef;
  /** DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  /** Signs the CSR (and anything else the agent must prove possession with). */
  readonly signer: Signer;
  /** False when the private key cannot leave the store (PKCS#11). */
  readonly extractable: boolean;
  /** The key as node:tls takes it for client authentication. */
  tlsKey(): Promise<TlsKey>;
}

export interface KeyStore {
  readonly kind: KeystoreKind;
  /** Fails with a KeystoreError that says what is missing and how to fix it. */
  check(): Promise<void>;
  /** A fresh key made inside the store (ECDSA P-256 unless asked otherwise). */
  generate(algorithm?: DeviceKeyAlgorithm): Promise<DeviceKey>;
  /** The key a ref names, or undefined if the store no longer has it. */
  load(ref: KeyRef): Promise<DeviceKey | undefined>;
  /** Removes the key; removing a key that is not there is not an error. */
  delete(ref: KeyRef): Promise<void>;
  /** Every key this store holds for this agent (its namespace). */
  list(): Promise<KeyRef[]>;
  close(): Promise<void>;
}

export type KeystoreErrorCode = 'KEYSTORE_UNAVAILABLE' | 'KEYSTORE_LOCKED' | 'KEYSTORE_FAILED' | 'KEY_CORRUPT';

export class KeystoreError extends CodedError<KeystoreErrorCode> {
  override readonly name = 'KeystoreError';
}

/** A key id: random, short, safe in file names, labels and keychain accounts. */
export function newKeyId(randomHex: string): string {
  return `lk-${randomHex}`;
}

export const isKeyId = (s: string): boolean => /^lk-[0-9a-f]{16,64}$/.test(s);

/** The CKA_LABEL of a pkcs11 key of this agent (both objects of the pair): `latchkey:<namespace>:<keyId>`. */
export const pkcs11KeyLabel = (namespace: string, id: string): string => `latchkey:${namespace}:${id}`;
