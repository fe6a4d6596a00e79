/**
 * A small, bounded reader of Apple property lists, XML (`<plist>`) and
 * binary (`bplist00`), for macOS managed preferences (managed-prefs.ts):
 * what an MDM configuration profile becomes in `/Library/Managed
 * Preferences/`. Only reading; every value type a plist can hold (dict,
 * array, string, integer, real, boolean, date, data; binary UIDs and null
 * are refused). Bounded against a hostile or broken file: its size (the
 * caller's), nesting depth, the number of values produced (a binary plist
 * can reference one object many times), string and key lengths; binary
 * object references out of range or in a cycle, and XML entities other than
 * the five predefined and character references (no DOCTYPE internal subset,
 * so no entity expansion) are errors. Dictionaries are null-prototype
 * objects; a key given twice is an error.
 */

export type PlistValue = string | number | boolean | Date | Buffer | PlistValue[] | PlistDict;
export interface PlistDict {
  [key: string]: PlistValue;
}

export interface PlistLimits {
  /** Deepest nesting of arrays and dicts. */
  maxDepth: number;
  /** Values produced in all (a binary plist may reference one object many times). */
  maxValues: number;
  /** Longest string, key or data, in characters or bytes. */
  maxStringLength: number;
}

export const DEFAULT_PLIST_LIMITS: PlistLimits = Object.freeze({ maxDepth: 16, maxValues: 10_000, maxStringLength: 16 * 1024 });

export class PlistError extends Error {}

const fail = (m: string): never => {
  throw new PlistError(m);
};

/** The plist in `buf`, XML or binary (by its first bytes). */
export function parsePlist(buf: Buffer, limits: PlistLimits = DEFAULT_PLIST_LIMITS): PlistValue {
  if (buf.subarray(0, 6).toString('latin1') === 'bplist') {
    if (buf.subarray(6, 8).toString('latin1') !== '00') fail(`binary plist version ${JSON.stringify(buf.subarray(6, 8).toString('latin1'))} is not supported (only bplist00)`);
    return parseBinary(buf, limits);
  }
  return parseXml(buf, limits);
}

// ---------------------------------------------------------------- binary

/** Seconds from the Unix epoch to 2001-01-01T00:00:00Z, the plist date epoch. */
const APPLE_EPOCH_S = 978_307_200;

function parseBinary(buf: Buffer, limits: PlistLimits): PlistValue {
  if (buf.length < 8 + 1 + 32) fail('binary plist is truncated');
  const t = buf.length - 32;
  const offsetSize = buf[t + 6]!;
  const refSize = buf[t + 7]!;
  const numObjects = readUInt(buf, t + 8, 8);
  const top = readUInt(buf, t + 16, 8);
  const tableAt = readUInt(buf, t + 24, 8);
  if (![1, 2, 4, 8].includes(offsetSize) || ![1, 2, 4, 8].includes(refSize)) fail('binary plist trailer has a bad offset or reference size');
  if (numObjects < 1 || numObjects > limits.maxValues) fail(`binary plist has ${numObjects} objects; at most ${limits.maxValues}`);
  if (top >= numObjects) fail('binary plist top object is out of range');
  if (tableAt < 8 || tableAt + numObjects * offsetSize > t) fail('binary plist offset table is out of range');
  const offsets: number[] = [];
  for (let i = 0; i < numObjects; i++) {
    const o = readUInt(buf, tableAt + i * offsetSize, offsetSize);
    if (o < 8 || o >= tableAt) fail(`binary plist object ${i} is out of range`);
    offsets.push(o);
  }
  let produced = 0;
  const onPath = new Set<number>();

  /** A length: the low nibble, or 0xF then an int object. Returns the length and where the content starts. */
  const lengthAt = (at: number, info: number): [number, number] => {
    if (info !== 0x0f) return [info, at + 1];
    const m = byteAt(at + 1);
    if (m >> 4 !== 0x1 || (m & 0xf) > 3) fail('binary plist has a bad length');
    const n = 1 << (m & 0xf);
    return [readUInt(buf, at + 2, n, t), at + 2 + n];
  };
  const byteAt = (at: number): number => (at < t ? buf[at]! : fail('binary plist object runs past the end'));
  const span = (at: number, n: number): Buffer => (n <= t - at ? buf.subarray(at, at + n) : fail('binary plist object runs past the end'));
  const refAt = (at: number): number => {
    const r = readUInt(buf, at, refSize, t);
    return r < numObjects ? r : fail('binary plist object reference is out of range');
  };

  const obj = (i: number, depth: number): PlistValue => {
    if (++produced > limits.maxValues) fail(`plist holds more than ${limits.maxValues} values`);
    if (onPath.has(i)) fail('binary plist has a reference cycle');
    const at = offsets[i]!;
    const marker = byteAt(at);
    const kind = marker >> 4;
    const info = marker & 0xf;
    switch (kind) {
      case 0x0:
        if (marker === 0x08) return false;
        if (marker === 0x09) return true;
        return fail(`binary plist value 0x${marker.toString(16).padStart(2, '0')} (null or fill) is not supported`);
      case 0x1: {
        if (info > 3) return fail('binary plist integer is wider than 64 bits');
        const b = span(at + 1, 1 << info);
        if (info < 3) return b.readUIntBE(0, b.length);
        const v = b.readBigInt64BE(0);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail('plist integer is out of range');
        return Number(v);
      }
      case 0x2:
        if (info === 2) return span(at + 1, 4).readFloatBE(0);
        if (info === 3) return span(at + 1, 8).readDoubleBE(0);
        return fail('binary plist real has a bad size');
      case 0x3:
        if (marker !== 0x33) fail('binary plist date has a bad size');
        return appleDate(span(at + 1, 8).readDoubleBE(0));
      case 0x4: {
        const [n, from] = lengthAt(at, info);
        if (n > limits.maxStringLength) fail(`plist data is ${n} bytes; at most ${limits.maxStringLength}`);
        return Buffer.from(span(from, n));
      }
      case 0x5: {
        const [n, from] = lengthAt(at, info);
        if (n > limits.maxStringLength) fail(`plist string is ${n} characters; at most ${limits.maxStringLength}`);
        const b = span(from, n);
        if (b.some((c) => c > 0x7f)) fail('binary plist ASCII string holds a non-ASCII byte');
        return b.toString('latin1');
      }
      case 0x6: {
        const [n, from] = lengthAt(at, info);
        if (n > limits.maxStringLength) fail(`plist string is ${n} characters; at most ${limits.maxStringLength}`);
        const b = Buffer.from(span(from, n * 2));
        return b.swap16().toString('utf16le');
      }
      case 0xa:
      case 0xd: {
        if (depth >= limits.maxDepth) fail(`plist is nested deeper than ${limits.maxDepth}`);
        const [n, from] = lengthAt(at, info);
        if (n > limits.maxValues) fail(`plist holds more than ${limits.maxValues} values`);
        const refs = (k: number): number => refAt(from + k * refSize);
        onPath.add(i);
        try {
          if (kind === 0xa) {
            const out: PlistValue[] = [];
            for (let k = 0; k < n; k++) out.push(obj(refs(k), depth + 1));
            return out;
          }
          const out: PlistDict = Object.create(null) as PlistDict;
          for (let k = 0; k < n; k++) {
            const key = obj(refs(k), depth + 1);
            if (typeof key !== 'string') fail('binary plist dictionary key is not a string');
            if (Object.hasOwn(out, key as string)) fail(`plist dictionary has the key ${JSON.stringify((key as string).slice(0, 64))} twice`);
            out[key as string] = obj(refs(n + k), depth + 1);
          }
          return out;
        } finally {
          onPath.delete(i);
        }
      }
      default:
        return fail(`binary plist value 0x${marker.toString(16).padStart(2, '0')} is not supported`);
    }
  };
  return obj(top, 0);
}

/** An unsigned big-endian integer of `n` bytes at `at`, below `end` and within the safe range. */
function readUInt(buf: Buffer, at: number, n: number, end = buf.length): number {
  if (at < 0 || at + n > end) fail('binary plist runs past the end');
  let v = 0;
  for (let k = 0; k < n; k++) {
    v = v * 256 + buf[at + k]!;
    if (v > Number.MAX_SAFE_INTEGER) fail('binary plist holds a number out of range');
  }
  return v;
}

function appleDate(seconds: number): Date {
  const d = new Date((seconds + APPLE_EPOCH_S) * 1000);
  return Number.isNaN(d.getTime()) ? fail('plist date is out of range') : d;
}

// ---------------------------------------------------------------- XML

const XML_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function parseXml(buf: Buffer, limits: PlistLimits): PlistValue {
  let s = buf.toString('utf8');
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  let i = 0;
  let produced = 0;
  const where = (): string => `line ${s.slice(0, i).split('\n').length}`;
  const err = (m: string): never => fail(`XML plist, ${where()}: ${m}`);
  const skipSpace = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  /** Whitespace, comments, processing instructions and a DOCTYPE without an internal subset. */
  const skipMisc = (): void => {
    for (;;) {
      skipSpace();
      if (s.startsWith('<!--', i)) {
        const e = s.indexOf('-->', i + 4);
        if (e < 0) err('unterminated comment');
        i = e + 3;
      } else if (s.startsWith('<?', i)) {
        const e = s.indexOf('?>', i + 2);
        if (e < 0) err('unterminated processing instruction');
        i = e + 2;
      } else if (s.startsWith('<!DOCTYPE', i)) {
        const e = s.indexOf('>', i);
        if (e < 0) err('unterminated DOCTYPE');
        if (s.slice(i, e).includes('[')) err('a DOCTYPE with an internal subset (entity declarations) is not accepted');
        i = e + 1;
      } else return;
    }
  };
  /** `<name attrs>` or `<name attrs/>`; returns the name and whether it closed itself. */
  const openTag = (): { name: string; empty: boolean } => {
    skipMisc();
    if (s[i] !== '<' || s[i + 1] === '/') err('expected a value element');
    const m = /^<([A-Za-z]+)((?:\s+[A-Za-z:_-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(s.slice(i, i + 512));
    if (!m) return err('malformed tag');
    i += m[0].length;
    return { name: m[1]!, empty: m[3] === '/' };
  };
  const closeTag = (name: string): void => {
    skipMisc();
    const m = /^<\/([A-Za-z]+)\s*>/.exec(s.slice(i, i + 64));
    if (!m || m[1] !== name) err(`expected </${name}>`);
    i += m![0].length;
  };
  /** Character data up to the next `<`, entities decoded; comments inside are skipped. */
  const text = (): string => {
    let out = '';
    for (;;) {
      const lt = s.indexOf('<', i);
      if (lt < 0) err('unterminated element');
      out += decode(s.slice(i, lt));
      if (out.length > limits.maxStringLength) err(`a string is longer than ${limits.maxStringLength} characters`);
      i = lt;
      if (s.startsWith('<!--', i)) {
        const e = s.indexOf('-->', i + 4);
        if (e < 0) err('unterminated comment');
        i = e + 3;
      } else if (s.startsWith('<![CDATA[', i)) {
        const e = s.indexOf(']]>', i + 9);
        if (e < 0) err('unterminated CDATA section');
        out += s.slice(i + 9, e);
        i = e + 3;
      } else return out;
    }
  };
  const decode = (raw: string): string =>
    raw.replace(/&([^;&\s]{0,10});?/g, (all, name: string) => {
      if (!all.endsWith(';')) return err('a bare & (write &amp;)');
      if (name in XML_ENTITIES) return XML_ENTITIES[name]!;
      const m = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(name);
      const cp = m ? parseInt(m[1] ?? m[2]!, m[1] ? 16 : 10) : NaN;
      if (!(cp >= 1 && cp <= 0x10ffff) || (cp >= 0xd800 && cp <= 0xdfff)) return err(`unknown entity &${name.slice(0, 10)};`);
      return String.fromCodePoint(cp);
    });
  const leaf = (name: string, empty: boolean): string => {
    if (empty) return '';
    const v = text();
    closeTag(name);
    return v;
  };

  const value = (depth: number): PlistValue => {
    if (++produced > limits.maxValues) err(`plist holds more than ${limits.maxValues} values`);
    const { name, empty } = openTag();
    switch (name) {
      case 'string':
        return leaf(name, empty);
      case 'integer': {
        const t = leaf(name, empty).trim();
        if (!/^[+-]?(?:[0-9]{1,16}|0x[0-9A-Fa-f]{1,13})$/.test(t)) err(`<integer> ${JSON.stringify(t.slice(0, 40))} is not an integer in range`);
        const neg = t.startsWith('-');
        const body = t.replace(/^[+-]/, '');
        const v = body.startsWith('0x') ? parseInt(body.slice(2), 16) : parseInt(body, 10);
        if (!Number.isSafeInteger(v)) err('plist integer is out of range');
        return neg ? -v : v;
      }
      case 'real': {
        const t = leaf(name, empty).trim();
        const v = /^(?:[+-]?inf|nan)$/i.test(t) ? (t.toLowerCase() === 'nan' ? NaN : t.startsWith('-') ? -Infinity : Infinity) : Number(t);
        if (t === '' || t.length > 64 || (Number.isNaN(v) && t.toLowerCase() !== 'nan')) err(`<real> ${JSON.stringify(t.slice(0, 40))} is not a number`);
        return v;
      }
      case 'true':
      case 'false':
        if (!empty) closeTag(name);
        return name === 'true';
      case 'date': {
        const t = leaf(name, empty).trim();
        if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(t)) err(`<date> ${JSON.stringify(t.slice(0, 40))} is not YYYY-MM-DDTHH:MM:SSZ`);
        const d = new Date(t);
        return Number.isNaN(d.getTime()) ? err('plist date is out of range') : d;
      }
      case 'data': {
        const t = leaf(name, empty).replace(/\s+/g, '');
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) err('<data> is not base64');
        return Buffer.from(t, 'base64');
      }
      case 'array': {
        if (depth >= limits.maxDepth) err(`plist is nested deeper than ${limits.maxDepth}`);
        const out: PlistValue[] = [];
        if (empty) return out;
        for (;;) {
          skipMisc();
          if (s.startsWith('</', i)) break;
          out.push(value(depth + 1));
        }
        closeTag(name);
        return out;
      }
      case 'dict': {
        if (depth >= limits.maxDepth) err(`plist is nested deeper than ${limits.maxDepth}`);
        const out: PlistDict = Object.create(null) as PlistDict;
        if (empty) return out;
        for (;;) {
          skipMisc();
          if (s.startsWith('</', i)) break;
          const k = openTag();
          if (k.name !== 'key') err(`expected <key> in <dict>, got <${k.name}>`);
          const key = leaf('key', k.empty);
          if (Object.hasOwn(out, key)) err(`plist dictionary has the key ${JSON.stringify(key.slice(0, 64))} twice`);
          out[key] = value(depth + 1);
        }
        closeTag(name);
        return out;
      }
      default:
        return err(`<${name.slice(0, 20)}> is not a plist value`);
    }
  };

  const root = openTag();
  if (root.name !== 'plist') err('the root element is not <plist>');
  if (root.empty) err('<plist> is empty');
  const v = value(0);
  closeTag('plist');
  skipMisc();
  if (i !== s.length) err('content after </plist>');
  return v;
}
