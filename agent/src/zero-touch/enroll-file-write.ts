/**
 * `latchkey enroll-file write` (issue 15): writes the enroll file and its
 * token file for zero-touch enrollment, for installers that cannot write
 * files themselves (the Windows MSI runs it as a deferred custom action).
 *
 * - The enroll file is checked with the reader's own parseEnrollFile before
 *   anything is written, so what is written is what `latchkey run` accepts.
 * - The token never comes from argv: stdin or LATCHKEY_TOKEN (the caller),
 *   cleaned like every other token input (cleanSecret).
 * - Each file is replaced atomically (temp file, fsync, rename, fsync dir);
 *   the token's temp file is restricted (0600; on Windows its ACL through
 *   `restrict`) while it is still empty, so the token is never readable by
 *   others, not even for a moment.
 * - Idempotent: identical content is left alone (modes are repaired);
 *   different content is refused unless `force`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { MAX_SECRET_FILE_BYTES, cleanSecret } from '@latchkey/cli';
import { AgentError } from '../errors.js';
import { syncDir } from '../state/atomic.js';
import { MAX_ENROLL_FILE_BYTES, parseEnrollFile, type EnrollFile } from './enroll-file.js';

/** The token file's name beside the enroll file when no other is given. */
export const DEFAULT_TOKEN_FILE_NAME = 'enroll-token';

export const ENROLL_FILE_MODE = 0o644;
export const TOKEN_FILE_MODE = 0o600;

export interface EnrollFileWriteRequest {
  /** Where enroll.json goes (absolute). */
  enrollFile: string;
  /** Where the token goes (absolute); default: enroll-token beside the enroll file. */
  tokenFile?: string;
  server: string;
  caFingerprint: string;
  keystore?: 'file' | 'os';
  /** The raw token as read from stdin or LATCHKEY_TOKEN; `tokenFrom` names the source in messages. */
  token: string;
  tokenFrom: string;
  force: boolean;
}

export interface EnrollFileWriteDeps {
  /**
   * Makes a freshly created, still empty file readable by its owner and the
   * administrators only. POSIX: the create mode already does it (no-op).
   * Windows: icacls (windowsRestrict); Node's chmod there only toggles the
   * read-only attribute.
   */
  restrict: (path: string, kind: 'secret' | 'public') => Promise<void>;
}

export interface EnrollFileWriteResult {
  enrollFile: string;
  tokenFile: string;
  /** Which of the two files were (re)written; empty when both already held exactly this. */
  written: ('enroll file' | 'token file')[];
}

const usage = (m: string): AgentError => new AgentError('USAGE', m);

/** The enroll file's bytes for a request: the fields in a fixed order, so the same request always gives the same file. */
export function enrollFileContent(f: EnrollFile): string {
  const o: Record<string, string> = { server: f.server, caFingerprint: f.caFingerprint };
  if (f.keystore) o.keystore = f.keystore;
  o.tokenFile = f.tokenFile;
  return `${JSON.stringify(o, null, 2)}\n`;
}

/** Checks everything, then writes what differs. */
export async function writeEnrollFiles(r: EnrollFileWriteRequest, deps: EnrollFileWriteDeps): Promise<EnrollFileWriteResult> {
  if (!isAbsolute(r.enrollFile)) throw usage(`the enroll file must be an absolute path, got ${JSON.stringify(r.enrollFile.slice(0, 200))}`);
  const tokenFile = r.tokenFile ?? join(dirname(r.enrollFile), DEFAULT_TOKEN_FILE_NAME);
  if (!isAbsolute(tokenFile)) throw usage(`--token-file-out must be an absolute path, got ${JSON.stringify(tokenFile.slice(0, 200))}`);
  if (tokenFile === r.enrollFile) throw usage('the token file and the enroll file must be two different files');
  const parsed = parseEnrollFile({ server: r.server, caFingerprint: r.caFingerprint, ...(r.keystore ? { keystore: r.keystore } : {}), tokenFile }, r.enrollFile);
  const token = cleanSecret(r.token, { where: r.tokenFrom, what: 'the enrollment token', makeWith: 'latchkey-server token create' }, usage);
  const files = [
    { what: 'enroll file' as const, path: r.enrollFile, content: enrollFileContent(parsed), mode: ENROLL_FILE_MODE, kind: 'public' as const },
    { what: 'token file' as const, path: tokenFile, content: `${token}\n`, mode: TOKEN_FILE_MODE, kind: 'secret' as const },
  ];
  const plan: { f: (typeof files)[number]; same: boolean }[] = [];
  // Every check before the first write: a refusal leaves both files as they were.
  for (const f of files) {
    const before = await readExisting(f.path, f.what);
    const same = before !== null && (f.kind === 'secret' ? before.trim() === token : before === f.content);
    if (before !== null && !same && !r.force) {
      throw new AgentError(
        'USAGE',
        `the ${f.what} ${f.path} exists with other content${f.kind === 'secret' ? ' (another token)' : ''}; leave it, remove it, or pass --force to replace it`,
      );
    }
    plan.push({ f, same });
  }
  const written: EnrollFileWriteResult['written'] = [];
  // The token first: an enroll file never names a token file that is not there yet.
  for (const { f, same } of [plan[1]!, plan[0]!]) {
    await mkdir(dirname(f.path), { recursive: true, mode: 0o755 });
    if (same) {
      // Left as it is, but its permissions made right (a file dropped by hand with a looser mode or ACL).
      await repairMode(f.path, f.mode);
      await deps.restrict(f.path, f.kind);
      continue;
    }
    await replaceFile(f.path, f.content, f.mode, (p) => deps.restrict(p, f.kind));
    written.push(f.what);
  }
  return { enrollFile: r.enrollFile, tokenFile, written };
}

async function readExisting(path: string, what: string): Promise<string | null> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw usage(`cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw usage(`the ${what} ${path} is not a file; remove it or choose another path`);
  // Larger than any file this command writes: different content, read no further.
  if (st.size > MAX_ENROLL_FILE_BYTES) return '\u0000(too large)';
  return readFile(path, 'utf8');
}

async function repairMode(path: string, mode: number): Promise<void> {
  if (process.platform === 'win32') return;
  if (((await stat(path)).mode & 0o777) !== mode) await chmod(path, mode);
}

/**
 * Atomic replace with the permissions set while the temp file is empty:
 * create (O_EXCL, `mode`), restrict, write, fsync, rename, fsync the directory.
 */
async function replaceFile(path: string, content: string, mode: number, restrict: (p: string) => Promise<void>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // The umask may clear bits of `mode` at creation (0644 under umask 077): chmod sets them exactly.
    await (await open(tmp, 'wx', mode)).close();
    if (process.platform !== 'win32') await chmod(tmp, mode);
    await restrict(tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dirname(path));
}

/** Well-known SIDs (language-independent, unlike "Administrators"): LocalSystem, BUILTIN\Administrators, BUILTIN\Users. */
const SID = { system: '*S-1-5-18', admins: '*S-1-5-32-544', users: '*S-1-5-32-545' };

/**
 * icacls arguments that replace a file's ACL: inherited entries removed
 * (/inheritance:r), then full control for SYSTEM and Administrators, and
 * read for Users on the public enroll file. There is no pure-Node way: Node's
 * fs.chmod on Windows only sets or clears the read-only attribute.
 */
export function icaclsArgs(path: string, kind: 'secret' | 'public'): string[] {
  return [path, '/inheritance:r', '/grant:r', `${SID.system}:F`, `${SID.admins}:F`, ...(kind === 'public' ? [`${SID.users}:R`] : [])];
}

/** The real machine: icacls on Windows (run without a shell), nothing on POSIX. */
export function nodeEnrollFileWriteDeps(platform: NodeJS.Platform = process.platform): EnrollFileWriteDeps {
  if (platform !== 'win32') return { restrict: async () => undefined };
  return {
    restrict: (path, kind) =>
      new Promise((resolve, reject) => {
        execFile('icacls', icaclsArgs(path, kind), { windowsHide: true }, (err, stdout, stderr) => {
          if (err) reject(new AgentError('USAGE', `could not restrict ${path} with icacls (run this elevated): ${(stderr || stdout || err.message).trim().slice(0, 500)}`));
          else resolve();
        });
      }),
  };
}

/**
 * The token: LATCHKEY_TOKEN when set, else stdin (a pipe or a file, never a
 * terminal: a typed token would echo), at most MAX_SECRET_FILE_BYTES.
 */
export async function readTokenInput(env: NodeJS.ProcessEnv, stdin: NodeJS.ReadStream | NodeJS.ReadableStream): Promise<{ token: string; from: string }> {
  if (env.LATCHKEY_TOKEN !== undefined && env.LATCHKEY_TOKEN !== '') return { token: env.LATCHKEY_TOKEN, from: 'LATCHKEY_TOKEN' };
  if ((stdin as NodeJS.ReadStream).isTTY) throw usage('give the enrollment token on stdin (`… < token-file`, or a pipe) or in LATCHKEY_TOKEN, never as an argument');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    size += b.length;
    if (size > MAX_SECRET_FILE_BYTES) throw usage(`stdin holds more than ${MAX_SECRET_FILE_BYTES} bytes; it should hold only the enrollment token`);
    chunks.push(b);
  }
  return { token: Buffer.concat(chunks).toString('utf8'), from: 'the token on stdin' };
}
