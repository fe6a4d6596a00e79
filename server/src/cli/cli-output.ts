/**
 * How admin commands print: data on stdout (a table, a record, a secret, or
 * with --json only JSON), notes for the person at the terminal on stderr.
 * Human output carries what devices reported (names, facts): terminal
 * controls and bidi overrides are shown visibly; --json stays exact.
 */
import { terminalSafe } from '../util/terminal-text.js';

export function table(rows: Record<string, unknown>[], cols: string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '-' : terminalSafe(String(r[c])))));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

export interface Printer {
  /** The command's result: JSON with --json, else the human text (made terminal-safe). */
  print(data: unknown, human: () => string): void;
  /** A secret shown once: alone on stdout (so `TOKEN=$(…)` captures it), the note on stderr; with --json all as JSON. */
  secret(data: unknown, secret: string, note: () => string): void;
}

export function printer(json: boolean, out: (s: string) => void, err: (s: string) => void): Printer {
  const safe = (s: string): string => terminalSafe(s, { multiline: true });
  return {
    print: (data, human) => out(json ? JSON.stringify(data, null, 2) : safe(human())),
    secret: (data, secret, note) => {
      if (json) return out(JSON.stringify(data, null, 2));
      out(secret);
      err(safe(note()));
    },
  };
}

const DURATION = /^([1-9][0-9]{0,5})([smhd])$/;
const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `30m`, `24h`, `7d` in seconds; undefined when it does not look like one. */
export function durationSeconds(s: string): number | undefined {
  const m = DURATION.exec(s);
  return m ? Number(m[1]) * UNIT[m[2]!]! : undefined;
}
