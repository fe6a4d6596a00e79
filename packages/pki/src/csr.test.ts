import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { checkCsrPolicy, createCsr, csrStringAttribute, csrToPem, parseCsr, readVerifiedCsr, verifyCsr, MAX_CSR_BYTES } from './csr.js';
import { isPkiError } from './errors.js';
import { encodeExtension, basicConstraintsValue, subjectAltNameValue } from './extensions.js';
import { nodeSigner, webCryptoSigner } from './keys.js';
import { OID } from './oids.js';
import { ecKey, openssl, rsaKey, tempDir } from './testing/support.js';

const expectCode = (fn: () => unknown, code: string, re?: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isPkiError(e), `expected PkiError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
};
const expectRule = (fn: () => unknown, rule: string, re?: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isPkiError(e, 'CSR_POLICY'), `expected CSR_POLICY, got ${String(e)}`);
    assert.equal(e.rule, rule, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
};

/** A CSR made by `openssl req`, independently of our code. */
async function opensslCsr(t: { after: (fn: () => void) => void }, keyAlg: string[], extra: string[] = []): Promise<string> {
  const tmp = tempDir(t);
  tmp.file('req.cnf', '[req]\ndistinguished_name=dn\nattributes=attrs\n[dn]\n[attrs]\nchallengePassword=Challenge password\n');
  const r = await openssl(['req', '-new', '-newkey', ...keyAlg, '-nodes', '-keyout', 'k.pem', '-subj', '/CN=laptop-42', '-config', 'req.cnf', '-out', 'r.pem', ...extra], { cwd: tmp.dir });
  assert.equal(r.code, 0, r.stderr);
  const { readFileSync } = await import('node:fs');
  return readFileSync(`${tmp.dir}/r.pem`, 'utf8');
}

describe('PKCS#10 CSRs made by openssl (RFC 2986)', () => {
  test('P-256: parsed, proof of possession verified, allowed by the default policy', async (t) => {
    const csr = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']));
    assert.deepEqual(csr.publicKey, { kind: 'ec', curve: 'P-256', curveOid: OID.secp256r1, name: 'EC P-256' });
    assert.equal(csr.subject[0]?.value, 'laptop-42');
    assert.equal(csr.signatureAlgorithm, 'ecdsa-with-SHA256');
    checkCsrPolicy(csr);
  });

  test('P-384 and RSA 2048 are allowed; RSA 1024 is refused for its size', async (t) => {
    checkCsrPolicy(readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-384'])));
    const rsa = readVerifiedCsr(await opensslCsr(t, ['rsa:2048']));
    assert.equal(rsa.publicKey.kind === 'rsa' && rsa.publicKey.bits, 2048);
    checkCsrPolicy(rsa);
    const weak = readVerifiedCsr(await opensslCsr(t, ['rsa:1024']));
    expectRule(() => checkCsrPolicy(weak), 'key-size', /1024 bits; at least 2048/);
  });

  test('key types outside the policy are refused: Ed25519, secp256k1, and P-384 when only P-256 is allowed', async (t) => {
    const ed = parseCsr(await opensslCsr(t, ['ed25519']));
    expectRule(() => checkCsrPolicy(ed), 'key-type', /not allowed/);
    const k1 = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1']));
    expectRule(() => checkCsrPolicy(k1), 'key-type');
    const p384 = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-384']));
    expectRule(() => checkCsrPolicy(p384, { keyAlgorithms: ['P-256'], minRsaBits: 2048, signatureAlgorithms: ['ecdsa-with-SHA256', 'ecdsa-with-SHA384'] }), 'key-type', /EC P-384/);
  });

  test('challengePassword is read (RFC 2985 §5.4.1)', async (t) => {
    const tmp = tempDir(t);
    tmp.file('req.cnf', '[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=laptop-42\n[attrs]\nchallengePassword=tok_s3cret-value\n');
    const r = await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-config', 'req.cnf', '-out', 'r.pem'], { cwd: tmp.dir });
    assert.equal(r.code, 0, r.stderr);
    const { readFileSync } = await import('node:fs');
    const csr = readVerifiedCsr(readFileSync(`${tmp.dir}/r.pem`));
    assert.equal(csr.challengePassword, 'tok_s3cret-value');
  });

  test('a CSR asking for CA:true is refused', async (t) => {
    const csr = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'basicConstraints=critical,CA:TRUE']));
    expect(csr.requestedExtensions.has(OID.basicConstraints));
    expectRule(() => checkCsrPolicy(csr), 'ca-requested', /never CAs/);
  });

  test('a CSR asking for its own SANs is refused (identity comes from the server)', async (t) => {
    const csr = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-addext', 'subjectAltName=URI:spiffe://example.com/device/someone-else']));
    expectRule(() => checkCsrPolicy(csr), 'san-requested', /set by the server/);
    // …unless the policy names exactly that SAN.
    checkCsrPolicy(csr, { keyAlgorithms: ['P-256'], minRsaBits: 2048, signatureAlgorithms: ['ecdsa-with-SHA256'], allowedSubjectAltNames: [{ uri: 'spiffe://example.com/device/someone-else' }] });
  });

  test('a signature algorithm outside the policy is refused', async (t) => {
    const csr = readVerifiedCsr(await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], ['-sha384']));
    assert.equal(csr.signatureAlgorithm, 'ecdsa-with-SHA384');
    expectRule(() => checkCsrPolicy(csr, { keyAlgorithms: ['P-256'], minRsaBits: 2048, signatureAlgorithms: ['ecdsa-with-SHA256'] }), 'signature-algorithm');
  });

  test('a tampered CSR fails proof of possession', async (t) => {
    const pem = await opensslCsr(t, ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    const csr = parseCsr(pem);
    const der = Buffer.from(csr.der);
    // Flip a bit inside the subject's CN value ("laptop-42" → "lapto0-42").
    const at = der.indexOf(Buffer.from('laptop-42'));
    der[at + 5] = der[at + 5]! ^ 0x40;
    expectCode(() => readVerifiedCsr(der), 'SIGNATURE_INVALID', /does not verify/);
  });
});

function expect(cond: boolean): void {
  assert.ok(cond);
}

describe('CSRs we build are accepted by openssl', () => {
  test('node:crypto signer, with challengePassword, extensions and a facts attribute', async (t) => {
    const der = await createCsr({
      subject: [{ type: 'CN', value: 'laptop-7' }],
      signer: nodeSigner(ecKey()),
      challengePassword: 'token-123',
      extensions: [encodeExtension(OID.basicConstraints, true, basicConstraintsValue(false))],
      stringAttributes: [{ oid: '1.3.6.1.4.1.59402.1.1', value: '{"hostname":"laptop-7"}' }],
    });
    const tmp = tempDir(t);
    const v = await openssl(['req', '-in', tmp.file('r.pem', csrToPem(der)), '-verify', '-noout', '-text']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stderr + v.stdout, /verify OK/);
    assert.match(v.stdout, /challengePassword\s*:token-123/);
    const csr = readVerifiedCsr(der);
    assert.equal(csrStringAttribute(csr, '1.3.6.1.4.1.59402.1.1', 1000), '{"hostname":"laptop-7"}');
    expectCode(() => csrStringAttribute(csr, '1.3.6.1.4.1.59402.1.1', 5), 'INPUT_TOO_LARGE');
  });

  test('WebCrypto signer (how PKCS#11/TPM keys plug in), P-384 and RSA', async (t) => {
    for (const alg of [
      { name: 'ECDSA', namedCurve: 'P-384' },
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    ]) {
      const kp = (await crypto.webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as crypto.webcrypto.CryptoKeyPair;
      const spki = new Uint8Array(await crypto.webcrypto.subtle.exportKey('spki', kp.publicKey));
      const der = await createCsr({ subject: [{ type: 'CN', value: 'tpm-laptop' }], signer: webCryptoSigner(crypto.webcrypto, kp.privateKey, spki) });
      const tmp = tempDir(t);
      const v = await openssl(['req', '-in', tmp.file('r.pem', csrToPem(der)), '-verify', '-noout']);
      assert.equal(v.code, 0, v.stderr);
      const csr = readVerifiedCsr(der);
      checkCsrPolicy(csr);
    }
  });

  test('RSA node signer produces sha256WithRSAEncryption', async () => {
    const csr = readVerifiedCsr(await createCsr({ subject: [{ type: 'CN', value: 'r' }], signer: nodeSigner(rsaKey()) }));
    assert.equal(csr.signatureAlgorithm, 'sha256WithRSAEncryption');
  });

  test('a requested SAN built by us is refused too', async () => {
    const der = await createCsr({
      subject: [{ type: 'CN', value: 'x' }],
      signer: nodeSigner(ecKey()),
      extensions: [encodeExtension(OID.subjectAltName, false, subjectAltNameValue([{ dns: 'intranet.example.com' }]))],
    });
    expectRule(() => checkCsrPolicy(readVerifiedCsr(der)), 'san-requested');
  });
});

describe('bad CSR input → typed errors, never a crash', () => {
  test('truncated at every length', async () => {
    const der = await createCsr({ subject: [{ type: 'CN', value: 'x' }], signer: nodeSigner(ecKey()) });
    for (let cut = 0; cut < der.length; cut++) {
      assert.throws(() => readVerifiedCsr(der.subarray(0, cut)), (e: unknown) => isPkiError(e) && (e.code === 'DER_MALFORMED' || e.code === 'SIGNATURE_INVALID'), `cut at ${cut}`);
    }
  });

  test('random bytes, empty input, wrong PEM label, oversized input', async () => {
    for (let i = 0; i < 200; i++) {
      assert.throws(() => parseCsr(crypto.randomBytes(1 + i)), (e: unknown) => isPkiError(e));
    }
    expectCode(() => parseCsr(new Uint8Array(0)), 'DER_MALFORMED');
    const der = await createCsr({ subject: [{ type: 'CN', value: 'x' }], signer: nodeSigner(ecKey()) });
    expectCode(() => parseCsr(csrToPem(der).replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE')), 'PEM_INVALID', /CERTIFICATE REQUEST/);
    expectCode(() => parseCsr(Buffer.alloc(MAX_CSR_BYTES + 1, 0x30)), 'INPUT_TOO_LARGE');
    expectCode(() => parseCsr('-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n'), 'DER_MALFORMED');
  });

  test('a certificate passed as a CSR is refused', async () => {
    const { newCa } = await import('./testing/support.js');
    const ca = await newCa();
    assert.throws(() => verifyCsr(parseCsr(ca.root.der)), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
  });
});
