/**
 * @latchkey/tpm against a real software TPM: MakeCredential done in
 * TypeScript is activated by TPM2_ActivateCredential inside swtpm (RSA and
 * ECC EKs), a TPM2_Certify made by swtpm verifies in TypeScript, and the EK
 * certificate swtpm_setup wrote chains to swtpm_localca.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  deviceKeyAttributeProblems,
  isTpmError,
  makeCredential,
  objectName,
  parsePublic2B,
  publicKeySpki,
  verifyCertify,
  verifyEkCertificate,
  type MadeCredential,
} from '@latchkey/tpm';
import { type SwtpmWithEkCert, swtpmWithEkCert } from '../../agent/test-support/dist/tpm-fixtures.js';
import { skipOrRequire } from './support/processes.js';

const AK = '0x81000101';

/** The file tpm2_activatecredential -i reads: magic 0xBADCC0DE, version 1, then the two TPM2Bs. */
function credentialFile(c: MadeCredential): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0xbadcc0de, 0);
  head.writeUInt32BE(1, 4);
  return Buffer.concat([head, c.credentialBlob, c.encryptedSecret]);
}

function activate(tpm: SwtpmWithEkCert, ekCtx: string, c: MadeCredential): { ok: boolean; secret: Buffer; stderr: string } {
  writeFileSync(join(tpm.dir, 'cred.bin'), credentialFile(c));
  tpm.tools('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
  try {
    tpm.tools('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
    const r = tpm.tools('tpm2_activatecredential', ['-c', AK, '-C', ekCtx, '-i', 'cred.bin', '-o', 'secret.out', '-P', 'session:session.ctx'], { allowFail: true });
    return { ok: r.code === 0, secret: r.code === 0 ? readFileSync(join(tpm.dir, 'secret.out')) : Buffer.alloc(0), stderr: r.stderr };
  } finally {
    tpm.tools('tpm2_flushcontext', ['session.ctx'], { allowFail: true });
  }
}

/** TPM2_Certify (Part 3 §18.2) as raw bytes through tpm2_send: tpm2-tools 5.4's tpm2_certify cannot pass qualifying data. */
function certify(tpm: SwtpmWithEkCert, keyHandle: number, akHandle: number, nonce: Buffer): { attest: Buffer; signature: Buffer } {
  const u16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  const pw = Buffer.concat([u32(0x40000009), u16(0), Buffer.from([0]), u16(0)]); // TPM_RS_PW, empty auth
  const body = Buffer.concat([u32(keyHandle), u32(akHandle), u32(pw.length * 2), pw, pw, u16(nonce.length), nonce, u16(0x0010)]);
  const cmd = Buffer.concat([u16(0x8002), u32(10 + body.length), u32(0x148), body]);
  const out = tpm.tools('tpm2_send', [], { input: cmd }).stdout;
  const rc = out.readUInt32BE(6);
  if (rc !== 0) throw new Error(`TPM2_Certify returned 0x${rc.toString(16)}`);
  const paramSize = out.readUInt32BE(10);
  const attestLen = out.readUInt16BE(14);
  return { attest: out.subarray(16, 16 + attestLen), signature: out.subarray(16 + attestLen, 14 + paramSize) };
}

/** Creates a P-256 signing key under an owner primary, with the given attributes, persisted at `handle`. */
function createKey(tpm: SwtpmWithEkCert, name: string, attributes: string, handle: string): Buffer {
  tpm.tools('tpm2_create', ['-C', 'primary.ctx', '-G', 'ecc256:ecdsa-sha256', '-a', attributes, '-u', `${name}.pub`, '-r', `${name}.priv`]);
  tpm.tools('tpm2_load', ['-C', 'primary.ctx', '-u', `${name}.pub`, '-r', `${name}.priv`, '-c', `${name}.ctx`]);
  tpm.tools('tpm2_evictcontrol', ['-C', 'o', '-c', `${name}.ctx`, handle]);
  return readFileSync(join(tpm.dir, `${name}.pub`));
}

test('TCG credential activation and key certification against swtpm', async (t) => {
  const tpm = await swtpmWithEkCert(t);
  if (typeof tpm === 'string') return skipOrRequire(t, `missing ${tpm}`);

  tpm.tools('tpm2_createek', ['-G', 'rsa', '-c', 'ek-rsa.ctx', '-u', 'ek-rsa.pub']);
  tpm.tools('tpm2_createek', ['-G', 'ecc', '-c', 'ek-ecc.ctx', '-u', 'ek-ecc.pub']);
  tpm.tools('tpm2_createak', ['-C', 'ek-rsa.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name', '-r', 'ak.priv']);
  tpm.tools('tpm2_evictcontrol', ['-C', 'o', '-c', 'ak.ctx', AK]);
  const ak = parsePublic2B(readFileSync(join(tpm.dir, 'ak.pub')));
  const ekRsa = parsePublic2B(readFileSync(join(tpm.dir, 'ek-rsa.pub')));
  const ekEcc = parsePublic2B(readFileSync(join(tpm.dir, 'ek-ecc.pub')));

  await t.test('the AK Name computed in TypeScript is the one the TPM reports', () => {
    assert.ok(objectName(ak).equals(readFileSync(join(tpm.dir, 'ak.name'))));
  });

  for (const [label, ek, ctx] of [['RSA 2048 (OAEP, "IDENTITY")', ekRsa, 'ek-rsa.ctx'], ['ECC P-256 (ECDH, KDFe)', ekEcc, 'ek-ecc.ctx']] as const) {
    await t.test(`Part 1 §24: TPM2_ActivateCredential recovers a secret made in TypeScript for the ${label} EK`, () => {
      const secret = randomBytes(32);
      const r = activate(tpm, ctx, makeCredential({ ekPublic: ek, objectName: objectName(ak), secret, random: randomBytes }));
      assert.ok(r.ok, r.stderr);
      assert.ok(r.secret.equals(secret));
    });

    await t.test(`a credential made for another object's Name does not activate with the AK (${label})`, () => {
      const other = objectName(ekRsa);
      const r = activate(tpm, ctx, makeCredential({ ekPublic: ek, objectName: other, secret: randomBytes(16), random: randomBytes }));
      assert.equal(r.ok, false);
      assert.match(r.stderr, /integrity check failed/); // TPM_RC_INTEGRITY on credentialBlob: the outer HMAC binds the Name
    });
  }

  tpm.tools('tpm2_createprimary', ['-C', 'o', '-G', 'ecc', '-c', 'primary.ctx']);
  const key = parsePublic2B(createKey(tpm, 'key', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign', '0x81000102'));
  const loose = parsePublic2B(createKey(tpm, 'loose', 'sensitivedataorigin|userwithauth|sign', '0x81000103'));
  const nonce = randomBytes(32);
  const made = certify(tpm, 0x81000102, 0x81000101, nonce);

  await t.test('Part 3 §18.2: the TPM2_Certify of the device key by the AK verifies, and the key passes the policy', () => {
    const a = verifyCertify({ akPublic: ak, ...made, nonce, certifiedPublic: key });
    assert.ok(a.qualifiedSigner.length > 0);
    assert.deepEqual(deviceKeyAttributeProblems(key), []);
    assert.equal(publicKeySpki(key).length, 91);
  });

  await t.test('refused: another nonce, another key public, a flipped signature bit', () => {
    assert.throws(() => verifyCertify({ akPublic: ak, ...made, nonce: randomBytes(32), certifiedPublic: key }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
    assert.throws(() => verifyCertify({ akPublic: ak, ...made, nonce, certifiedPublic: loose }), (e) => isTpmError(e, 'ATTESTATION_INVALID'));
    const sig = Buffer.from(made.signature);
    sig[20]! ^= 0x10;
    assert.throws(() => verifyCertify({ akPublic: ak, attest: made.attest, signature: sig, nonce, certifiedPublic: key }), (e) => isTpmError(e, 'SIGNATURE_INVALID'));
  });

  await t.test('a key created with fixedTPM clear is certified truthfully and refused by the policy', () => {
    const n = randomBytes(32);
    verifyCertify({ akPublic: ak, ...certify(tpm, 0x81000103, 0x81000101, n), nonce: n, certifiedPublic: loose });
    const problems = deviceKeyAttributeProblems(loose);
    assert.match(problems.join('\n'), /^fixedTPM is clear/m);
    assert.match(problems.join('\n'), /^fixedParent is clear/m);
  });

  await t.test('TCG EK credential profile: the EK certificate in NV chains to swtpm_localca and certifies the RSA EK', () => {
    const der = tpm.tools('tpm2_nvread', ['0x1c00002']).stdout;
    const r = verifyEkCertificate({
      certificate: der,
      intermediates: [readFileSync(tpm.issuerCaPem, 'utf8')],
      roots: [readFileSync(tpm.rootCaPem, 'utf8')],
      now: new Date(),
      ekPublic: ekRsa,
    });
    assert.equal(r.tpm.model, 'swtpm');
    assert.throws(() => verifyEkCertificate({ certificate: der, roots: [readFileSync(tpm.rootCaPem, 'utf8')], now: new Date(), ekPublic: ekRsa }), (e) => isTpmError(e, 'CHAIN_INVALID'));
  });
});
