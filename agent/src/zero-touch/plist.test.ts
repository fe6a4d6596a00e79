/**
 * The property-list reader of macOS managed preferences, cross-checked
 * against python3's plistlib (an independent implementation): the same
 * values written by plistlib as XML and as bplist00 read back alike; broken,
 * truncated and hostile files (cycles, fan-out, depth, entities) are refused
 * with a PlistError and never anything else.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { DEFAULT_PLIST_LIMITS, PlistError, parsePlist } from './plist.js';

/** plistlib's output for each `[expr, fmt]` (expr a Python expression), from one python3 process. */
function plistlib(items: [string, 'XML' | 'BINARY'][]): Buffer[] {
  const py = `import plistlib, sys, datetime, base64, json
out = []
${items.map(([expr, fmt]) => `out.append(base64.b64encode(plistlib.dumps(${expr}, fmt=plistlib.FMT_${fmt}, sort_keys=False)).decode())`).join('\n')}
print(json.dumps(out))`;
  return (JSON.parse(execFileSync('python3', ['-c', py], { maxBuffer: 64 << 20 }).toString()) as string[]).map((b) => Buffer.from(b, 'base64'));
}

/** plistlib's reading of each buffer, as JSON (dates ISO, data base64), to compare with ours; one python3 process. */
function plistlibLoads(bufs: Buffer[]): unknown[] {
  const py = `import plistlib, sys, json, datetime, base64
def conv(v):
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, bytes): return {'data': base64.b64encode(v).decode()}
    if isinstance(v, datetime.datetime): return {'date': v.strftime('%Y-%m-%dT%H:%M:%SZ')}
    return v
print(json.dumps([conv(plistlib.loads(base64.b64decode(b))) for b in json.load(sys.stdin)]))`;
  return JSON.parse(execFileSync('python3', ['-c', py], { input: JSON.stringify(bufs.map((b) => b.toString('base64'))) }).toString()) as unknown[];
}

/** Ours, in the same JSON shape. */
function asJson(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { data: v.toString('base64') };
  if (v instanceof Date) return { date: v.toISOString().replace(/\.\d{3}Z$/, 'Z') };
  if (Array.isArray(v)) return v.map(asJson);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asJson(x)]));
  return v;
}

const refused = (re?: RegExp) => (e: unknown) => e instanceof PlistError && (!re || re.test(e.message));

const ENROLL = `{'server': 'https://latchkey.example.com:8443', 'caFingerprint': '3A:7F:' + 'AB:' * 29 + 'CD', 'keystore': 'pkcs11', 'pkcs11': {'module': '/usr/local/lib/libtpm2_pkcs11.dylib', 'token': 'latchkey'}, 'tokenFile': '/Library/Application Support/Latchkey/enroll-token'}`;
const EVERY_TYPE = `{'s': 'ascii', 'u': 'ünïcødé ✓ 𝄞 <&>"\\'', 'empty': '', 'i': [0, 1, -1, 255, 256, 65535, 65536, 2**31, -2**31, 2**53 - 1, -(2**53 - 1)], 'r': [0.5, -1.25, 1e300], 'b': [True, False], 'd': datetime.datetime(2026, 12, 3, 19, 30, 5), 'data': bytes(range(256)), 'nested': [[{'a': []}], {}], 'long': 'x' * 300}`;

describe('property lists (macOS managed preferences)', () => {
  test('plistlib XML and binary: an enroll payload and every value type read as plistlib reads them', () => {
    const bufs = plistlib([ENROLL, EVERY_TYPE].flatMap((e) => [[e, 'XML'], [e, 'BINARY']] as [string, 'XML' | 'BINARY'][]));
    assert.deepEqual(bufs.map((b) => asJson(parsePlist(b))), plistlibLoads(bufs));
    for (const b of bufs.slice(0, 2)) {
      const ours = parsePlist(b) as Record<string, unknown>;
      assert.equal(ours.server, 'https://latchkey.example.com:8443');
      assert.equal(Object.getPrototypeOf(ours), null, 'dictionaries have no prototype');
    }
  });

  test('binary: objects shared by reference (plistlib writes repeated values once) read whole', () => {
    const bufs = plistlib([[`{'a': ['same'] * 50, 'b': 'same', 'c': {'k': 'same'}}`, 'BINARY']]);
    assert.deepEqual(bufs.map((b) => asJson(parsePlist(b))), plistlibLoads(bufs));
  });

  test('XML: comments, CDATA, character references, self-closing empty values', () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- made by hand -->
<plist version="1.0"><dict>
  <key>a&amp;b</key><string>x &#60;&#x3E; <![CDATA[<raw&>]]> y</string>
  <!-- between -->
  <key>e</key><string/>
  <key>arr</key><array/>
  <key>d</key><dict/>
  <key>t</key><true/>
  <key>n</key><integer> -42 </integer>
</dict></plist>`;
    const v = parsePlist(Buffer.from(xml));
    assert.deepEqual(asJson(v), { 'a&b': 'x <> <raw&> y', e: '', arr: [], d: {}, t: true, n: -42 });
    assert.deepEqual([asJson(v)], plistlibLoads([Buffer.from(xml)]));
  });

  test('XML: refused with a reason', () => {
    const wrap = (body: string) => Buffer.from(`<?xml version="1.0"?><plist version="1.0">${body}</plist>`);
    const cases: [string, RegExp][] = [
      ['<dict><key>a</key></dict>', /expected a value element/],
      ['<dict><key>a</key><string>x</string><key>a</key><string>y</string></dict>', /key "a" twice/],
      ['<dict><string>x</string></dict>', /expected <key>/],
      ['<string>a &foo; b</string>', /unknown entity &foo;/],
      ['<string>a & b</string>', /bare &/],
      ['<string>x</strin>', /expected <\/string>/],
      ['<integer>12abc</integer>', /not an integer/],
      ['<integer>99999999999999999</integer>', /out of range|not an integer/],
      ['<real>one</real>', /not a number/],
      ['<date>yesterday</date>', /not YYYY-MM-DD/],
      ['<data>!!!</data>', /not base64/],
      ['<set/>', /<set> is not a plist value/],
      ['<string>x</string><string>y</string>', /expected <\/plist>/],
      ['<string>unterminated', /expected <\/string>/],
      ['<!-- never closed', /unterminated comment/],
    ];
    for (const [body, re] of cases) assert.throws(() => parsePlist(wrap(body)), refused(re), body);
    assert.throws(() => parsePlist(Buffer.from('<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaa">]><plist><string>&a;</string></plist>')), refused(/internal subset/));
    assert.throws(() => parsePlist(Buffer.from('<dict></dict>')), refused(/root element is not <plist>/));
    assert.throws(() => parsePlist(Buffer.from('')), refused());
    assert.throws(() => parsePlist(Buffer.from('{"server": "json is not a plist"}')), refused());
  });

  test('bounds: depth, number of values, string length (XML and binary)', () => {
    const L = DEFAULT_PLIST_LIMITS;
    const exprs = [`eval('[' * ${L.maxDepth + 2} + ']' * ${L.maxDepth + 2})`, `list(range(${L.maxValues + 5}))`, `'y' * ${L.maxStringLength + 1}`, `'y' * ${L.maxStringLength}`, `eval('[' * ${L.maxDepth} + ']' * ${L.maxDepth})`];
    const bufs = plistlib(exprs.flatMap((e) => [[e, 'XML'], [e, 'BINARY']] as [string, 'XML' | 'BINARY'][]));
    for (const [k, fmt] of ['XML', 'BINARY'].entries()) {
      const [deep, many, long, longest, deepest] = [0, 1, 2, 3, 4].map((n) => bufs[n * 2 + k]!) as [Buffer, Buffer, Buffer, Buffer, Buffer];
      assert.throws(() => parsePlist(deep), refused(/nested deeper than 16/), fmt);
      assert.throws(() => parsePlist(many), refused(/more than 10000 values|objects; at most 10000/), fmt);
      assert.throws(() => parsePlist(long), refused(/at most 16384|longer than 16384/), fmt);
      // Just inside the bounds reads.
      assert.equal((parsePlist(longest) as string).length, L.maxStringLength, fmt);
      assert.ok(Array.isArray(parsePlist(deepest)), fmt);
    }
  });

  test('binary, hand-made hostile files: a cycle, a fan-out bomb, references and offsets out of range, a bad version', () => {
    // Objects: 0 = array [ref 0] (itself).
    const cycle = bplist([Buffer.from([0xa1, 0x00])], 0);
    assert.throws(() => parsePlist(cycle), refused(/cycle/));
    // A chain of arrays each holding the next twice: 2^40 values if expanded.
    const objs: Buffer[] = [];
    for (let k = 0; k < 40; k++) objs.push(Buffer.from([0xa2, k + 1, k + 1]));
    objs.push(Buffer.from([0x51, 0x61]));
    assert.throws(() => parsePlist(bplist(objs, 0)), refused(/more than 10000 values|nested deeper/));
    // Shallow and wide: three arrays of 255 references to the next, 255^3 values if expanded.
    const wide = [0, 1, 2].map((k) => Buffer.concat([Buffer.from([0xaf, 0x10, 0xff]), Buffer.alloc(255, k + 1)]));
    assert.throws(() => parsePlist(bplist([...wide, Buffer.from([0x51, 0x61])], 0)), refused(/more than 10000 values/));
    assert.throws(() => parsePlist(bplist([Buffer.from([0xa1, 0x05])], 0)), refused(/reference is out of range/));
    const badTop = bplist([Buffer.from([0x09])], 0);
    badTop.writeUInt32BE(7, badTop.length - 12);
    assert.throws(() => parsePlist(badTop), refused(/top object is out of range/));
    const badOffset = bplist([Buffer.from([0x09])], 0);
    badOffset.writeUInt16BE(0xffff, badOffset.length - 32 - 2);
    assert.throws(() => parsePlist(badOffset), refused(/out of range/));
    assert.throws(() => parsePlist(bplist([Buffer.from([0x5f, 0x13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])], 0)), refused());
    assert.throws(() => parsePlist(bplist([Buffer.from([0x00])], 0)), refused(/null or fill/));
    assert.throws(() => parsePlist(bplist([Buffer.from([0x80, 0x01])], 0)), refused(/0x80 is not supported/));
    assert.throws(() => parsePlist(bplist([Buffer.from([0xd1, 0x01, 0x01]), Buffer.from([0x09])], 0)), refused(/key is not a string/));
    assert.throws(() => parsePlist(Buffer.concat([Buffer.from('bplist15'), bplist([Buffer.from([0x09])], 0).subarray(8)])), refused(/version "15"/));
    assert.equal(parsePlist(bplist([Buffer.from([0x09])], 0)), true, 'the hand-made layout itself is valid');
  });

  test('fuzz: truncated, bit-flipped and random inputs are a value or a PlistError, never another exception or a hang', () => {
    const seeds = plistlib([[ENROLL, 'BINARY'], [EVERY_TYPE, 'BINARY'], [ENROLL, 'XML'], [EVERY_TYPE, 'XML']]);
    let values = 0;
    let errors = 0;
    const tryOne = (b: Buffer): void => {
      try {
        parsePlist(b);
        values++;
      } catch (e) {
        if (!(e instanceof PlistError)) throw new Error(`not a PlistError on input ${b.toString('base64').slice(0, 200)}`, { cause: e });
        errors++;
      }
    };
    for (const seed of seeds) {
      for (let n = 0; n < seed.length; n += Math.max(1, seed.length >> 6)) tryOne(seed.subarray(0, n));
      for (let k = 0; k < 1500; k++) {
        const b = Buffer.from(seed);
        const flips = 1 + (k % 4);
        for (let f = 0; f < flips; f++) b[randomBytes(4).readUInt32BE(0) % b.length] = randomBytes(1)[0]!;
        tryOne(b);
      }
    }
    for (let k = 0; k < 500; k++) tryOne(Buffer.concat([Buffer.from(k % 2 ? 'bplist00' : '<plist>'), randomBytes(k % 200)]));
    assert.ok(errors > 1000 && values > 0, `${values} values, ${errors} errors`);
  });
});

/** A bplist00 with these objects (2-byte offsets, 1-byte refs), top object `top`. */
function bplist(objects: Buffer[], top: number): Buffer {
  const parts: Buffer[] = [Buffer.from('bplist00')];
  const offsets: number[] = [];
  let at = 8;
  for (const o of objects) {
    offsets.push(at);
    parts.push(o);
    at += o.length;
  }
  const tableAt = at;
  const table = Buffer.alloc(offsets.length * 2);
  offsets.forEach((o, k) => table.writeUInt16BE(o, k * 2));
  parts.push(table);
  const trailer = Buffer.alloc(32);
  trailer[6] = 2;
  trailer[7] = 1;
  trailer.writeBigUInt64BE(BigInt(objects.length), 8);
  trailer.writeBigUInt64BE(BigInt(top), 16);
  trailer.writeBigUInt64BE(BigInt(tableAt), 24);
  parts.push(trailer);
  return Buffer.concat(parts);
}
