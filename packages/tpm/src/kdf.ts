/**
 * The TPM's key derivation functions (Part 1 §11.4.10): KDFa, the SP 800-108
 * counter-mode KDF with HMAC, and KDFe, the SP 800-56A concatenation KDF used
 * after ECDH. Both put a 0 byte after the label, and count from 1.
 */
import * as nodeCrypto from 'node:crypto';
import { hashOf } from './public.js';

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

/** The label as the KDFs use it: its bytes and one terminating 0 (not doubled if already there). */
function labelBytes(label: string): Buffer {
  const b = Buffer.from(label, 'latin1');
  return b.length > 0 && b[b.length - 1] === 0 ? b : Buffer.concat([b, Buffer.alloc(1)]);
}

function truncate(parts: Buffer[], bits: number): Buffer {
  const out = Buffer.concat(parts).subarray(0, Math.ceil(bits / 8));
  if (bits % 8 !== 0) out[0]! &= 0xff >> (8 - (bits % 8));
  return out;
}

/** KDFa(hashAlg, key, label, contextU, contextV, bits) of Part 1 §11.4.10.2. */
export function kdfa(hashAlg: number, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Buffer {
  const h = hashOf(hashAlg, 'KDFa');
  const parts: Buffer[] = [];
  for (let i = 1, got = 0; got < bits; i++, got += h.size * 8) {
    parts.push(nodeCrypto.createHmac(h.node, key).update(u32(i)).update(labelBytes(label)).update(contextU).update(contextV).update(u32(bits)).digest());
  }
  return truncate(parts, bits);
}

/** KDFe(hashAlg, Z, label, partyUInfo, partyVInfo, bits) of Part 1 §11.4.10.3; Z is the x-coordinate of the shared point. */
export function kdfe(hashAlg: number, z: Uint8Array, label: string, partyUInfo: Uint8Array, partyVInfo: Uint8Array, bits: number): Buffer {
  const h = hashOf(hashAlg, 'KDFe');
  const parts: Buffer[] = [];
  for (let i = 1, got = 0; got < bits; i++, got += h.size * 8) {
    parts.push(nodeCrypto.createHash(h.node).update(u32(i)).update(z).update(labelBytes(label)).update(partyUInfo).update(partyVInfo).digest());
  }
  return truncate(parts, bits);
}
