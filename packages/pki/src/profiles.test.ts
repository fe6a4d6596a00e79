import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { certificateToPem, extKeyUsage, parseCertificate, signCertificate, subjectAltNames, keyUsage, basicConstraints, subjectKeyId, authorityKeyId } from './certificate.js';
import { isPkiError } from './errors.js';
import { decodeCertificatePolicies } from './extensions.js';
import { keyIdentifier } from './keys.js';
import { encodeName } from './name.js';
import { OID } from './oids.js';
import { issueOcspResponderCertificate, issueServerCertificate } from './profiles.js';
import { randomSerial } from './serial.js';
import { DEVICE_ID, NOW, NOW_EPOCH, deviceProfile, ecKey, newCa, openssl, rsaKey, spkiOf, tempDir } from './testing/support.js';

describe('device certificate profile (docs/architecture.md "Identities", RFC 5280 §4.2)', () => {
  test('openssl verifies the chain for sslclient and not for sslserver', async (t) => {
    const ca = await newCa();
    const der = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-7', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const root = tmp.file('root.pem', certificateToPem(ca.root.der));
    const int = tmp.file('int.pem', certificateToPem(ca.issuing.cert.der));
    const dev = tmp.file('dev.pem', certificateToPem(der));
    const ok = await openssl(['verify', '-attime', String(NOW_EPOCH), '-purpose', 'sslclient', '-CAfile', root, '-untrusted', int, dev]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /dev.pem: OK/);
    const server = await openssl(['verify', '-attime', String(NOW_EPOCH), '-purpose', 'sslserver', '-CAfile', root, '-untrusted', int, dev]);
    assert.notEqual(server.code, 0, 'a device certificate must not pass as a TLS server certificate');
    const expired = await openssl(['verify', '-attime', String(NOW_EPOCH + 86_400 + 60), '-CAfile', root, '-untrusted', int, dev]);
    assert.match(expired.stdout + expired.stderr, /certificate has expired/);
  });

  test('openssl x509 -text shows every extension of the profile', async (t) => {
    const ca = await newCa();
    const der = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-7', email: 'alice@example.com', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const text = (await openssl(['x509', '-in', tmp.file('d.pem', certificateToPem(der)), '-noout', '-text'])).stdout;
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, new RegExp(`Subject: O = Example Corp, CN = laptop-7, UID = ${DEVICE_ID}, emailAddress = alice@example.com\\n`));
    assert.match(text, /Issuer: O = Example Corp, CN = Example Corp Latchkey Device CA\n/);
    assert.match(text, new RegExp(`Subject Alternative Name: \\n\\s+URI:spiffe://example.com/device/${DEVICE_ID}, email:alice@example.com\\n`));
    assert.match(text, /Key Usage: critical\s+Digital Signature\n/);
    assert.match(text, /Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
    assert.match(text, /Subject Key Identifier:/);
    assert.match(text, /Authority Key Identifier: \n\s+[0-9A-F:]{59}\n/);
    assert.match(text, /CRL Distribution Points: \n\s+Full Name:\n\s+URI:https:\/\/latchkey.example.com:8443\/crl\n/);
    assert.match(text, /OCSP - URI:https:\/\/latchkey.example.com:8443\/ocsp\n/);
    assert.match(text, /CA Issuers - URI:https:\/\/latchkey.example.com:8443\/.well-known\/est\/cacerts\n/);
    // Our own parser agrees.
    const c = parseCertificate(der);
    assert.deepEqual(extKeyUsage(c), [OID.kpClientAuth]);
    assert.deepEqual([...(keyUsage(c) ?? [])], ['digitalSignature']);
    assert.equal(basicConstraints(c)?.ca, false);
    assert.deepEqual(subjectKeyId(c), keyIdentifier(c.spki));
    assert.deepEqual(authorityKeyId(c), ca.issuing.keyId);
    assert.deepEqual(subjectAltNames(c), [{ uri: `spiffe://example.com/device/${DEVICE_ID}` }, { email: 'alice@example.com' }]);
  });

  test('RFC 4519 §2.39: the device id is the subject UID, as nginx ($ssl_client_s_dn) and HAProxy (ssl_c_s_dn(UID)) read it', async (t) => {
    const ca = await newCa();
    const der = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop, UID=00000000-0000-4000-8000-000000000000', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const pem = tmp.file('d.pem', certificateToPem(der));
    // nginx prints $ssl_client_s_dn with X509_NAME_print_ex(XN_FLAG_RFC2253), as this does: last RDN
    // first, so UID leads. OpenSSL escapes ',' but not '=', so only a regex anchored at the start
    // ("^UID=") is safe against an id smuggled into the CN or O.
    const rfc2253 = (await openssl(['x509', '-in', pem, '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout;
    assert.equal(rfc2253, `subject=UID=${DEVICE_ID},CN=laptop\\, UID=00000000-0000-4000-8000-000000000000,O=Example Corp\n`);
    const dn = rfc2253.slice('subject='.length).trim();
    assert.equal(/^UID=([0-9a-f-]{36})(?:,|$)/.exec(dn)?.[1], DEVICE_ID);
    assert.deepEqual([...dn.matchAll(/UID=([0-9a-f-]{36})/g)].map((x) => x[1]), [DEVICE_ID, '00000000-0000-4000-8000-000000000000'], 'an unanchored regex would be fooled');
    // Our own parser and the SAN agree.
    const c = parseCertificate(der);
    assert.deepEqual(c.subject, [
      { type: 'O', value: 'Example Corp' },
      { type: 'CN', value: 'laptop, UID=00000000-0000-4000-8000-000000000000' },
      { type: 'UID', value: DEVICE_ID },
    ]);
    assert.deepEqual(subjectAltNames(c), [{ uri: `spiffe://example.com/device/${DEVICE_ID}` }]);
    const oid = (await openssl(['asn1parse', '-in', pem])).stdout;
    assert.match(oid, /:userId\n\s*\d+:d=\d+\s+hl=\d+ l=\s*36 prim: UTF8STRING\s+:6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90/);
  });

  test('RFC 5280 §4.2.1.6, PKCS#9 emailAddress: a bound user is an email SAN and the last RDN of the subject, first in RFC 2253 as nginx prints it', async (t) => {
    const ca = await newCa();
    const der = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-7', email: 'Alice.Smith_2%x@corp-eu.example.com', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const pem = tmp.file('d.pem', certificateToPem(der));
    const rfc2253 = (await openssl(['x509', '-in', pem, '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout;
    assert.equal(rfc2253, `subject=emailAddress=Alice.Smith_2%x@corp-eu.example.com,UID=${DEVICE_ID},CN=laptop-7,O=Example Corp\n`);
    const san = (await openssl(['x509', '-in', pem, '-noout', '-ext', 'subjectAltName'])).stdout;
    assert.match(san, new RegExp(`\\n\\s+URI:spiffe://example.com/device/${DEVICE_ID}, email:Alice.Smith_2%x@corp-eu.example.com\\n`));
    // PKCS#9 (RFC 2985 §5.2.1): emailAddress is an IA5String.
    assert.match((await openssl(['asn1parse', '-in', pem])).stdout, /:emailAddress\n\s*\d+:d=\d+\s+hl=\d+ l=\s*35 prim: IA5STRING\s+:Alice\.Smith_2%x@corp-eu\.example\.com/);
    const c = parseCertificate(der);
    assert.deepEqual(c.subject.at(-1), { type: 'emailAddress', value: 'Alice.Smith_2%x@corp-eu.example.com' });
    assert.deepEqual(subjectAltNames(c), [{ uri: `spiffe://example.com/device/${DEVICE_ID}` }, { email: 'Alice.Smith_2%x@corp-eu.example.com' }]);
  });

  test('RFC 5280 §4.2.1.4: an attested device has OU after O in its subject and the attested certificate policy; others have neither', async (t) => {
    const ca = await newCa();
    const attested = { ou: 'Latchkey TPM-attested device', policyOid: '1.3.6.1.4.1.59402.2.1' };
    const der = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-7', attested, serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const pem = tmp.file('a.pem', certificateToPem(der));
    assert.equal((await openssl(['x509', '-in', pem, '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout, `subject=UID=${DEVICE_ID},CN=laptop-7,OU=Latchkey TPM-attested device,O=Example Corp\n`);
    assert.match((await openssl(['x509', '-in', pem, '-noout', '-ext', 'certificatePolicies'])).stdout, /Policy: 1\.3\.6\.1\.4\.1\.59402\.2\.1\n/);
    const c = parseCertificate(der);
    assert.deepEqual(decodeCertificatePolicies(c.extensions.get(OID.certificatePolicies)!.value), [attested.policyOid]);
    const plain = parseCertificate(await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-7', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 }));
    assert.equal(plain.extensions.get(OID.certificatePolicies), undefined);
    assert.ok(!plain.subject.some((a) => a.type === 'OU'));
  });

  test('RFC 4514 §2.4: a user email that a DN printer would escape, or that is not plain, is refused (nginx reads the printed DN)', async (t) => {
    const ca = await newCa();
    const p = deviceProfile(ca);
    const base = { spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 60 };
    for (const email of ['bob+tag@corp.example', 'x,emailAddress=evil@x', 'a"b@x', 'a\\b@x', '<a@x>', 'a;b@x', 'a=b@x', 'a b@x', 'a@b@x', 'x\r\nX-Latchkey-User: evil@x', 'é@x', '@x', 'a@', '', `${'a'.repeat(65)}@x`]) {
      await assert.rejects(p.issue({ ...base, email }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID') && /not a plain address/.test((e as Error).message), JSON.stringify(email));
    }
    await assert.rejects(p.issue({ ...base, email: `aa@${'b'.repeat(253)}` }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'), 'past the 255 characters of emailAddress');
    // Why '+' is out: OpenSSL's RFC 2253 printer, which nginx uses for $ssl_client_s_dn, escapes it.
    const tmp = tempDir(t);
    const plus = await signCertificate({ serial: base.serial, issuerDer: ca.issuing.cert.subjectDer, subjectDer: encodeName([{ type: 'CN', value: 'x' }, { type: 'emailAddress', value: 'bob+tag@corp.example' }]), spki: base.spki, notBefore: NOW, notAfter: new Date(NOW.getTime() + 60_000), extensions: [] }, ca.issuing.signer);
    assert.equal((await openssl(['x509', '-in', tmp.file('p.pem', certificateToPem(plus)), '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout, 'subject=emailAddress=bob\\+tag@corp.example,CN=x\n');
  });

  test('without a bound user there is no email SAN nor emailAddress RDN; validity is back-dated 5 minutes', async () => {
    const ca = await newCa();
    const c = parseCertificate(await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 3600 }));
    assert.deepEqual(subjectAltNames(c), [{ uri: `spiffe://example.com/device/${DEVICE_ID}` }]);
    assert.deepEqual(c.subject.map((a) => a.type), ['O', 'CN', 'UID']);
    assert.equal(c.notBefore.getTime(), NOW.getTime() - 300_000);
    assert.equal(c.notAfter.getTime(), NOW.getTime() + 3_600_000);
  });

  test('RFC 5280 §4.1.2.2: serials are random, positive, 128-bit, at most 20 octets', async () => {
    const ca = await newCa();
    const p = deviceProfile(ca);
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const c = parseCertificate(await p.issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 60 }));
      assert.equal(c.serial.length, 16);
      seen.add(c.serialHex);
    }
    assert.equal(seen.size, 50);
  });

  test('RSA device keys are certified too', async (t) => {
    const ca = await newCa();
    const der = await deviceProfile(ca).issue({ spki: spkiOf(rsaKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 60 });
    const tmp = tempDir(t);
    const text = (await openssl(['x509', '-in', tmp.file('d.pem', certificateToPem(der)), '-noout', '-text'])).stdout;
    assert.match(text, /Public-Key: \(2048 bit\)/);
  });

  test('bad arguments are refused: not a UUID, bad trust domain, lifetime past the CA', async () => {
    const ca = await newCa();
    const p = deviceProfile(ca);
    const base = { spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'x', serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 60 };
    await assert.rejects(p.issue({ ...base, deviceId: 'laptop' }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'));
    await assert.rejects(p.issue({ ...base, lifetimeSeconds: 20 * 365 * 86_400 }), (e: unknown) => isPkiError(e, 'CA_INVALID'));
    await assert.rejects(p.issue({ ...base, deviceName: 'x'.repeat(65) }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'));
    await assert.rejects(p.issue({ ...base, spki: Buffer.from('3000', 'hex') }), (e: unknown) => isPkiError(e));
    const { createDeviceProfile } = await import('./profiles.js');
    assert.throws(() => createDeviceProfile({ issuer: ca.issuing, org: 'X', trustDomain: 'Example.COM/x', crlUrls: ['u'], ocspUrls: ['u'], caIssuersUrls: ['u'] }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'));
  });
});

describe('server TLS and OCSP responder certificates', () => {
  test('server certificate: serverAuth with DNS and IP SANs, verified for sslserver', async (t) => {
    const ca = await newCa();
    const der = await issueServerCertificate({ issuer: ca.issuing, spki: spkiOf(ecKey()), org: 'Example Corp', commonName: 'latchkey.example.com', dnsNames: ['latchkey.example.com', 'localhost'], ipAddresses: ['127.0.0.1', '::1'], serial: randomSerial(crypto.randomBytes), notBefore: NOW, notAfter: new Date(NOW.getTime() + 86_400_000) });
    const tmp = tempDir(t);
    const root = tmp.file('root.pem', certificateToPem(ca.root.der));
    const int = tmp.file('int.pem', certificateToPem(ca.issuing.cert.der));
    const s = tmp.file('s.pem', certificateToPem(der));
    const v = await openssl(['verify', '-attime', String(NOW_EPOCH + 60), '-purpose', 'sslserver', '-verify_hostname', 'latchkey.example.com', '-CAfile', root, '-untrusted', int, s]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const ip = await openssl(['verify', '-attime', String(NOW_EPOCH + 60), '-purpose', 'sslserver', '-verify_ip', '127.0.0.1', '-CAfile', root, '-untrusted', int, s]);
    assert.equal(ip.code, 0, ip.stdout + ip.stderr);
    const text = (await openssl(['x509', '-in', s, '-noout', '-text'])).stdout;
    assert.match(text, /DNS:latchkey.example.com, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text, /TLS Web Server Authentication/);
  });

  test('RFC 6960 §4.2.2.2: delegated responder has id-kp-OCSPSigning and ocsp-nocheck', async (t) => {
    const ca = await newCa();
    const der = await issueOcspResponderCertificate({ issuer: ca.issuing, spki: spkiOf(ecKey()), org: 'Example Corp', serial: randomSerial(crypto.randomBytes), notBefore: NOW, notAfter: new Date(NOW.getTime() + 86_400_000) });
    const tmp = tempDir(t);
    const text = (await openssl(['x509', '-in', tmp.file('o.pem', certificateToPem(der)), '-noout', '-text'])).stdout;
    assert.match(text, /Extended Key Usage: \n\s+OCSP Signing\n/);
    assert.match(text, /OCSP No Check: \n/);
    assert.match(text, /Key Usage: critical\s+Digital Signature/);
  });
});
