/**
 * The trusted TPM manufacturer CAs (config attestation.ekRootsDir): read once
 * at start, bounded (MAX_FILES files of at most MAX_FILE_BYTES each), each
 * file PEM (one or more certificates) or DER. Self-signed certificates are
 * the roots; the others are intermediates an EK certificate may chain
 * through. A file that cannot be read is named in the error.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Certificate, isIssuedBy, parseCertificate, pemDecodeAll } from '@latchkey/pki';
import { ConfigError } from '../config/config-load.js';

export const EK_ROOTS_LIMITS = { maxFiles: 1000, maxFileBytes: 64 * 1024 } as const;

export interface EkRoots {
  roots: Certificate[];
  intermediates: Certificate[];
}

export const NO_EK_ROOTS: EkRoots = Object.freeze({ roots: [], intermediates: [] });

/** A configuration error (the CLI prints it as one, without a stack). */
export class EkRootsError extends ConfigError {}

function certificatesOf(path: string, bytes: Buffer): Certificate[] {
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = pemDecodeAll(text).filter((b) => b.label === 'CERTIFICATE');
    if (blocks.length === 0) throw new Error('no CERTIFICATE block');
    return blocks.map((b) => parseCertificate(b.der));
  }
  return [parseCertificate(bytes)];
}

/** Reads every regular file of `dir` (hidden files skipped). Throws EkRootsError naming the directory or the file. */
export function loadEkRoots(dir: string | undefined): EkRoots {
  if (dir === undefined) return NO_EK_ROOTS;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  } catch (e) {
    throw new EkRootsError(`attestation.ekRootsDir ${dir} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); create it, or remove ekRootsDir from the configuration`);
  }
  const out: EkRoots = { roots: [], intermediates: [] };
  let files = 0;
  for (const name of names) {
    const path = join(dir, name);
    const st = statSync(path);
    if (!st.isFile()) continue;
    if (++files > EK_ROOTS_LIMITS.maxFiles) throw new EkRootsError(`attestation.ekRootsDir ${dir} holds more than ${EK_ROOTS_LIMITS.maxFiles} files; keep only the TPM manufacturers' CA certificates there`);
    if (st.size > EK_ROOTS_LIMITS.maxFileBytes) throw new EkRootsError(`${path} is ${st.size} bytes, over the ${EK_ROOTS_LIMITS.maxFileBytes} a CA certificate file may have in attestation.ekRootsDir`);
    let certs: Certificate[];
    try {
      certs = certificatesOf(path, readFileSync(path));
    } catch (e) {
      throw new EkRootsError(`${path} in attestation.ekRootsDir is not a certificate (PEM or DER): ${(e as Error).message}; remove it or replace it with the manufacturer's CA certificate`);
    }
    for (const c of certs) (isIssuedBy(c, c) ? out.roots : out.intermediates).push(c);
  }
  return out;
}
