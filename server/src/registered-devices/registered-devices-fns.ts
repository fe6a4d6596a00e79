/** Pure helpers of the EK inventory: the CSV import (as MDMs export it) and the list's cursor. */
import { EK_HASH_PATTERN, GROUP_NAME_PATTERN, REGISTERED_DEVICES_IMPORT_LIMITS } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';

export interface ImportRow {
  line: number;
  name: string | null;
  ekHash: string;
  group: string | null;
}

const HEX64 = new RegExp(EK_HASH_PATTERN, 'i');
const GROUP = new RegExp(GROUP_NAME_PATTERN);
const PRINTABLE_NAME = /^[^\p{Cc}",]{1,64}$/u;

/**
 * `name,ek_hash[,group]` lines; a first line `name,ek_hash…` is a header;
 * blank lines are skipped. Every line is checked before anything is written:
 * the first bad line is named in the error (all or nothing).
 */
export function parseRegisteredDevicesCsv(text: string): ImportRow[] {
  const { maxRows, maxBytes } = REGISTERED_DEVICES_IMPORT_LIMITS;
  if (Buffer.byteLength(text) > maxBytes) throw new LatchkeyError('PAYLOAD_TOO_LARGE', `the CSV is over ${maxBytes} bytes; split it into files of at most ${maxRows} rows`);
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const rows: ImportRow[] = [];
  const seen = new Map<string, number>();
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    const cells = raw.split(',').map((c) => c.trim());
    if (line === 1 && cells[0]?.toLowerCase() === 'name' && cells[1]?.toLowerCase() === 'ek_hash') return;
    const bad = (why: string): never => {
      throw new LatchkeyError('BAD_REQUEST', `line ${line}: ${why}; nothing was imported (columns: name,ek_hash[,group])`);
    };
    if (cells.length < 2 || cells.length > 3) bad(`expected 2 or 3 columns, found ${cells.length}`);
    const [name, hash, group] = cells as [string, string, string | undefined];
    if (name !== '' && !PRINTABLE_NAME.test(name)) bad('the name must be 1 to 64 printable characters without quotes or commas');
    if (!HEX64.test(hash)) bad('ek_hash must be 64 hexadecimal digits (SHA-256 of the EK public key\'s SPKI DER)');
    if (group !== undefined && group !== '' && !GROUP.test(group)) bad(`"${group}" is not a group name (lower-case letters, digits, - and _)`);
    const ekHash = hash.toLowerCase();
    const dup = seen.get(ekHash);
    if (dup !== undefined) bad(`this ek_hash is already on line ${dup}`);
    seen.set(ekHash, line);
    rows.push({ line, name: name === '' ? null : name, ekHash, group: group ? group : null });
    if (rows.length > maxRows) throw new LatchkeyError('PAYLOAD_TOO_LARGE', `the CSV has more than ${maxRows} rows; split it and import each part`);
  });
  if (rows.length === 0) throw new LatchkeyError('BAD_REQUEST', 'the CSV has no rows (columns: name,ek_hash[,group])');
  return rows;
}

/** The list's position: (created_at, id) of the last row of the page. */
export const encodeRegisteredCursor = (createdAt: string, id: string): string => Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');

export function decodeRegisteredCursor(c: string): { createdAt: string; id: string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(c, 'base64url').toString());
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') {
    throw new LatchkeyError('BAD_REQUEST', 'invalid cursor; start again from the first page (without cursor)');
  }
  return { createdAt: v[0], id: v[1] };
}
