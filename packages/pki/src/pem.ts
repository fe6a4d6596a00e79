/**
 * PEM (RFC 7468) encode/decode. Decoding is strict about the label so a CRL
 * is never mistaken for a certificate; `toDer` accepts PEM or raw DER.
 */
import { PkiError } from './errors.js';

/** Upper bound for any single PEM/DER input we parse (a 1M-entry CRL is ~40 MB). */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Every PEM block in `text`, in order. Throws on a malformed block. */
export function pemDecodeAll(text: string): PemBlock[] {
  if (text.length > MAX_INPUT_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `PEM input is ${text.length} bytes; the limit is ${MAX_INPUT_BYTES}`);
  }
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const [, begin, body, end] = m;
    if (begin !== end) throw new PkiError('PEM_INVALID', `PEM block BEGIN ${begin} ends with END ${end}`);
    // RFC 7468 allows headers only in legacy encrypted blocks; we do not accept them.
    if (body!.includes(':')) throw new PkiError('PEM_INVALID', `PEM block ${begin} has headers, which are not supported`);
    const b64 = body!.replace(/\s+/g, '');
    if (!B64.test(b64) || b64.length % 4 !== 0) {
      throw new PkiError('PEM_INVALID', `PEM block ${begin} has invalid base64`);
    }
    const der = Buffer.from(b64, 'base64');
    if (der.length === 0) throw new PkiError('PEM_INVALID', `PEM block ${begin} is empty`);
    out.push({ label: begin!, der });
  }
  return out;
}

/** Exactly one block with one of `labels`; the first label is the canonical one. */
export function pemDecode(text: string, ...labels: string[]): Buffer {
  const blocks = pemDecodeAll(text);
  if (blocks.length === 0) {
    throw new PkiError('PEM_INVALID', `expected a PEM ${labels[0]} block, found no PEM block`);
  }
  const matching = blocks.filter((b) => labels.includes(b.label));
  if (matching.length === 0) {
    throw new PkiError('PEM_INVALID', `expected a PEM ${labels[0]} block, found ${blocks.map((b) => b.label).join(', ')}`);
  }
  if (matching.length > 1) throw new PkiError('PEM_INVALID', `expected one PEM ${labels[0]} block, found ${matching.length}`);
  return matching[0]!.der;
}

const looksLikePem = (b: Uint8Array): boolean => {
  // Skip leading whitespace; PEM starts with '-----BEGIN'.
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return b[i] === 0x2d && b[i + 1] === 0x2d;
};

/**
 * Input as DER: a string or bytes holding PEM with one of `labels`, or raw
 * DER bytes. Does not parse the DER; the caller's parser does.
 */
export function toDer(input: string | Uint8Array, ...labels: string[]): Buffer {
  if (typeof input === 'string') return pemDecode(input, ...labels);
  if (input.byteLength > MAX_INPUT_BYTES) {
    throw new PkiError('INPUT_TOO_LARGE', `input is ${input.byteLength} bytes; the limit is ${MAX_INPUT_BYTES}`);
  }
  if (looksLikePem(input)) return pemDecode(Buffer.from(input).toString('latin1'), ...labels);
  if (input.byteLength === 0) throw new PkiError('DER_MALFORMED', 'input is empty');
  return Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

export const PEM = {
  CERTIFICATE: 'CERTIFICATE',
  CSR: 'CERTIFICATE REQUEST',
  CSR_LEGACY: 'NEW CERTIFICATE REQUEST',
  CRL: 'X509 CRL',
  PKCS7: 'PKCS7',
  PRIVATE_KEY: 'PRIVATE KEY',
  ENCRYPTED_PRIVATE_KEY: 'ENCRYPTED PRIVATE KEY',
  PUBLIC_KEY: 'PUBLIC KEY',
} as const;
