/**
 * Text from devices and admins (facts, names, audit details) shown in a
 * terminal. A device that reports `ESC[2J` or U+202E (right-to-left
 * override) must not clear the admin's screen or make `revoked` read as
 * `dekover`: every human-readable output goes through `terminalSafe`, which
 * shows such characters as a visible `\u{…}` instead. `--json` output is
 * left exact (JSON escapes are for programs).
 */

/**
 * C0 and C1 controls with DEL (\p{Cc}), line and paragraph separators, and
 * the bidirectional formatting characters: marks (U+200E/F, U+061C),
 * embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069).
 */
const UNSAFE = /[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const UNSAFE_KEEP_NEWLINE = /(?!\n)[\p{Cc}\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

const visible = (c: string): string => `\\u{${c.codePointAt(0)!.toString(16)}}`;

/**
 * The text with every terminal control and bidi formatting character shown
 * as `\u{…}`. `multiline` keeps `\n` (for whole outputs made of lines we
 * built); a single value (a table cell, a field) never spans lines.
 */
export function terminalSafe(text: string, opts: { multiline?: boolean } = {}): string {
  return text.replace(opts.multiline ? UNSAFE_KEEP_NEWLINE : UNSAFE, visible);
}
