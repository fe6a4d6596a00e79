/**
 * The enroll file an MDM or configuration-management tool drops for
 * zero-touch enrollment (issue 15): which server, its root's fingerprint,
 * the keystore, and the enrollment token by reference only (`tokenFile`, a
 * 0600 file of its own). Read by `latchkey run` when the state dir holds no
 * identity (zero-touch.ts). Closed and bounded: a typo or an inline secret
 * is a usage error naming the field.
 */
import { statSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AgentError } from '../errors.js';
import { normalizeFingerprint } from '../est/est-client.js';

/** The file is a few hundred bytes; anything near this is not an enroll file. */
export const MAX_ENROLL_FILE_BYTES = 64 * 1024;

export const EnrollFileSchema = Type.Object(
  {
    server: Type.String({ minLength: 9, maxLength: 2048, pattern: '^https://[^\\s]+$' }),
    caFingerprint: Type.String({ minLength: 64, maxLength: 200 }),
    keystore: Type.Optional(Type.Union([Type.Literal('file'), Type.Literal('os'), Type.Literal('pkcs11')])),
    pkcs11: Type.Optional(
      Type.Object({ module: Type.String({ minLength: 1, maxLength: 4096 }), token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false }),
    ),
    attest: Type.Optional(Type.Literal('tpm')),
    tokenFile: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false },
);

export type EnrollFile = Static<typeof EnrollFileSchema>;

export const ENROLL_FILE_FIELDS = Object.keys(EnrollFileSchema.properties) as (keyof EnrollFile)[];

/** Where the enroll file is looked for when neither --enroll-file nor LATCHKEY_ENROLL_FILE says. */
export function defaultEnrollFile(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string {
  if (platform === 'win32') return join(env.ProgramData ?? 'C:\\ProgramData', 'Latchkey', 'enroll.json');
  if (platform === 'darwin') return '/Library/Application Support/Latchkey/enroll.json';
  return '/etc/latchkey/enroll.json';
}

/** What errors call the source: "the enroll file F" or "the managed preferences F". */
export type EnrollSource = 'the enroll file' | 'the managed preferences';

const bad = (path: string, message: string, source: EnrollSource = 'the enroll file'): AgentError => new AgentError('USAGE', `${source} ${path}: ${message}`);

/**
 * Checks a parsed enroll file; one error naming the first bad field. The
 * tokenFile is made absolute against the enroll file's directory (managed
 * preferences must give it absolute).
 */
export function parseEnrollFile(v: unknown, path: string, source: EnrollSource = 'the enroll file'): EnrollFile {
  const bad = (p: string, message: string): AgentError => new AgentError('USAGE', `${source} ${p}: ${message}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, source === 'the enroll file' ? 'must hold a JSON object' : 'must hold a dictionary');
  const o = v as Record<string, unknown>;
  if ('token' in o) throw bad(path, 'holds the enrollment token inline ("token"); put the token in a file of its own (chmod 600) and name it with "tokenFile" instead');
  const unknown = Object.keys(o).filter((k) => !(ENROLL_FILE_FIELDS as string[]).includes(k));
  if (unknown.length) throw bad(path, `unknown field ${unknown.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}; it may hold ${ENROLL_FILE_FIELDS.join(', ')}`);
  for (const k of ['server', 'caFingerprint', 'tokenFile'] as const) if (o[k] === undefined) throw bad(path, `"${k}" is missing`);
  const first = Value.Errors(EnrollFileSchema, o).First();
  if (first) {
    const where = first.path ? first.path.slice(1).replace(/\//g, '.') : '(top level)';
    // An unexpected property's value is not echoed: it may be a secret put in the wrong place.
    const got = first.value !== undefined && typeof first.value !== 'object' && !/^Unexpected property/.test(first.message) ? ` (got ${JSON.stringify(first.value).slice(0, 80)})` : '';
    throw bad(path, `"${where}": ${first.message}${got}`);
  }
  const f = o as EnrollFile;
  try {
    normalizeFingerprint(f.caFingerprint);
  } catch {
    throw bad(path, `"caFingerprint" is not a SHA-256 fingerprint (64 hex digits, colons optional, as \`latchkey-server init\` prints it)`);
  }
  if (f.keystore === 'pkcs11' && !f.pkcs11) throw bad(path, '"keystore": "pkcs11" needs "pkcs11": { "module": PATH, "token": LABEL }');
  if (f.pkcs11 && f.keystore !== 'pkcs11') throw bad(path, '"pkcs11" goes with "keystore": "pkcs11"');
  if (f.attest === 'tpm' && f.keystore !== 'pkcs11') throw bad(path, '"attest": "tpm" needs "keystore": "pkcs11" with a tpm2-pkcs11 token');
  if (source !== 'the enroll file' && !isAbsolute(f.tokenFile)) throw bad(path, `"tokenFile" must be an absolute path (got ${JSON.stringify(f.tokenFile.slice(0, 80))})`);
  return { ...f, tokenFile: isAbsolute(f.tokenFile) ? f.tokenFile : resolve(dirname(path), f.tokenFile) };
}

/**
 * The bytes of the settings file at `path` (an enroll file, managed
 * preferences), or undefined if there is none. A file others may write
 * (POSIX modes) is refused: whoever can change it chooses which server this
 * device trusts.
 */
export function readSettingsFile(path: string, source: EnrollSource): Buffer | undefined {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw bad(path, (e as Error).message, source);
  }
  if (!st.isFile()) throw bad(path, 'is not a file', source);
  if (process.platform !== 'win32' && st.mode & 0o022) throw bad(path, `can be changed by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 644 ${path}`, source);
  if (st.size > MAX_ENROLL_FILE_BYTES) throw bad(path, `is ${st.size} bytes; ${source === 'the enroll file' ? 'an enroll file' : 'it'} is at most ${MAX_ENROLL_FILE_BYTES}`, source);
  const buf = readFileSync(path);
  if (buf.length > MAX_ENROLL_FILE_BYTES) throw bad(path, `grew past ${MAX_ENROLL_FILE_BYTES} bytes while read`, source);
  return buf;
}

/** The enroll file at `path`, or undefined if there is none (readSettingsFile). */
export function readEnrollFile(path: string): EnrollFile | undefined {
  const buf = readSettingsFile(path, 'the enroll file');
  if (!buf) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw bad(path, `is not valid JSON: ${(e as Error).message}`);
  }
  return parseEnrollFile(v, path);
}
