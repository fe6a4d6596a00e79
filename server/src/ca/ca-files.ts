/**
 * CA key custody in the data dir. CA and OCSP-signer keys are PKCS#8
 * encrypted with the CA passphrase (AES-256-CBC, scrypt-free PBES2 as
 * OpenSSL writes it); the TLS key is plain PEM, mode 0600, as web servers
 * keep theirs. Nothing here ever logs key material.
 */
import * as crypto from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';

export const FILES = {
  rootCert: 'root.crt.pem',
  rootKey: 'root.key.pem',
  issuingCert: 'issuing.crt.pem',
  issuingKey: 'issuing.key.pem',
  ocspCert: 'ocsp.crt.pem',
  ocspKey: 'ocsp.key.pem',
  tlsCert: 'server.crt.pem',
  tlsKey: 'server.key.pem',
  passphrase: 'ca-passphrase',
  adminToken: 'admin-token',
} as const;

/** Writes a file atomically (temp file, fsync, rename) with the given mode. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  chmodSync(path, mode);
}

export function encryptKey(key: crypto.KeyObject, passphrase: string): string {
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

export function readEncryptedKey(dataDir: string, file: string, passphrase: string): crypto.KeyObject {
  const p = join(dataDir, file);
  if (!existsSync(p)) throw new Error(`${p} is missing: restore it from your backup of the data dir`);
  try {
    return crypto.createPrivateKey({ key: readFileSync(p), format: 'pem', passphrase });
  } catch {
    // Never include the library's message: it can quote the input.
    throw new Error(`cannot decrypt ${p}: wrong CA passphrase, or the file is damaged`);
  }
}

export function readPlainKey(dataDir: string, file: string): crypto.KeyObject {
  const p = join(dataDir, file);
  try {
    return crypto.createPrivateKey(readFileSync(p));
  } catch {
    throw new Error(`cannot read the private key ${p}`);
  }
}

export const readText = (dataDir: string, file: string): string => readFileSync(join(dataDir, file), 'utf8');
