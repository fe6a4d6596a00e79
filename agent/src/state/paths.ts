/**
 * Where the agent keeps its state. The service (root / SYSTEM) uses a
 * system-wide directory; a user's agent (os keystore in the login keychain)
 * a per-user one. `--state-dir` or LATCHKEY_STATE_DIR override both.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export interface PathEnv {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  home: string;
  /** True for root (uid 0) on Unix, for SYSTEM / an elevated service on Windows. */
  system: boolean;
}

export function defaultStateDir(p: PathEnv): string {
  const { env } = p;
  if (p.platform === 'win32') {
    return p.system ? join(env.ProgramData ?? 'C:\\ProgramData', 'Latchkey') : join(env.LOCALAPPDATA ?? join(p.home, 'AppData', 'Local'), 'Latchkey');
  }
  if (p.platform === 'darwin') {
    return p.system ? '/Library/Application Support/Latchkey' : join(p.home, 'Library', 'Application Support', 'Latchkey');
  }
  if (p.system) return '/var/lib/latchkey';
  return join(env.XDG_STATE_HOME || join(p.home, '.local', 'state'), 'latchkey');
}

export function resolveStateDir(flag: string | undefined, p: PathEnv): string {
  return resolve(flag || p.env.LATCHKEY_STATE_DIR || defaultStateDir(p));
}

/**
 * Names this agent's keys in shared stores (the OS keychain, a token):
 * derived from the state directory, so two agents on one machine (a user's
 * and the system's, or tests) never see each other's keys.
 */
export const keyNamespace = (stateDir: string): string => createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 16);

export const STATE_FILES = {
  identity: 'identity.json',
  status: 'status.json',
  lock: 'lock',
  keys: 'keys',
  passphrase: 'key-passphrase',
  /** An enrollment sent but not answered yet: its key and CSR, reused by the next `latchkey enroll`. */
  pendingEnroll: 'enroll-pending.json',
} as const;
