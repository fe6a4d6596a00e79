/**
 * The agent's own TPM structures, checked against node:crypto: an ECC
 * TPM2B_PUBLIC (Part 2 §12.2.5) becomes the key's SPKI, TPM2_Certify
 * (Part 3 §18.2) is marshalled as the TPM reads it, and its response is
 * split into certifyInfo and signature.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, test } from 'node:test';
import { rawEcdsaToDer } from './tpm-key.js';
import { TpmWireError, certifyCommand, credentialFile, eccPublicOf, parseCertifyResponse, rcText } from './tpm-wire.js';

const u16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const tpm2b = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);

/** TPMT_PUBLIC of an ECC P-256 signing key, NULL symmetric, `scheme`, NULL kdf. */
function eccPublic(x: Buffer, y: Buffer, scheme: Buffer = u16(0x0010)): Buffer {
  const t = Buffer.concat([u16(0x0023), u16(0x000b), u32(0x00040472), tpm2b(Buffer.alloc(0)), u16(0x0010), scheme, u16(0x0003), u16(0x0010), tpm2b(x), tpm2b(y)]);
  return tpm2b(t);
}

describe('agent TPM wire structures', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');

  test('Part 2 §12.2.5: an ECC P-256 TPM2B_PUBLIC (NULL or ECDSA scheme) is the SPKI node:crypto exports', () => {
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    assert.ok(eccPublicOf(eccPublic(x, y)).spki.equals(spki));
    assert.ok(eccPublicOf(eccPublic(x, y, Buffer.concat([u16(0x0018), u16(0x000b)]))).spki.equals(spki));
    assert.equal(eccPublicOf(eccPublic(x, y)).objectAttributes, 0x00040472);
  });

  test('refused: truncated, trailing bytes, another curve, a short coordinate, too large', () => {
    const good = eccPublic(x, y);
    assert.throws(() => eccPublicOf(good.subarray(0, good.length - 1)), TpmWireError);
    assert.throws(() => eccPublicOf(Buffer.concat([good, Buffer.from([0])])), /trailing/);
    const p521 = Buffer.from(good);
    p521.writeUInt16BE(0x0005, 2 + 2 + 2 + 4 + 2 + 2 + 2);
    assert.throws(() => eccPublicOf(p521), /curve/);
    assert.throws(() => eccPublicOf(eccPublic(x.subarray(1), y)), /malformed EC point/);
    assert.throws(() => eccPublicOf(Buffer.alloc(4096)), /more than 2048/);
  });

  test('TPM2_Certify: header, two password sessions with the auth values, qualifyingData, NULL scheme', () => {
    const q = Buffer.alloc(32, 7);
    const cmd = certifyCommand({ objectHandle: 0x81010100, objectAuth: Buffer.from('key-auth'), signHandle: 0x81010001, signAuth: Buffer.alloc(0), qualifyingData: q });
    assert.equal(cmd.readUInt16BE(0), 0x8002);
    assert.equal(cmd.readUInt32BE(2), cmd.length);
    assert.equal(cmd.readUInt32BE(6), 0x148);
    assert.deepEqual([cmd.readUInt32BE(10), cmd.readUInt32BE(14)], [0x81010100, 0x81010001]);
    const authSize = cmd.readUInt32BE(18);
    const auth = cmd.subarray(22, 22 + authSize);
    assert.ok(auth.equals(Buffer.concat([u32(0x40000009), u16(0), Buffer.from([0]), tpm2b(Buffer.from('key-auth')), u32(0x40000009), u16(0), Buffer.from([0]), u16(0)])));
    assert.ok(cmd.subarray(22 + authSize).equals(Buffer.concat([tpm2b(q), u16(0x0010)])));
    assert.throws(() => certifyCommand({ objectHandle: 1, objectAuth: Buffer.alloc(0), signHandle: 2, signAuth: Buffer.alloc(0), qualifyingData: Buffer.alloc(65) }), /longer than a digest/);
  });

  test('the certify response splits into TPMS_ATTEST and TPMT_SIGNATURE; an error code is returned', () => {
    const attest = Buffer.from('ff544347801700', 'hex');
    const sig = Buffer.concat([u16(0x0018), u16(0x000b), tpm2b(Buffer.alloc(32, 1)), tpm2b(Buffer.alloc(32, 2))]);
    const params = Buffer.concat([tpm2b(attest), sig]);
    const session = Buffer.from([0, 0, 1, 0, 0]);
    const body = Buffer.concat([u32(params.length), params, session, session]);
    const resp = Buffer.concat([u16(0x8002), u32(10 + body.length), u32(0), body]);
    const r = parseCertifyResponse(resp);
    assert.ok(!('rc' in r));
    assert.ok(r.certifyInfo.equals(attest));
    assert.ok(r.signature.equals(sig));
    assert.deepEqual(parseCertifyResponse(Buffer.concat([u16(0x8001), u32(10), u32(0x98e)])), { rc: 0x98e });
    assert.match(rcText(0x98e), /TPM_RC_AUTH_FAIL/);
    assert.throws(() => parseCertifyResponse(Buffer.concat([u16(0x8001), u32(99), u32(0)])), /says it has 99/);
  });

  test('the credential file: 0xBADCC0DE, version 1, the blobs as sent', () => {
    const f = credentialFile(Buffer.from('0002aabb', 'hex'), Buffer.from('0001cc', 'hex'));
    assert.equal(f.toString('hex'), 'badcc0de000000010002aabb0001cc');
  });

  test('r||s becomes a DER ECDSA-Sig-Value that node:crypto verifies', () => {
    for (let i = 0; i < 20; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      assert.ok(verify('sha256', data, publicKey, rawEcdsaToDer(raw)));
    }
  });
});
