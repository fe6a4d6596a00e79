import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  TAG,
  int,
  oid,
  parseOne,
  readOid,
  readTime,
  readUnsignedInt,
  seq,
  seqOf,
  time,
  utf8,
  readString,
  generalizedTime,
} from './der.js';
import { isPkiError } from './errors.js';

const throwsCode = (fn: () => unknown, code: string, re?: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isPkiError(e), `expected PkiError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    return true;
  });
};

describe('DER writer (X.690)', () => {
  test('§8.3 INTEGER: minimal, positive, leading zero only when the high bit is set', () => {
    assert.equal(int(0).toString('hex'), '020100');
    assert.equal(int(127).toString('hex'), '02017f');
    assert.equal(int(128).toString('hex'), '02020080');
    assert.equal(int(Buffer.from('0000ff', 'hex')).toString('hex'), '020200ff');
    assert.equal(int(2n ** 64n).toString('hex'), '0209010000000000000000');
    throwsCode(() => int(-1), 'ARGUMENT_INVALID');
  });

  test('§8.19 OBJECT IDENTIFIER encodes and reads back, including large arcs', () => {
    for (const o of ['1.2.840.10045.4.3.2', '2.5.29.17', '1.3.6.1.4.1.59402.1.1', '2.999.1', '2.25.329800735698586629295641978511506172918', '1.2.9007199254740993.7']) {
      assert.equal(readOid(parseOne(oid(o), 'oid'), 'oid'), o);
    }
    assert.equal(oid('1.2.840.113549').toString('hex'), '06062a864886f70d');
    throwsCode(() => oid('1'), 'ARGUMENT_INVALID');
    throwsCode(() => oid('1.2.x'), 'ARGUMENT_INVALID');
  });

  test('RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050', () => {
    assert.equal(time(new Date('2049-12-31T23:59:59Z')).subarray(2).toString(), '491231235959Z');
    assert.equal(time(new Date('2049-12-31T23:59:59Z'))[0], TAG.UTC_TIME);
    const g = time(new Date('2050-01-01T00:00:00Z'));
    assert.equal(g[0], TAG.GENERALIZED_TIME);
    assert.equal(g.subarray(2).toString(), '20500101000000Z');
    assert.equal(readTime(parseOne(g, 't'), 't').toISOString(), '2050-01-01T00:00:00.000Z');
    assert.equal(readTime(parseOne(time(new Date('1999-05-01T01:02:03Z')), 't'), 't').toISOString(), '1999-05-01T01:02:03.000Z');
    assert.equal(generalizedTime(new Date('2026-03-01T12:00:00Z')).subarray(2).toString(), '20260301120000Z');
  });

  test('long lengths are encoded and read back (300 and 70000 bytes)', () => {
    for (const n of [300, 70000]) {
      const s = seq(Buffer.alloc(n - 2, 0), Buffer.alloc(0)).subarray(0);
      const parsed = parseOne(s, 'big');
      assert.equal(parsed.end - parsed.contentStart, n - 2);
    }
  });
});

describe('DER reader rejects what is not DER', () => {
  test('truncated element → DER_MALFORMED naming what is missing', () => {
    const good = seq(int(5), utf8('hello'));
    for (let cut = 0; cut < good.length; cut++) {
      throwsCode(() => seqOf(parseOne(good.subarray(0, cut), 'x'), 'x'), 'DER_MALFORMED');
    }
  });

  test('indefinite length (BER) is refused', () => {
    throwsCode(() => parseOne(Buffer.from('3080020101 0000'.replace(/ /g, ''), 'hex'), 'x'), 'DER_MALFORMED', /indefinite/);
  });

  test('non-minimal length is refused', () => {
    throwsCode(() => parseOne(Buffer.from('308103020101', 'hex'), 'x'), 'DER_MALFORMED', /minimally/);
  });

  test('trailing bytes after the structure are refused', () => {
    throwsCode(() => parseOne(Buffer.from('3003020101ff', 'hex'), 'x'), 'DER_MALFORMED', /trailing/);
  });

  test('a length claiming 4 GB is refused without allocating', () => {
    throwsCode(() => parseOne(Buffer.from('3084ffffffff00', 'hex'), 'x'), 'DER_MALFORMED', /truncated/);
  });

  test('negative and non-minimal INTEGERs are refused where unsigned values are read', () => {
    throwsCode(() => readUnsignedInt(parseOne(Buffer.from('0201ff', 'hex'), 'i'), 'i'), 'DER_MALFORMED', /negative/);
    throwsCode(() => readUnsignedInt(parseOne(Buffer.from('02020001', 'hex'), 'i'), 'i'), 'DER_MALFORMED', /minimal/);
  });

  test('invalid UTF-8 in a UTF8String is refused', () => {
    throwsCode(() => readString(parseOne(Buffer.from('0c02c328', 'hex'), 's'), 's'), 'DER_MALFORMED', /UTF-8/);
  });

  test('X.680 §41: a UniversalString character beyond U+10FFFF or a surrogate is refused as DER_MALFORMED, not a RangeError (found by fuzzing)', () => {
    throwsCode(() => readString(parseOne(Buffer.from('1c046533b97a', 'hex'), 's'), 's'), 'DER_MALFORMED', /not a Unicode character/);
    throwsCode(() => readString(parseOne(Buffer.from('1c040000d800', 'hex'), 's'), 's'), 'DER_MALFORMED', /not a Unicode character/);
    assert.equal(readString(parseOne(Buffer.from('1c040010ffff', 'hex'), 's'), 's'), '\u{10ffff}');
  });

  test('random bytes never escape as anything but PkiError', () => {
    let seed = 42;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.from(Array.from({ length: 1 + (i % 40) }, rnd));
      try {
        const t = parseOne(b, 'fuzz');
        if (t.tag === TAG.SEQUENCE) seqOf(t, 'fuzz');
      } catch (e) {
        assert.ok(isPkiError(e, 'DER_MALFORMED'), `unexpected ${String(e)} for ${b.toString('hex')}`);
      }
    }
  });
});
