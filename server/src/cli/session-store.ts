/**
 * Where `latchkey-server login` keeps a person's admin sessions: one JSON
 * file in the user's config dir, keyed by the server's origin, private to
 * its owner (dir 0700, file 0600, written atomically). A file others can
 * read is refused, as the gateway's --token-file is; a file this version
 * cannot read says which file and how to clear it. Changes happen under a
 * lock file next to it, so two CLI processes never lose each other's
 * sessions or refresh the same one twice (admin-session.ts).
 */
import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, win32 } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AdminSession, AuthUser } from '@latchkey/protocol';
import { UsageError } from '../cli-errors.js';
import { ConfigError } from '../config/config-load.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { LockBusyError, withLockFile } from '../util/lock-file.js';

export const SESSIONS_FILE = 'sessions.json';
const VERSION = 1;
const MAX_BYTES = 1 << 20;

export const StoredSession = Type.Object({
  /** The server's origin, as the entry's key. */
  server: Type.String({ minLength: 1, maxLength: 500 }),
  /** The root CA trusted at login (--ca-file or the data dir), so later commands need only --server. */
  caPem: Type.Optional(Type.String({ minLength: 1, maxLength: 100_000 })),
  session: AdminSession,
  user: AuthUser,
});
export type StoredSession = Static<typeof StoredSession>;
const SessionsFile = Type.Object({ version: Type.Literal(VERSION), sessions: Type.Record(Type.String(), StoredSession) });
type Sessions = Record<string, StoredSession>;

/** The user's config dir for latchkey-server (XDG on Linux and BSD, Application Support on macOS, %APPDATA% on Windows). */
export function configDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  if (platform === 'win32') return win32.join(env.APPDATA ?? win32.join(home, 'AppData', 'Roaming'), 'latchkey-server');
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && xdg.startsWith('/')) return join(xdg, 'latchkey-server');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'latchkey-server');
  return join(home, '.config', 'latchkey-server');
}

/** The key of a server's entry: its origin (scheme, lower-case host, port without the default). Only https. */
export function serverOrigin(server: string): string {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    throw new UsageError(`--server ${server} is not a URL; give https://HOST:PORT`);
  }
  if (u.protocol !== 'https:') throw new UsageError(`--server ${server} must be https://HOST:PORT (the admin API is only served over TLS)`);
  return u.origin;
}

/**
 * The session file cannot be used: `shared` (others can read it: logout may still read it to end the
 * sessions), or `unreadable`. A ConfigError: exit 2, without a pointer to --help (the fix is the file).
 */
export class SessionFileError extends ConfigError {
  constructor(
    readonly kind: 'shared' | 'unreadable',
    message: string,
  ) {
    super(message);
  }
}

/** `evenIfShared`: read a file others can read too (logout, to end the sessions that may have leaked). */
export interface ReadOptions {
  evenIfShared?: boolean;
}

const clearHint = (file: string): string => `sign out with \`latchkey-server logout\` (it removes the file) or delete ${file}, then sign in again with \`latchkey-server login --server URL\``;

export type SessionStore = ReturnType<typeof sessionStore>;

export function sessionStore(dir: string, opts: { platform?: NodeJS.Platform; lockWaitMs?: number; lockStaleMs?: number } = {}) {
  const file = join(dir, SESSIONS_FILE);
  const lockFile = `${file}.lock`;
  const platform = opts.platform ?? process.platform;

  async function readAll(o: ReadOptions = {}): Promise<Sessions> {
    let st;
    try {
      st = await lstat(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw e;
    }
    if (!st.isFile()) throw new SessionFileError('unreadable', `${file} is not a regular file; ${clearHint(file)}`);
    if (platform !== 'win32' && (st.mode & 0o077) !== 0 && !o.evenIfShared) {
      throw new SessionFileError('shared', `${file} can be read or written by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): the sessions in it may have leaked; run \`chmod 600 ${file}\` and, if others could read it, \`latchkey-server logout\``);
    }
    if (st.size > MAX_BYTES) throw new SessionFileError('unreadable', `${file} is ${st.size} bytes, more than a session file ever holds; ${clearHint(file)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      throw new SessionFileError('unreadable', `${file} is not valid JSON (damaged?); ${clearHint(file)}`);
    }
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && parsed.version !== VERSION) {
      throw new SessionFileError('unreadable', `${file} has version ${String(parsed.version)}, which this latchkey-server does not know (written by another version?); ${clearHint(file)}`);
    }
    if (!Value.Check(SessionsFile, parsed)) throw new SessionFileError('unreadable', `${file} is not a latchkey-server session file this version can read; ${clearHint(file)}`);
    for (const [key, s] of Object.entries(parsed.sessions)) if (s.server !== key) throw new SessionFileError('unreadable', `${file} has an entry for ${key} that names ${s.server}; ${clearHint(file)}`);
    return parsed.sessions;
  }

  async function writeAll(sessions: Sessions): Promise<void> {
    if (Object.keys(sessions).length === 0) {
      await rm(file, { force: true });
      return;
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `${JSON.stringify({ version: VERSION, sessions }, null, 2)}\n`, 0o600);
  }

  /** Runs fn holding the store's lock: nobody else reads-then-writes meanwhile. */
  async function locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      return await withLockFile(lockFile, fn, { waitMs: opts.lockWaitMs ?? 60_000, staleMs: opts.lockStaleMs ?? 60_000 });
    } catch (e) {
      if (e instanceof LockBusyError) throw new ConfigError(`${e.message} for over a minute; if no other latchkey-server command is running, delete ${lockFile}`);
      throw e;
    }
  }

  return {
    file,
    /** Every entry (no lock: the file is replaced atomically, so a read sees one whole version). */
    list: (o?: ReadOptions): Promise<StoredSession[]> => readAll(o).then((s) => Object.values(s)),
    get: async (origin: string, o?: ReadOptions): Promise<StoredSession | undefined> => (await readAll(o))[origin],
    locked,
    /** Sets or replaces the entry for `entry.server`; answers the entry it replaced. Call inside `locked`. */
    async put(entry: StoredSession): Promise<StoredSession | undefined> {
      const all = await readAll();
      const before = all[entry.server];
      await writeAll({ ...all, [entry.server]: entry });
      return before;
    },
    /** Removes the entry (the file when it was the last); answers it. Call inside `locked`. */
    async remove(origin: string, o?: ReadOptions): Promise<StoredSession | undefined> {
      const all = await readAll(o);
      const { [origin]: gone, ...rest } = all;
      if (gone) await writeAll(rest);
      return gone;
    },
    /** Removes the whole file: the way out of a file this version cannot read. */
    discard: (): Promise<void> => rm(file, { force: true }),
  };
}
