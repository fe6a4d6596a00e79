/** Certificate serial numbers (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
import { PkiError } from './errors.js';

/** A source of random bytes, passed in so tests can fix it (node: crypto.randomBytes). */
export type RandomBytes = (n: number) => Uint8Array;

/**
 * A random positive 128-bit serial as unsigned bytes. DER adds a leading zero
 * when the top bit is set, so the encoding is 16 or 17 octets.
 */
export function randomSerial(randomBytes: RandomBytes): Buffer {
  const b = Buffer.from(randomBytes(16));
  if (b.length !== 16) throw new PkiError('ARGUMENT_INVALID', 'randomBytes returned the wrong number of bytes');
  // A serial of 0 is not positive; with 128 random bits this never happens by chance.
  if (b.every((x) => x === 0)) throw new PkiError('ARGUMENT_INVALID', 'randomBytes returned all zeros');
  // Keep 16 significant octets so every serial has the same length and ordering is stable.
  if (b[0] === 0) b[0] = 1;
  return b;
}

export const serialToHex = (serial: Uint8Array): string => Buffer.from(serial).toString('hex');

export function serialFromHex(hex: string): Buffer {
  const h = hex.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(h) || h.length > 40) throw new PkiError('ARGUMENT_INVALID', `not a serial number: "${hex}"`);
  const b = Buffer.from(h.length % 2 ? '0' + h : h, 'hex');
  let s = 0;
  while (s < b.length - 1 && b[s] === 0) s++;
  return b.subarray(s);
}
