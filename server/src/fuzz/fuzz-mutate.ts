/**
 * Mutations of valid inputs, as fast-check arbitraries: bit flips, byte
 * writes, truncation, deletion, insertion, DER length-field corruption
 * (indefinite, non-minimal, off by one, 4 GiB), huge contents and deep
 * nesting. A mutation is data (kind + position + value), so fast-check
 * shrinks it and prints it; it is applied to whatever bytes came before it.
 */
import fc from 'fast-check';

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; n: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'repeat'; at: number; n: number; times: number }
  | { kind: 'length'; which: number; to: LengthCorruption }
  | { kind: 'grow'; which: number; by: number }
  | { kind: 'nest'; which: number; depth: number };

export type LengthCorruption = 'indefinite' | 'nonMinimal' | 'plusOne' | 'minusOne' | 'zero' | 'huge' | 'fiveOctets';

/** TLV header positions of a (possibly broken) DER buffer, found by a tolerant walk. */
export function tlvHeaders(b: Buffer): Array<{ at: number; headerLen: number; len: number }> {
  const out: Array<{ at: number; headerLen: number; len: number }> = [];
  const walk = (start: number, end: number, depth: number): void => {
    let p = start;
    while (p + 2 <= end && out.length < 512 && depth < 64) {
      const tag = b[p]!;
      let len = b[p + 1]!;
      let h = 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4 || p + 2 + n > end) return;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + b[p + 2 + i]!;
        h += n;
      }
      if (p + h + len > end) return;
      out.push({ at: p, headerLen: h, len });
      if (tag & 0x20) walk(p + h, p + h + len, depth + 1);
      else if (tag === 0x04 || tag === 0x03) walk(p + h + (tag === 0x03 ? 1 : 0), p + h + len, depth + 1); // DER wrapped in strings (extensions, OCSP)
      p += h + len;
    }
  };
  walk(0, b.length, 0);
  return out;
}

function lengthBytes(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const CORRUPT: Record<LengthCorruption, (len: number) => Buffer> = {
  indefinite: () => Buffer.from([0x80]),
  nonMinimal: (len) => Buffer.from([0x84, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]),
  plusOne: (len) => lengthBytes(len + 1),
  minusOne: (len) => lengthBytes(Math.max(0, len - 1)),
  zero: () => Buffer.from([0]),
  huge: () => Buffer.from([0x84, 0xff, 0xff, 0xff, 0xff]),
  fiveOctets: () => Buffer.from([0x85, 0x01, 0, 0, 0, 0]),
};

/** Largest input a mutation may produce (well over every parser's limit). */
const MAX_BYTES = 2 * 1024 * 1024;

export function applyMutation(b: Buffer, m: Mutation): Buffer {
  const pos = (at: number, len = b.length): number => (len === 0 ? 0 : at % len);
  switch (m.kind) {
    case 'flip': {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      const i = pos(m.at);
      c[i] = c[i]! ^ (1 << m.bit);
      return c;
    }
    case 'byte': {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[pos(m.at)] = m.value;
      return c;
    }
    case 'truncate':
      return b.subarray(0, pos(m.at));
    case 'delete': {
      const at = pos(m.at);
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
    }
    case 'insert': {
      const at = pos(m.at, b.length + 1);
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    }
    case 'repeat': {
      const at = pos(m.at);
      const chunk = b.subarray(at, at + m.n);
      if (chunk.length * m.times > MAX_BYTES) return b;
      return Buffer.concat([b.subarray(0, at), ...Array<Buffer>(m.times).fill(chunk), b.subarray(at)]);
    }
    case 'length': {
      const hs = tlvHeaders(b);
      if (hs.length === 0) return b;
      const h = hs[m.which % hs.length]!;
      return Buffer.concat([b.subarray(0, h.at + 1), CORRUPT[m.to](h.len), b.subarray(h.at + h.headerLen)]);
    }
    case 'grow': {
      // Keep the element well-formed but make its content (and every enclosing length) larger.
      const hs = tlvHeaders(b);
      if (hs.length === 0 || m.by > MAX_BYTES) return b;
      const h = hs[m.which % hs.length]!;
      const contentEnd = h.at + h.headerLen + h.len;
      const grown = Buffer.concat([b.subarray(h.at + h.headerLen, contentEnd), Buffer.alloc(m.by, 0x41)]);
      return replaceElement(b, hs, h, Buffer.concat([Buffer.from([b[h.at]!]), lengthBytes(grown.length), grown]));
    }
    case 'nest': {
      const hs = tlvHeaders(b);
      if (hs.length === 0) return b;
      const h = hs[m.which % hs.length]!;
      let el = b.subarray(h.at, h.at + h.headerLen + h.len);
      for (let i = 0; i < m.depth && el.length < MAX_BYTES; i++) el = Buffer.concat([Buffer.from([0x30]), lengthBytes(el.length), el]);
      return replaceElement(b, hs, h, el);
    }
  }
}

/** Replaces one element and fixes the lengths of the elements that enclose it. */
function replaceElement(b: Buffer, hs: ReturnType<typeof tlvHeaders>, target: { at: number; headerLen: number; len: number }, el: Buffer): Buffer {
  const delta = el.length - (target.headerLen + target.len);
  let out = Buffer.concat([b.subarray(0, target.at), el, b.subarray(target.at + target.headerLen + target.len)]);
  // Enclosing elements, innermost first (they start before and end after the target).
  const enclosing = hs.filter((h) => h.at < target.at && h.at + h.headerLen + h.len >= target.at + target.headerLen + target.len).sort((x, y) => y.at - x.at);
  for (const h of enclosing) {
    const header = Buffer.concat([Buffer.from([out[h.at]!]), lengthBytes(h.len + delta)]);
    const grew = header.length - h.headerLen;
    out = Buffer.concat([out.subarray(0, h.at), header, out.subarray(h.at + h.headerLen)]);
    // A longer header of an enclosing element grows the ones outside it too.
    for (const o of enclosing) if (o.at < h.at) o.len += grew;
  }
  return out;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x30, 0x31, 0xa0, 0x04, 0x02, 0x06, 0x0c, 0x1f) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 200 }), times: fc.integer({ min: 2, max: 500 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('length' as const),
      which: fc.nat(),
      to: fc.constantFrom<LengthCorruption>('indefinite', 'nonMinimal', 'plusOne', 'minusOne', 'zero', 'huge', 'fiveOctets'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('grow' as const), which: fc.nat(), by: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(0x7f, 0xff, 0xffff, 70_000)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nest' as const), which: fc.nat(), depth: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constantFrom(100, 1000, 5000)) }) },
);

/** A valid seed with 1 to 4 mutations applied. */
export function mutatedFrom(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(mutationArb, { minLength: 1, maxLength: 4 }))
    .map(([seed, ms]) => ms.reduce<Buffer>((b, m) => applyMutation(b, m), seed));
}

/** Valid seeds, mutated seeds, random bytes and random DER-ish structures. */
export function bytesFor(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...seeds) },
    { weight: 12, arbitrary: mutatedFrom(seeds) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u)) },
    { weight: 2, arbitrary: derish().map((u) => Buffer.from(u)) },
  );
}

/** Random well-framed DER trees with random tags and contents. */
function derish(): fc.Arbitrary<Buffer> {
  const { tree } = fc.letrec<{ tree: Buffer }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.tuple(fc.constantFrom(0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1e, 0x1c, 0x80, 0x82, 0x0a, 0x01), fc.uint8Array({ maxLength: 40 })).map(([t, c]) => Buffer.concat([Buffer.from([t]), lengthBytes(c.length), c])),
      fc.tuple(fc.constantFrom(0x30, 0x31, 0xa0, 0xa1, 0xa2, 0xa3), fc.array(tie('tree') as fc.Arbitrary<Buffer>, { maxLength: 5 })).map(([t, kids]) => {
        const c = Buffer.concat(kids);
        return Buffer.concat([Buffer.from([t]), lengthBytes(c.length), c]);
      }),
    ),
  }));
  return tree;
}

// ------------------------------------------------------------------ JSON

/** Strings that break naive code: Unicode, controls, bidi overrides, NUL, lone surrogates, huge. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', '\u0000', 'ü@x.de', '\u202e', '\ud800', 'a\r\nb', '%_\\', '../../etc/passwd', '__proto__', 'constructor', '😀'.repeat(100), 'x'.repeat(70_000)),
);

/** Any JSON value, with nasty strings and (rarely) very deep nesting. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 2, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.constantFrom(-1, 0, 2 ** 53, -(2 ** 63), 1e308, 0.5, true, null) },
  { weight: 1, arbitrary: fc.integer({ min: 10, max: 1000 }).map((d) => JSON.parse('['.repeat(d) + ']'.repeat(d)) as unknown) },
);

/** JSON text nested deeper than JSON.stringify (or a recursive walker) can go. */
const deepJsonText: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 1000, max: 30_000 }), fc.constantFrom('array', 'object'), fc.constantFrom('', '{"type":"hello","facts":', '{"reason":', '{"name":'))
  .map(([d, kind, prefix]) => {
    const inner = kind === 'array' ? '['.repeat(d) + ']'.repeat(d) : '{"a":'.repeat(d) + '1' + '}'.repeat(d);
    return prefix ? `${prefix}${inner}}` : inner;
  });

/** A template object with fields replaced, removed or added. */
export function mutatedObject(template: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(template);
  return fc
    .tuple(
      fc.array(fc.tuple(keys.length ? fc.constantFrom(...keys) : fc.string(), fc.oneof(anyJson, fc.constant(undefined))), { maxLength: 3 }),
      fc.option(fc.tuple(fc.oneof(fc.string(), fc.constant('__proto__')), anyJson), { nil: undefined }),
    )
    .map(([changes, extra]) => {
      const o: Record<string, unknown> = structuredClone(template);
      for (const [k, v] of changes) {
        if (v === undefined) delete o[k];
        else o[k] = v;
      }
      if (extra) Object.defineProperty(o, extra[0], { value: extra[1], enumerable: true, configurable: true, writable: true });
      return o;
    });
}

/** JSON text of templates (mutated) and of anything, plus byte mutations of the text. */
export function jsonBytesFor(templates: ReadonlyArray<Record<string, unknown>>): fc.Arbitrary<Buffer> {
  const text = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...templates).chain(mutatedObject) },
    { weight: 2, arbitrary: anyJson },
    { weight: 1, arbitrary: fc.constantFrom(...templates) },
  ).map((v) => Buffer.from(JSON.stringify(v) ?? 'null'));
  return fc.oneof(
    { weight: 5, arbitrary: text },
    { weight: 1, arbitrary: deepJsonText.map((t) => Buffer.from(t)) },
    { weight: 2, arbitrary: fc.tuple(text, fc.array(mutationArb.filter((m) => m.kind !== 'length' && m.kind !== 'grow' && m.kind !== 'nest'), { minLength: 1, maxLength: 3 })).map(([b, ms]) => ms.reduce<Buffer>((x, m) => applyMutation(x, m), b)) },
  );
}
