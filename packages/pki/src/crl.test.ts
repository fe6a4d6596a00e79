import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { describe, test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import { createCaHierarchy, createIssuer, type CaHierarchy, type Issuer } from './ca.js';
import { certificateToPem, type Certificate } from './certificate.js';
import {
  CRL_REASON_CODES,
  CRL_REASON_NAMES,
  buildCrl,
  crlToPem,
  parseCrl,
  verifyCrl,
  type BuildCrlOptions,
  type CrlReason,
  type RevokedEntry,
} from './crl.js';
import { bitString, enumerated, explicit, int, parseOne, raw, seq, seqOf, time, timeBytes } from './der.js';
import { isPkiError, type PkiErrorCode } from './errors.js';
import { encodeExtension } from './extensions.js';
import { nodeSigner, signatureAlgorithmDer } from './keys.js';
import { OID } from './oids.js';
import { MAX_INPUT_BYTES, pemEncode } from './pem.js';
import { randomSerial } from './serial.js';
import { BASE_URL, DEVICE_ID, NOW, NOW_EPOCH, deviceProfile, ecKey, openssl, rsaKey, spkiOf, tempDir } from './testing/support.js';

const HOUR = 3_600_000;
const NEXT = new Date(NOW.getTime() + HOUR);
const AT = String(NOW_EPOCH);

interface Pki {
  ca: CaHierarchy;
  root: Certificate;
  /** The root as an Issuer: createCaHierarchy with a key we keep, so the root can sign its own CRL. */
  rootIssuer: Issuer;
  issuing: Issuer;
}

async function pki(keys: { root: crypto.KeyObject; issuing: crypto.KeyObject } = { root: ecKey(), issuing: ecKey() }): Promise<Pki> {
  const ca = await createCaHierarchy({
    org: 'Example Corp',
    now: NOW,
    rootKey: keys.root,
    issuingKey: keys.issuing,
    randomBytes: crypto.randomBytes,
    rootCrlUrl: `${BASE_URL}/crl/root`,
  });
  return { ca, root: ca.root, rootIssuer: createIssuer(ca.root, nodeSigner(keys.root)), issuing: ca.issuing };
}

const crlOf = (issuer: Issuer, entries: BuildCrlOptions['entries'], crlNumber = 7n): Promise<Buffer> =>
  buildCrl({ issuer, thisUpdate: NOW, nextUpdate: NEXT, crlNumber, entries });

const serial = (): Buffer => randomSerial(crypto.randomBytes);

function chainFile(tmp: ReturnType<typeof tempDir>, p: Pki): string {
  return tmp.file('chain.pem', certificateToPem(p.issuing.cert.der) + certificateToPem(p.root.der));
}

/** Tags of the TBSCertList's direct children, from `openssl asn1parse` (an independent DER reader). */
async function tbsChildren(file: string): Promise<string[]> {
  const r = await openssl(['asn1parse', '-inform', 'DER', '-in', file]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const firstD1 = lines.findIndex((l) => /d=1 /.test(l));
  const nextD1 = lines.findIndex((l, i) => i > firstD1 && /d=1 /.test(l));
  return lines
    .slice(firstD1 + 1, nextD1)
    .filter((l) => /d=2 /.test(l))
    .map((l) => /(?:prim|cons): (.+?)\s*(?::|$)/.exec(l)![1]!.trim());
}

function expectCode(code: PkiErrorCode, message?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isPkiError(e), `expected PkiError ${code}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

/** An unsigned CertificateList from raw TBS parts, for parser tests that need a structure buildCrl refuses to make. */
function craft(tbsParts: Uint8Array[], outerAlg = signatureAlgorithmDer('ecdsa-with-SHA256')): Buffer {
  return seq(seq(...tbsParts), outerAlg, bitString(Buffer.from('3006020101020101', 'hex')));
}

describe('CRL builder, checked by openssl (RFC 5280 §5)', () => {
  test('RFC 5280 §5.1, §5.2.1, §5.2.3, §5.3.1: openssl verifies the CRL and shows number, AKI, every serial and reason', async (t) => {
    const p = await pki();
    const tmp = tempDir(t);
    const reasons: (CrlReason | undefined)[] = ['keyCompromise', 'superseded', undefined, 'cessationOfOperation', 'affiliationChanged', 'unspecified', 'cACompromise', 'certificateHold', 'privilegeWithdrawn'];
    const entries = reasons.map((reason, i) => ({ serial: serial(), revokedAt: new Date(NOW.getTime() - i * 60_000), ...(reason ? { reason } : {}) }));
    const file = tmp.file('crl.pem', crlToPem(await crlOf(p.issuing, entries, 42n)));
    assert.match(crlToPem(Buffer.from([0x30, 0])), /^-----BEGIN X509 CRL-----\n/);

    const v = await openssl(['crl', '-in', file, '-CAfile', chainFile(tmp, p), '-noout']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);

    const text = (await openssl(['crl', '-in', file, '-noout', '-text'])).stdout;
    assert.match(text, /Version 2 \(0x1\)/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256[\s\S]*Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /X509v3 CRL Number: \n\s+42\n/);
    const aki = p.issuing.keyId.toString('hex').toUpperCase().match(/../g)!.join(':');
    assert.match(text, new RegExp(`X509v3 Authority Key Identifier: \\n\\s+(keyid:)?${aki}\\n`));
    assert.match(text, /Last Update: Mar {2}1 12:00:00 2026 GMT\n\s+Next Update: Mar {2}1 13:00:00 2026 GMT/);

    // One block per entry, in order: "Serial Number: X", its date, then its extensions if any.
    const blocks = text.split('Revoked Certificates:')[1]!.split(/\n\s+Serial Number: /).slice(1);
    assert.equal(blocks.length, entries.length);
    const shown: Record<string, string> = {
      keyCompromise: 'Key Compromise',
      superseded: 'Superseded',
      cessationOfOperation: 'Cessation Of Operation',
      affiliationChanged: 'Affiliation Changed',
      cACompromise: 'CA Compromise',
      certificateHold: 'Certificate Hold',
      privilegeWithdrawn: 'Privilege Withdrawn',
    };
    for (const [i, e] of entries.entries()) {
      const b = blocks[i]!;
      assert.ok(b.startsWith(e.serial.toString('hex').toUpperCase() + '\n'), `entry ${i}: ${b}`);
      if (e.reason === undefined || e.reason === 'unspecified') {
        // No reason (and "unspecified", §5.3.1 SHOULD be absent): no crlEntryExtensions at all.
        assert.doesNotMatch(b, /CRL entry extensions|Reason Code/, `entry ${i}`);
      } else {
        assert.match(b, new RegExp(`CRL Reason Code: \\n\\s+${shown[e.reason]}(\\n|$)`), `entry ${i}`);
      }
    }
  });

  test('RFC 5280 §6.3 (openssl verify -crl_check_all): OK when the device is not listed, error 23 when it is', async (t) => {
    const rootKey = ecKey();
    const p = await pki({ root: rootKey, issuing: ecKey() });
    const deviceSerial = serial();
    const device = await deviceProfile(p.ca).issue({ spki: spkiOf(ecKey()), deviceId: DEVICE_ID, deviceName: 'laptop-1', serial: deviceSerial, now: NOW, lifetimeSeconds: 86_400 });
    const tmp = tempDir(t);
    const root = tmp.file('root.pem', certificateToPem(p.root.der));
    const issuing = tmp.file('issuing.pem', certificateToPem(p.issuing.cert.der));
    const dev = tmp.file('device.pem', certificateToPem(device));
    // The root signs its own CRL (listing nothing of ours) so that crl_check_all can check the intermediate.
    const rootCrl = tmp.file('rootcrl.pem', crlToPem(await crlOf(p.rootIssuer, [{ serial: serial(), revokedAt: NOW, reason: 'cACompromise' }])));
    const others = [{ serial: serial(), revokedAt: NOW, reason: 'superseded' as const }, { serial: serial(), revokedAt: NOW }];
    const clean = tmp.file('clean.pem', crlToPem(await crlOf(p.issuing, others)));
    const listed = tmp.file('issuingcrl.pem', crlToPem(await crlOf(p.issuing, [...others, { serial: deviceSerial, revokedAt: NOW, reason: 'keyCompromise' }])));
    const verify = (crl: string): ReturnType<typeof openssl> =>
      openssl(['verify', '-crl_check_all', '-attime', AT, '-CAfile', root, '-untrusted', issuing, '-CRLfile', crl, '-CRLfile', rootCrl, dev]);

    const ok = await verify(clean);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /device\.pem: OK/);

    const bad = await verify(listed);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /error 23 at 0 depth lookup: certificate revoked/);

    // And without the root's CRL crl_check_all cannot pass: relying parties need a CRL for every CA.
    const noRoot = await openssl(['verify', '-crl_check_all', '-attime', AT, '-CAfile', root, '-untrusted', issuing, '-CRLfile', clean, dev]);
    assert.notEqual(noRoot.code, 0);
    assert.match(noRoot.stdout + noRoot.stderr, /unable to get certificate CRL/);
  });

  test('RFC 5280 §5.1.2.6: a CRL with no entries omits revokedCertificates and openssl accepts it', async (t) => {
    const p = await pki();
    const der = await crlOf(p.issuing, []);
    assert.equal(parseCrl(der).entries.length, 0);
    const tmp = tempDir(t);
    const file = tmp.file('empty.der', der);
    assert.deepEqual(await tbsChildren(file), ['INTEGER', 'SEQUENCE', 'SEQUENCE', 'UTCTIME', 'UTCTIME', 'cont [ 0 ]']);
    const v = await openssl(['crl', '-inform', 'DER', '-in', file, '-CAfile', chainFile(tmp, p), '-noout']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);
    // With one entry the list is there, between nextUpdate and the extensions.
    assert.deepEqual(await tbsChildren(tmp.file('one.der', await crlOf(p.issuing, ['0a'].map((s) => ({ serial: s, revokedAt: NOW }))))), [
      'INTEGER', 'SEQUENCE', 'SEQUENCE', 'UTCTIME', 'UTCTIME', 'SEQUENCE', 'cont [ 0 ]',
    ]);
  });

  test('RFC 5280 §5.1.1.2: an RSA issuer signs with sha256WithRSAEncryption (NULL parameters) inside and outside; openssl verifies', async (t) => {
    const p = await pki({ root: rsaKey(), issuing: rsaKey() });
    const der = await crlOf(p.issuing, [{ serial: 'ab:cd', revokedAt: NOW, reason: 'superseded' }]);
    const c = parseCrl(der);
    assert.equal(c.signatureAlgorithmOid, OID.sha256WithRSAEncryption);
    assert.equal(c.signature.length, 256);
    assert.equal(verifyCrl(c, p.issuing.cert), true);
    const tmp = tempDir(t);
    const v = await openssl(['crl', '-inform', 'DER', '-in', tmp.file('rsa.der', der), '-CAfile', chainFile(tmp, p), '-noout', '-text']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);
    assert.match(v.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  });

  test('RFC 5280 §5.1: 10,000 entries from a one-shot generator are accepted by openssl crl -CAfile', async (t) => {
    const p = await pki();
    const made: { serial: Buffer; reason: CrlReason | undefined }[] = [];
    const reasons: (CrlReason | undefined)[] = ['keyCompromise', 'superseded', undefined, 'affiliationChanged'];
    function* entries(): Generator<RevokedEntry> {
      for (let i = 0; i < 10_000; i++) {
        const e = { serial: serial(), reason: reasons[i % reasons.length] };
        made.push(e);
        yield { serial: e.serial, revokedAt: new Date(NOW.getTime() - i * 1000), ...(e.reason ? { reason: e.reason } : {}) };
      }
    }
    const der = await crlOf(p.issuing, entries());
    const c = parseCrl(der);
    assert.equal(c.entries.length, 10_000);
    for (const [i, e] of c.entries.entries()) {
      assert.equal(e.serialHex, made[i]!.serial.toString('hex'));
      assert.equal(e.reason, made[i]!.reason);
    }
    const tmp = tempDir(t);
    const v = await openssl(['crl', '-inform', 'DER', '-in', tmp.file('big.der', der), '-CAfile', chainFile(tmp, p), '-noout']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /verify OK/);
  });
});

describe('CRL round trip (RFC 5280 §5.1.2, §5.2, §5.3)', () => {
  test('RFC 5280 §5.1.2: parseCrl gives back entries, number and times; verifyCrl checks issuer and signature', async () => {
    const p = await pki();
    const entries: RevokedEntry[] = [
      { serial: 'ff00aa', revokedAt: new Date('2026-02-01T00:00:00Z'), reason: 'keyCompromise' },
      { serial: '01', revokedAt: new Date('2026-02-02T00:00:00.999Z') },
      { serial: Buffer.from('7f', 'hex'), revokedAt: new Date('2026-02-03T00:00:00Z'), reason: 'unspecified' },
      { serial: '00:00:12:34', revokedAt: NOW, reason: 'removeFromCRL' },
      { serial: new Uint8Array([0, 0, 0x80, 1]), revokedAt: NOW, reason: 'aACompromise' },
      { serial: 'F'.repeat(40), revokedAt: NOW, reason: 'superseded' },
    ];
    const der = await crlOf(p.issuing, entries, 2n ** 100n);
    const c = parseCrl(crlToPem(der));
    assert.deepEqual(c.der, der);
    assert.equal(c.version, 2);
    assert.equal(c.crlNumber, 2n ** 100n);
    assert.deepEqual(c.thisUpdate, NOW);
    assert.deepEqual(c.nextUpdate, NEXT);
    assert.deepEqual(c.akid, p.issuing.keyId);
    assert.deepEqual(c.issuerDer, p.issuing.cert.subjectDer);
    assert.equal(c.signatureAlgorithmOid, OID.ecdsaWithSHA256);
    assert.deepEqual(c.entries, [
      { serialHex: 'ff00aa', revokedAt: new Date('2026-02-01T00:00:00Z'), reason: 'keyCompromise' },
      // Times are whole seconds.
      { serialHex: '01', revokedAt: new Date('2026-02-02T00:00:00Z'), reason: undefined },
      // §5.3.1: "unspecified" SHOULD be absent rather than present.
      { serialHex: '7f', revokedAt: new Date('2026-02-03T00:00:00Z'), reason: undefined },
      { serialHex: '1234', revokedAt: NOW, reason: 'removeFromCRL' },
      { serialHex: '8001', revokedAt: NOW, reason: 'aACompromise' },
      { serialHex: 'ff'.repeat(20), revokedAt: NOW, reason: 'superseded' },
    ]);
    // A second, independent DER codec decodes it and re-encodes the very same bytes (canonical DER).
    const other = AsnConvert.parse(der, CertificateList);
    assert.equal(other.tbsCertList.revokedCertificates?.length, entries.length);
    assert.deepEqual(Buffer.from(AsnConvert.serialize(other)), der);

    assert.equal(verifyCrl(c, p.issuing.cert), true);
    assert.equal(verifyCrl(c, certificateToPem(p.issuing.cert.der)), true);
    assert.equal(verifyCrl(c, p.root), false, 'another CA');

    // A flipped bit in the signature: false, or SIGNATURE_INVALID when the ECDSA DER itself breaks.
    for (const back of [3, 10, 30]) {
      const bad = Buffer.from(der);
      bad[bad.length - back] = bad[bad.length - back]! ^ 1;
      let ok: boolean;
      try {
        ok = verifyCrl(parseCrl(bad), p.issuing.cert);
      } catch (e) {
        expectCode('SIGNATURE_INVALID')(e);
        ok = false;
      }
      assert.equal(ok, false, `flipped byte ${back} from the end`);
    }
    // A changed TBS byte (a serial): parses, does not verify.
    const tampered = Buffer.from(der);
    tampered[der.indexOf(Buffer.from('ff00aa', 'hex'))] = 0xfe;
    assert.equal(parseCrl(tampered).entries[0]!.serialHex, 'fe00aa');
    assert.equal(verifyCrl(parseCrl(tampered), p.issuing.cert), false);
  });

  test('RFC 5280 §5.1.2.4-6: times are UTCTime through 2049 and GeneralizedTime after, byte for byte as der.time()', async () => {
    const p = await pki();
    const edges = [
      '1950-01-01T00:00:00Z', '1949-12-31T23:59:59Z', '2049-12-31T23:59:59.999Z', '2050-01-01T00:00:00Z', '1970-01-01T00:00:00Z',
      '1969-12-31T23:59:59.999Z', '2000-02-29T12:34:56Z', '2100-02-28T23:59:59Z', '2100-03-01T00:00:00Z', '2400-02-29T01:02:03Z',
      '1900-03-01T00:00:00Z', '0100-01-01T00:00:00Z', '9999-12-31T23:59:59Z',
    ].map((s) => new Date(s));
    const lo = Date.parse('1900-01-01T00:00:00Z');
    const hi = Date.parse('2300-01-01T00:00:00Z');
    const random = Array.from({ length: 3000 }, () => new Date(lo + Math.floor(Math.random() * (hi - lo))));
    const dates = [...edges, ...random];
    const der = await crlOf(p.issuing, dates.map((revokedAt, i) => ({ serial: (i + 1).toString(16), revokedAt })));
    // Each entry is SEQUENCE { INTEGER serial, Time }: compare the encoded Time with der.time().
    const tbs = seqOf(seqOf(parseOne(der, 'crl'), 'crl')[0]!, 'tbs');
    const list = seqOf(tbs[5]!, 'revokedCertificates');
    assert.equal(list.length, dates.length);
    for (const [i, d] of dates.entries()) {
      const [s, at] = seqOf(list[i]!, 'entry', 2, 2);
      assert.deepEqual(raw(s!), int(i + 1));
      assert.deepEqual(raw(at!), Buffer.from(timeBytes(d)), `time of entry ${i}: ${d.toISOString()}`);
    }
    assert.deepEqual(time(new Date('2050-01-01T00:00:00Z')).subarray(0, 2), Buffer.from([0x18, 15]));
    const back = parseCrl(der).entries.map((e) => e.revokedAt.getTime());
    dates.forEach((d, i) => assert.equal(back[i], Math.floor(d.getTime() / 1000) * 1000, d.toISOString()));
  });

  test('RFC 5280 §5.3.1: reason names and codes map both ways; 7 is unused', () => {
    assert.equal(CRL_REASON_CODES.keyCompromise, 1);
    assert.equal(CRL_REASON_CODES.removeFromCRL, 8);
    assert.equal(CRL_REASON_CODES.aACompromise, 10);
    assert.equal(CRL_REASON_NAMES.get(7), undefined);
    for (const [name, code] of Object.entries(CRL_REASON_CODES)) assert.equal(CRL_REASON_NAMES.get(code), name);
    assert.equal(CRL_REASON_NAMES.size, 10);
  });
});

describe('CRL builder refuses bad arguments', () => {
  test('RFC 5280 §5.1.2.5, §5.2.3, §4.1.2.2: bad times, CRL numbers, serials and reasons → ARGUMENT_INVALID', async () => {
    const p = await pki();
    const bad = (o: Partial<BuildCrlOptions>, message?: RegExp): Promise<void> =>
      assert.rejects(buildCrl({ issuer: p.issuing, thisUpdate: NOW, nextUpdate: NEXT, crlNumber: 1n, entries: [], ...o }), expectCode('ARGUMENT_INVALID', message));
    await bad({ nextUpdate: NOW }, /nextUpdate .* must be after thisUpdate/);
    await bad({ nextUpdate: new Date(NOW.getTime() - 1) }, /must be after/);
    await bad({ thisUpdate: new Date(NaN) }, /thisUpdate is an invalid Date/);
    await bad({ nextUpdate: new Date('+010000-01-01T00:00:00Z') }, /outside years/);
    await bad({ crlNumber: -1n }, /CRL number/);
    await bad({ crlNumber: 2n ** 159n }, /CRL number/);
    await bad({ crlNumber: 1 as unknown as bigint }, /CRL number/);
    const entry = (e: Partial<RevokedEntry> & Record<string, unknown>): Partial<BuildCrlOptions> => ({ entries: [{ serial: '01', revokedAt: NOW }, { serial: '02', revokedAt: NOW, ...e } as RevokedEntry] });
    await bad(entry({ serial: 'xyz' }), /entry 1: serial "xyz" is not hex/);
    await bad(entry({ serial: '' }), /not hex/);
    await bad(entry({ serial: '0x12' }), /not hex/);
    await bad(entry({ serial: '00' }), /must be positive/);
    await bad(entry({ serial: new Uint8Array(0) }), /must be positive/);
    await bad(entry({ serial: new Uint8Array(4) }), /must be positive/);
    await bad(entry({ serial: '1' + '0'.repeat(40) }), /longer than 20 octets/);
    await bad(entry({ serial: Buffer.alloc(21, 1) }), /at most 20/);
    await bad(entry({ serial: 12 as unknown as string }), /bytes or a hex string/);
    await bad(entry({ reason: 'bogus' as CrlReason }), /unknown CRL reason "bogus"/);
    await bad(entry({ reason: 'toString' as CrlReason }), /unknown CRL reason/);
    await bad(entry({ revokedAt: new Date(NaN) }), /entry 1: revokedAt is an invalid Date/);
    await bad(entry({ revokedAt: '2026-01-01' as unknown as Date }), /revokedAt must be a Date/);
    await bad({ entries: [null as unknown as RevokedEntry] }, /entry 0 is not an object/);
    // The limits themselves are fine.
    const ok = await buildCrl({ issuer: p.issuing, thisUpdate: NOW, nextUpdate: NEXT, crlNumber: 2n ** 159n - 1n, entries: [{ serial: 'ff'.repeat(20), revokedAt: NOW }] });
    assert.equal(parseCrl(ok).crlNumber, 2n ** 159n - 1n);
    assert.equal(parseCrl(await crlOf(p.issuing, [], 0n)).crlNumber, 0n);
  });
});

describe('CRL parser rejects bad input with typed errors', () => {
  test('truncated DER, random bytes, empty input, certificate, BEGIN CRL label, huge length → specific PkiError codes', async () => {
    const p = await pki();
    const der = await crlOf(p.issuing, [{ serial: 'abcd', revokedAt: NOW, reason: 'keyCompromise' }]);
    for (let cut = 0; cut < der.length; cut++) {
      assert.throws(() => parseCrl(der.subarray(0, cut)), expectCode('DER_MALFORMED'), `cut at ${cut}`);
    }
    assert.throws(() => parseCrl(Buffer.concat([der, Buffer.from([0])])), expectCode('DER_MALFORMED', /trailing/));
    for (let i = 1; i < 300; i++) {
      const junk = crypto.randomBytes(1 + (i % 80));
      if (junk[0] === 0x2d) junk[0] = 0; // not PEM: DER path
      assert.throws(() => parseCrl(junk), expectCode('DER_MALFORMED'), junk.toString('hex'));
    }
    assert.throws(() => parseCrl(new Uint8Array(0)), expectCode('DER_MALFORMED', /empty/));
    assert.throws(() => parseCrl(''), expectCode('PEM_INVALID'));
    assert.throws(() => parseCrl('not a crl'), expectCode('PEM_INVALID'));
    // OpenSSL writes and reads "X509 CRL"; "CRL" is refused with a message naming the right label.
    assert.throws(() => parseCrl(pemEncode('CRL', der)), expectCode('PEM_INVALID', /X509 CRL/));
    assert.throws(() => parseCrl(Buffer.from(pemEncode('CRL', der))), expectCode('PEM_INVALID', /X509 CRL/));
    assert.throws(() => parseCrl(certificateToPem(p.issuing.cert.der)), expectCode('PEM_INVALID', /found CERTIFICATE/));
    assert.throws(() => parseCrl(p.issuing.cert.der), expectCode('DER_MALFORMED'));
    assert.throws(() => parseCrl(Buffer.from('3084ffffffff', 'hex')), expectCode('DER_MALFORMED', /truncated/));
    assert.throws(() => parseCrl(Buffer.from('3085ffffffffff00', 'hex')), expectCode('DER_MALFORMED', /length too large/));
    assert.throws(() => parseCrl(Buffer.alloc(MAX_INPUT_BYTES + 1, 0x30)), expectCode('INPUT_TOO_LARGE'));
  });

  test('every single-byte corruption of a CRL gives a ParsedCrl or a PkiError, never another exception', async () => {
    const p = await pki();
    const der = await crlOf(p.issuing, [{ serial: 'abcd', revokedAt: NOW, reason: 'keyCompromise' }, { serial: '01', revokedAt: NOW }]);
    for (let i = 0; i < der.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(der);
        bad[i] = bad[i]! ^ x;
        try {
          const c = parseCrl(bad);
          assert.equal(typeof verifyCrl(c, p.issuing.cert), 'boolean');
        } catch (e) {
          assert.ok(isPkiError(e), `byte ${i} ^ ${x}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    }
  });

  test('RFC 5280 §5.1.1.2, §5.1.2.1, §5.1.2.6, §5.2, §5.3: structures the RFC forbids → DER_MALFORMED', () => {
    const alg = signatureAlgorithmDer('ecdsa-with-SHA256');
    const name = seq();
    const issuer = seq(Buffer.from('310b300906035504030c024341', 'hex')); // CN=CA
    const now = time(NOW);
    const next = time(NEXT);
    const entry = seq(int(5), now);
    const exts = (...e: Buffer[]): Buffer => explicit(0, seq(...e));
    const number = encodeExtension(OID.crlNumber, false, int(3));
    // The well-formed baseline parses, so each case below fails for its own reason.
    const good = parseCrl(craft([int(1), alg, issuer, now, next, seq(entry), exts(number)]));
    assert.equal(good.crlNumber, 3n);
    assert.equal(good.entries[0]!.serialHex, '05');
    const cases: [string, Buffer, RegExp][] = [
      ['version v1 written out', craft([int(0), alg, issuer, now, next, exts(number)]), /must be v2/],
      ['inner and outer algorithms differ', craft([int(1), alg, issuer, now, next], signatureAlgorithmDer('ecdsa-with-SHA384')), /differs/],
      ['empty issuer name', craft([int(1), alg, name, now, next]), /empty name/],
      ['empty revokedCertificates', craft([int(1), alg, issuer, now, next, seq(), exts(number)]), /present but empty/],
      ['empty crlEntryExtensions', craft([int(1), alg, issuer, now, next, seq(seq(int(5), now, seq()))]), /present but empty/],
      ['negative serial', craft([int(1), alg, issuer, now, next, seq(seq(Buffer.from('0201ff', 'hex'), now))]), /negative/],
      ['reason code 7', craft([int(1), alg, issuer, now, next, seq(seq(int(5), now, seq(encodeExtension(OID.crlReason, false, enumerated(7)))))]), /unknown CRLReason 7/],
      ['unknown critical entry extension', craft([int(1), alg, issuer, now, next, seq(seq(int(5), now, seq(encodeExtension('2.5.29.29', true, seq()))))]), /critical entry extension 2\.5\.29\.29/],
      ['unknown critical CRL extension (delta CRL)', craft([int(1), alg, issuer, now, next, exts(number, encodeExtension('2.5.29.27', true, int(1)))]), /critical extension 2\.5\.29\.27/],
      ['empty crlExtensions', craft([int(1), alg, issuer, now, next, exts()]), /must not be empty/],
      ['extensions in a v1 CRL', craft([alg, issuer, now, next, exts(number)]), /v1 CRL/],
      ['entry extensions in a v1 CRL', craft([alg, issuer, now, next, seq(seq(int(5), now, seq(encodeExtension(OID.crlReason, false, enumerated(1)))))]), /v1 CRL/],
      ['negative CRL number', craft([int(1), alg, issuer, now, next, exts(encodeExtension(OID.crlNumber, false, Buffer.from('0201ff', 'hex')))]), /negative/],
      ['element after the extensions', craft([int(1), alg, issuer, now, next, exts(number), int(1)]), /unexpected element/],
      ['no thisUpdate', craft([int(1), alg, issuer]), /expected 3\.\.7 elements|thisUpdate/],
    ];
    for (const [what, bytes, message] of cases) assert.throws(() => parseCrl(bytes), expectCode('DER_MALFORMED', message), what);
  });
});
