/**
 * Secrets given to a command (enrollment tokens, gateway tokens): from a
 * file or the environment, so they are not on the command line for `ps` to
 * show. One reading for both programs: surrounding whitespace (a trailing
 * newline, Windows CRLF, a stray space from a copy) is removed, and anything
 * left that an HTTP header cannot carry is refused with a message instead of
 * Node's ERR_INVALID_CHAR. The value itself never appears in a message.
 */
import { readFileSync, statSync } from 'node:fs';

/** Largest secret file read (a token is well under 200 characters). */
export const MAX_SECRET_FILE_BYTES = 4096;

/** What the messages name: the flag, the thing, and the command that makes one. */
export interface SecretSource {
  /** e.g. `--token-file /etc/latchkey/token`, `LATCHKEY_TOKEN`, `--token`. */
  where: string;
  /** e.g. `the enrollment token`. */
  what: string;
  /** e.g. `latchkey-server token create`. */
  makeWith: string;
}

/** The secret without surrounding whitespace; refuses an empty one or one with whitespace or control characters inside. */
export function cleanSecret(raw: string, src: SecretSource, fail: (message: string) => Error): string {
  const value = raw.trim();
  if (!value) throw fail(`${src.where} is empty; put ${src.what} from \`${src.makeWith}\` in it`);
  // Visible ASCII only: what a token is, and what an Authorization header carries.
  if (!/^[\x21-\x7e]+$/.test(value)) throw fail(`${src.where} must hold ${src.what} alone on one line (it has spaces, control characters or non-ASCII inside)`);
  return value;
}

/**
 * A secret from a file: a regular file of at most MAX_SECRET_FILE_BYTES that
 * other users cannot read or write (POSIX modes; Windows ACLs are not modes
 * and are not checked here).
 */
export function readSecretFile(file: string, src: Omit<SecretSource, 'where'> & { flag: string }, fail: (message: string) => Error): string {
  const where = `${src.flag} ${file}`;
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw fail(`${where}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!st.isFile()) throw fail(`${where} is not a file`);
  if (process.platform !== 'win32' && st.mode & 0o007) throw fail(`${where} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${file}`);
  if (st.size > MAX_SECRET_FILE_BYTES) throw fail(`${where} is ${st.size} bytes; it should hold only ${src.what}`);
  return cleanSecret(readFileSync(file, 'utf8'), { where, what: src.what, makeWith: src.makeWith }, fail);
}
