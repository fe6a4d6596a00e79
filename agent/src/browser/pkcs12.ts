/**
 * A small PKCS#12 (RFC 7292) builder on node:crypto, so the agent can hand a
 * certificate and its key to the platform certificate stores (NSS's
 * pk12util, macOS `security import`, Windows Import-PfxCertificate) without
 * OpenSSL installed (Windows has none). Write-only: the tools parse it.
 *
 * Layout, as OpenSSL and the platform tools write it:
 *   PFX { version 3, authSafe = data(AuthenticatedSafe), macData }
 *   AuthenticatedSafe = [ encryptedData(SafeContents[certBag…]), data(SafeContents[pkcs8ShroudedKeyBag]) ]
 * The key bag and the leaf's cert bag carry friendlyName (the nickname /
 * label the stores show) and localKeyId (SHA-1 of the leaf certificate).
 *
 * Two profiles:
 * - 'aes256-sha256' (NSS, Windows 10 1709+): PBES2 with PBKDF2-HMAC-SHA256
 *   and AES-256-CBC for both bags, HMAC-SHA256 MAC — OpenSSL 3's default.
 * - 'legacy-3des-sha1' (macOS): pbeWithSHAAnd3-KeyTripleDES-CBC for both
 *   bags, HMAC-SHA1 MAC. macOS's SecPKCS12Import (behind `security import`)
 *   verifies only SHA-1 MACs — a SHA-256 MAC fails as "MAC verification failed
 *   (wrong password?)" (Apple FB8988319; OpenSSL 3 users pass `-legacy`), and
 *   macOS 10.15 has no AES in PKCS#12. 3DES + SHA-1 is what Keychain Access
 *   exports itself. The weak KDF is not the protection here: the bundle lives
 *   for one import in a 0700 directory under a random 256-bit password.
 */
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { explicit, implicitPrimitive, int, nul, octets, oid, seq, setOf, tlv } from '@latchkey/pki/der';

export type Pkcs12Profile = 'aes256-sha256' | 'legacy-3des-sha1';

export interface Pkcs12Input {
  /** DER certificates, the one that goes with the key first. */
  certs: Buffer[];
  /** The private key as unencrypted PKCS#8 DER. */
  pkcs8: Buffer;
  /** ASCII; the caller makes it random (see randomPkcs12Password). */
  password: string;
  friendlyName: string;
  profile: Pkcs12Profile;
  /** PBKDF2 / PKCS#12 KDF iterations for the bags and the MAC (default 2048, as OpenSSL). */
  iterations?: number;
  /** Randomness for salts and IVs (tests make it deterministic). */
  random?: (n: number) => Buffer;
}

const O = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  pbeWithSHAAnd3KeyTripleDesCbc: '1.2.840.113549.1.12.1.3',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const;

/** A random password for one bundle: 256 bits, base64url (ASCII, no shell or quoting hazards). */
export const randomPkcs12Password = (): string => randomBytes(32).toString('base64url');

/** The password as PKCS#12 hashes it: BMPString (UTF-16BE) with a two-byte NUL terminator (RFC 7292 §B.1). */
export function bmpPassword(password: string): Buffer {
  const le = Buffer.from(`${password}\0`, 'utf16le');
  return Buffer.from(le).swap16();
}

/** RFC 7292 Appendix B.2: the PKCS#12 key derivation (id 1 key, 2 IV, 3 MAC key). */
export function pkcs12Kdf(hash: 'sha1' | 'sha256', password: Buffer, salt: Buffer, id: 1 | 2 | 3, iterations: number, n: number): Buffer {
  const u = hash === 'sha1' ? 20 : 32;
  const v = 64;
  const fill = (b: Buffer): Buffer => {
    const len = v * Math.ceil(b.length / v);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = b[i % b.length]!;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([salt.length ? fill(salt) : Buffer.alloc(0), password.length ? fill(password) : Buffer.alloc(0)]);
  const out: Buffer[] = [];
  for (let produced = 0; produced < n; produced += u) {
    let A = createHash(hash).update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash(hash).update(A).digest();
    out.push(A);
    if (produced + u >= n) break;
    const B = fill(A);
    // I_j = (I_j + B + 1) mod 2^(8v), for each v-byte block of I.
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const s = I[j + k]! + B[k]! + carry;
        I[j + k] = s & 0xff;
        carry = s >> 8;
      }
    }
  }
  return Buffer.concat(out).subarray(0, n);
}

interface Encrypted {
  algorithm: Buffer;
  ciphertext: Buffer;
}

function encrypt(plain: Buffer, i: Required<Pick<Pkcs12Input, 'password' | 'profile' | 'iterations' | 'random'>>): Encrypted {
  const salt = i.random(i.profile === 'aes256-sha256' ? 16 : 8);
  if (i.profile === 'aes256-sha256') {
    // PBES2 (RFC 8018 §6.2): PBKDF2 over the password's UTF-8 bytes, as OpenSSL and RFC 9579 do.
    const iv = i.random(16);
    const key = pbkdf2Sync(Buffer.from(i.password, 'utf8'), salt, i.iterations, 32, 'sha256');
    const c = createCipheriv('aes-256-cbc', key, iv);
    const algorithm = seq(
      oid(O.pbes2),
      seq(seq(oid(O.pbkdf2), seq(octets(salt), int(i.iterations), seq(oid(O.hmacWithSHA256), nul()))), seq(oid(O.aes256Cbc), octets(iv))),
    );
    return { algorithm, ciphertext: Buffer.concat([c.update(plain), c.final()]) };
  }
  const bmp = bmpPassword(i.password);
  const key = pkcs12Kdf('sha1', bmp, salt, 1, i.iterations, 24);
  const iv = pkcs12Kdf('sha1', bmp, salt, 2, i.iterations, 8);
  const c = createCipheriv('des-ede3-cbc', key, iv);
  return { algorithm: seq(oid(O.pbeWithSHAAnd3KeyTripleDesCbc), seq(octets(salt), int(i.iterations))), ciphertext: Buffer.concat([c.update(plain), c.final()]) };
}

const attribute = (type: string, value: Buffer): Buffer => seq(oid(type), setOf(value));
const bmpString = (s: string): Buffer => tlv(0x1e, Buffer.from(s, 'utf16le').swap16());
const dataContentInfo = (content: Buffer): Buffer => seq(oid(O.data), explicit(0, octets(content)));

/** The PFX, DER. */
export function buildPkcs12(input: Pkcs12Input): Buffer {
  if (input.certs.length === 0) throw new Error('PKCS#12: no certificate');
  if (!/^[\x20-\x7e]+$/.test(input.password)) throw new Error('PKCS#12: the password must be printable ASCII');
  const p = { password: input.password, profile: input.profile, iterations: input.iterations ?? 2048, random: input.random ?? randomBytes };
  const localKeyId = createHash('sha1').update(input.certs[0]!).digest();
  const ownAttributes = setOf(attribute(O.friendlyName, bmpString(input.friendlyName)), attribute(O.localKeyId, octets(localKeyId)));

  const certBags = input.certs.map((der, n) => seq(oid(O.certBag), explicit(0, seq(oid(O.x509Certificate), explicit(0, octets(der)))), ...(n === 0 ? [ownAttributes] : [])));
  const certs = encrypt(seq(...certBags), p);
  const certsInfo = seq(oid(O.encryptedData), explicit(0, seq(int(0), seq(oid(O.data), certs.algorithm, implicitPrimitive(0, certs.ciphertext)))));

  const key = encrypt(input.pkcs8, p);
  const keyBag = seq(oid(O.pkcs8ShroudedKeyBag), explicit(0, seq(key.algorithm, octets(key.ciphertext))), ownAttributes);
  const keyInfo = dataContentInfo(seq(keyBag));

  const authSafe = seq(certsInfo, keyInfo);
  const macHash = p.profile === 'aes256-sha256' ? 'sha256' : 'sha1';
  const macSalt = p.random(p.profile === 'aes256-sha256' ? 16 : 8);
  const macKey = pkcs12Kdf(macHash, bmpPassword(p.password), macSalt, 3, p.iterations, macHash === 'sha1' ? 20 : 32);
  const mac = createHmac(macHash, macKey).update(authSafe).digest();
  const macData = seq(seq(seq(oid(macHash === 'sha1' ? O.sha1 : O.sha256), nul()), octets(mac)), octets(macSalt), int(p.iterations));
  return seq(int(3), dataContentInfo(authSafe), macData);
}
