/** `gateway sync --token-file F`: the gateway token from a file, so it is not on the command line (`ps`). */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../admin-client.js';

/** The token in `file`, trailing whitespace and CR/LF removed; refuses a file others may read or write. */
export function readGatewayTokenFile(file: string): string {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UsageError(`--token-file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`--token-file ${file} is not a file`);
  if (st.mode & 0o007) throw new UsageError(`--token-file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${file}`);
  if (st.size > 4096) throw new UsageError(`--token-file ${file} is ${st.size} bytes; it should hold only the gateway token`);
  const token = readFileSync(file, 'utf8').trim();
  if (!token) throw new UsageError(`--token-file ${file} is empty; put the token from \`latchkey-server gateway token create\` in it`);
  if (/\s/.test(token)) throw new UsageError(`--token-file ${file} must hold the gateway token alone on one line`);
  return token;
}
