import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { createCaHierarchy, createIssuer, type Issuer } from './ca.js';
import { certificateToPem, parseCertificate, type Certificate } from './certificate.js';
import { buildCrl, crlToPem, parseCrl, verifyCrl, type CrlReason, type RevokedEntry } from './crl.js';
import { isPkiError } from './errors.js';
import { nodeSigner } from './keys.js';
import { pemEncode } from './pem.js';
import { randomSerial } from './serial.js';
import { BASE_URL, DEVICE_ID, NOW, NOW_EPOCH, deviceProfile, ecKey, openssl, spkiOf, tempDir } from './testing/support.js';

const HOUR = 3_600_000;

interface Pki {
  root: Certificate;
  rootIssuer: Issuer;
  issuing: Issuer;
  device: Buffer;
  deviceSerial: Buffer;
}

async function pki(): Promise<Pki> {
  const rootKey = ecKey();
  const ca = await createCaHierarchy({ org: 'Example Corp', now: NOW, rootKey, issuingKey: ecKey(), randomBytes: crypto.randomBytes, rootCrlUrl: `${BASE_URL}/crl/root` });
  const deviceSerial = randomSerial(crypto.randomBytes);
  const device = await deviceProfile(ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-1', serial: deviceSerial, now: NOW, lifetimeSeconds: 86_400 });
  return { root: ca.root, rootIssuer: createIssuer(ca.root, nodeSigner(rootKey)), issuing: ca.issuing, device, deviceSerial };
}

const crlOf = (issuer: Issuer, entries: RevokedEntry[], crlNumber = 7n): Promise<Buffer> =>
  buildCrl({ issuer, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), crlNumber, entries });

describe('CRL builder (RFC 5280 §5)', () => {
  test('§5.1: openssl verifies the signature and shows number, AKI and every entry with its reason', async (t) => {
    const p = await pki();
    const tmp = tempDir(t);
    const chain = tmp.file('chain.pem', certificateToPem(p.issuing.cert.der) + certificateToPem(p.root.der));
    const reasons: (CrlReason | undefined)[] = ['keyCompromise', 'superseded', undefined, 'cessationOfOperation', 'affiliationChanged'];
    const entries = reasons.map((reason, i) => ({ serial: randomSerial(crypto.randomBytes), revokedAt: new Date(NOW.getTime() - i * 60_000), ...(reason ? { reason } : {}) }));
    const der = await crlOf(p.issuing, entries, 42n);
    const file = tmp.file('crl.pem', crlToPem(der));
    const v = await openssl(['crl', '-in', file, '-CAfile', chain, '-noout']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);
    const text = (await openssl(['crl', '-in', file, '-noout', '-text'])).stdout;
    assert.match(text, /Version 2 \(0x1\)/);
    assert.match(text, /X509v3 CRL Number: \n\s+42\n/);
    assert.match(text, /X509v3 Authority Key Identifier: \n\s+[0-9A-F:]{59}\n/);
    for (const [i, e] of entries.entries()) {
      const hex = e.serial.toString('hex').toUpperCase();
      assert.match(text, new RegExp(`Serial Number: ${hex}\\n`), `entry ${i}`);
    }
    assert.match(text, /CRL Reason Code: \n\s+Key Compromise/);
    assert.match(text, /CRL Reason Code: \n\s+Superseded/);
    assert.match(text, /CRL Reason Code: \n\s+Cessation Of Operation/);
    assert.match(text, /CRL Reason Code: \n\s+Affiliation Changed/);
    // The entry without a reason has no entry extensions at all.
    const third = text.split('Serial Number: ')[3]!;
    assert.doesNotMatch(third.split('Serial Number')[0]!, /CRL entry extensions/);
  });

  test('§6.3 with openssl verify -crl_check_all: OK when not listed, error 23 when revoked (CRLs for both CAs)', async (t) => {
    const p = await pki();
    const tmp = tempDir(t);
    const root = tmp.file('root.pem', certificateToPem(p.root.der));
    const int = tmp.file('int.pem', certificateToPem(p.issuing.cert.der));
    const dev = tmp.file('dev.pem', certificateToPem(p.device));
    const rootCrl = tmp.file('root-crl.pem', crlToPem(await crlOf(p.rootIssuer, [])));
    const clean = tmp.file('clean.pem', crlToPem(await crlOf(p.issuing, [{ serial: randomSerial(crypto.randomBytes), revokedAt: NOW, reason: 'superseded' }])));
    const revoked = tmp.file('revoked.pem', crlToPem(await crlOf(p.issuing, [{ serial: p.deviceSerial, revokedAt: NOW, reason: 'keyCompromise' }])));
    const at = String(NOW_EPOCH + 60);
    const ok = await openssl(['verify', '-crl_check_all', '-attime', at, '-CAfile', root, '-untrusted', int, '-CRLfile', clean, '-CRLfile', rootCrl, dev]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /dev.pem: OK/);
    const bad = await openssl(['verify', '-crl_check_all', '-attime', at, '-CAfile', root, '-untrusted', int, '-CRLfile', revoked, '-CRLfile', rootCrl, dev]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /error 23 at 0 depth lookup: certificate revoked/);
    // Without the root's CRL, crl_check_all cannot succeed: gateways need a CRL for every CA.
    const noRoot = await openssl(['verify', '-crl_check_all', '-attime', at, '-CAfile', root, '-untrusted', int, '-CRLfile', clean, dev]);
    assert.match(noRoot.stdout + noRoot.stderr, /unable to get certificate CRL/);
  });

  test('§5.1.2.6: an empty CRL omits revokedCertificates and is accepted by openssl', async (t) => {
    const p = await pki();
    const der = await crlOf(p.issuing, []);
    const parsed = parseCrl(der);
    assert.equal(parsed.entries.length, 0);
    const tmp = tempDir(t);
    const file = tmp.file('e.der', der);
    const asn1 = (await openssl(['asn1parse', '-inform', 'DER', '-in', file])).stdout;
    // TBSCertList holds: version, algorithm, issuer name, two times, then [0] extensions — no SEQUENCE of entries.
    assert.doesNotMatch(asn1, /UTCTIME\s*\n[^\n]*d=2[^\n]*SEQUENCE/);
    assert.match(asn1, /cont \[ 0 \]/);
    const v = await openssl(['crl', '-inform', 'DER', '-in', file, '-CAfile', tmp.file('c.pem', certificateToPem(p.issuing.cert.der) + certificateToPem(p.root.der)), '-noout']);
    assert.equal(v.code, 0, v.stderr);
  });

  test('round trip: parseCrl returns entries, number and times; verifyCrl checks the signature', async () => {
    const p = await pki();
    const entries = [
      { serial: 'ff00aa', revokedAt: new Date('2026-02-01T00:00:00Z'), reason: 'keyCompromise' as const },
      { serial: '01', revokedAt: new Date('2026-02-02T00:00:00Z') },
      { serial: Buffer.from('7f', 'hex'), revokedAt: new Date('2026-02-03T00:00:00Z'), reason: 'unspecified' as const },
    ];
    const der = await crlOf(p.issuing, entries, 2n ** 100n);
    const c = parseCrl(crlToPem(der));
    assert.equal(c.version, 2);
    assert.equal(c.crlNumber, 2n ** 100n);
    assert.equal(c.thisUpdate.getTime(), NOW.getTime());
    assert.equal(c.nextUpdate?.getTime(), NOW.getTime() + HOUR);
    assert.deepEqual(c.akid, p.issuing.keyId);
    assert.deepEqual(c.entries, [
      { serialHex: 'ff00aa', revokedAt: new Date('2026-02-01T00:00:00Z'), reason: 'keyCompromise' },
      { serialHex: '01', revokedAt: new Date('2026-02-02T00:00:00Z'), reason: undefined },
      // §5.3.1: "unspecified" SHOULD be absent rather than present.
      { serialHex: '7f', revokedAt: new Date('2026-02-03T00:00:00Z'), reason: undefined },
    ]);
    assert.equal(verifyCrl(c, p.issuing.cert), true);
    assert.equal(verifyCrl(c, p.root), false);
    const tampered = Buffer.from(der);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 1;
    let ok: boolean;
    try {
      ok = verifyCrl(parseCrl(tampered), p.issuing.cert);
    } catch (e) {
      assert.ok(isPkiError(e), String(e));
      ok = false;
    }
    assert.equal(ok, false);
  });

  test('10,000 entries: accepted by openssl crl -CAfile', async (t) => {
    const p = await pki();
    const entries = Array.from({ length: 10_000 }, (_, i) => ({ serial: randomSerial(crypto.randomBytes), revokedAt: new Date(NOW.getTime() - i * 1000), reason: (i % 3 ? 'superseded' : 'keyCompromise') as CrlReason }));
    const der = await crlOf(p.issuing, entries);
    assert.equal(parseCrl(der).entries.length, 10_000);
    const tmp = tempDir(t);
    const v = await openssl(['crl', '-inform', 'DER', '-in', tmp.file('big.der', der), '-CAfile', tmp.file('c.pem', certificateToPem(p.issuing.cert.der) + certificateToPem(p.root.der)), '-noout']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);
  });

  test('bad arguments → ARGUMENT_INVALID', async () => {
    const p = await pki();
    const bad = (o: Partial<Parameters<typeof buildCrl>[0]>): Promise<void> =>
      assert.rejects(buildCrl({ issuer: p.issuing, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + HOUR), crlNumber: 1n, entries: [], ...o }), (e: unknown) => isPkiError(e, 'ARGUMENT_INVALID'));
    await bad({ nextUpdate: NOW });
    await bad({ crlNumber: -1n });
    await bad({ crlNumber: 2n ** 159n });
    await bad({ entries: [{ serial: 'xyz', revokedAt: NOW }] });
    await bad({ entries: [{ serial: '00', revokedAt: NOW }] });
    await bad({ entries: [{ serial: 'ab', revokedAt: NOW, reason: 'bogus' as CrlReason }] });
  });
});

describe('CRL parser rejects bad input with typed errors', () => {
  test('truncated, random, empty, wrong label, certificate, huge length', async () => {
    const p = await pki();
    const der = await crlOf(p.issuing, [{ serial: 'abcd', revokedAt: NOW, reason: 'keyCompromise' }]);
    for (let cut = 0; cut < der.length; cut += 3) {
      assert.throws(() => parseCrl(der.subarray(0, cut)), (e: unknown) => isPkiError(e, 'DER_MALFORMED'), `cut ${cut}`);
    }
    for (let i = 1; i < 100; i++) assert.throws(() => parseCrl(crypto.randomBytes(i)), (e: unknown) => isPkiError(e));
    assert.throws(() => parseCrl(new Uint8Array(0)), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    assert.throws(() => parseCrl(pemEncode('CRL', der)), (e: unknown) => isPkiError(e, 'PEM_INVALID') && /X509 CRL/.test(e.message));
    assert.throws(() => parseCrl(certificateToPem(p.device)), (e: unknown) => isPkiError(e, 'PEM_INVALID'));
    assert.throws(() => parseCrl(p.device), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    assert.throws(() => parseCrl(Buffer.from('3084ffffffff', 'hex')), (e: unknown) => isPkiError(e, 'DER_MALFORMED'));
    assert.ok(parseCertificate(p.device));
  });
});
