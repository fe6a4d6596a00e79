import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { terminalSafe } from './terminal-text.js';

describe('terminalSafe: what a device reports cannot drive the admin terminal', () => {
  test('ESC sequences, C0, DEL and C1 controls (CSI U+009B) are shown, not sent', () => {
    assert.equal(terminalSafe('a\x1b[2Jb'), 'a\\u{1b}[2Jb');
    assert.equal(terminalSafe('\x00\x07\x08\t\r\n\x7f'), '\\u{0}\\u{7}\\u{8}\\u{9}\\u{d}\\u{a}\\u{7f}');
    assert.equal(terminalSafe('x\u009b2Jy\u0085'), 'x\\u{9b}2Jy\\u{85}');
    assert.equal(terminalSafe('\x1b]8;;https://evil.example\x07link'), '\\u{1b}]8;;https://evil.example\\u{7}link');
  });

  test('Unicode bidi overrides, embeddings, isolates and marks are shown (trojan-source class)', () => {
    const bidi = [0x61c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069];
    for (const cp of bidi) assert.equal(terminalSafe(`a${String.fromCodePoint(cp)}b`), `a\\u{${cp.toString(16)}}b`);
    assert.equal(terminalSafe('line\u2028sep\u2029'), 'line\\u{2028}sep\\u{2029}');
  });

  test('ordinary Unicode passes unchanged: accents, CJK, emoji with joiners, right-to-left letters', () => {
    for (const s of ['Müller-Laptop', 'ノートPC', '👩‍💻 dev', 'שלום', 'a b\u00a0c']) assert.equal(terminalSafe(s), s);
  });

  test('multiline keeps only \\n; every other control is still shown', () => {
    assert.equal(terminalSafe('ID  NAME\nx\x1b[2J\r\u202e', { multiline: true }), 'ID  NAME\nx\\u{1b}[2J\\u{d}\\u{202e}');
  });
});
