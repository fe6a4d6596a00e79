/**
 * The CLI's client for the admin API: HTTPS to the running server, trusting
 * --ca-file, the data dir's root, or the root stored with the session. Its
 * credential, in this order: LATCHKEY_ADMIN_TOKEN; the session
 * `latchkey-server login` stored for the server's origin (refreshed when
 * due, cli/admin-session.ts); the data dir's bootstrap admin token.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { AUTH_PATHS, type AdminSession } from '@latchkey/protocol';
import { FILES } from './ca/ca-files.js';
import { sessionToken } from './cli/admin-session.js';
import { apiCall, apiError, apiRequest, type ApiTarget } from './cli/api-request.js';
import { configDir, serverOrigin, sessionStore, type SessionStore } from './cli/session-store.js';
import { UsageError } from './cli-errors.js';
import { CONFIG_FILE, localServerUrl } from './config/config-load.js';

export { ApiError, UsageError } from './cli-errors.js';

export interface AdminClient {
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

export interface ServerTarget extends ApiTarget {
  /** The bootstrap admin token of the data dir, when --data-dir was given and it has one. */
  dataDirToken?: string;
}

export interface TargetOptions {
  dataDir?: string;
  server?: string;
  caFile?: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Which server, and which root to trust: --server (else LATCHKEY_SERVER, else
 * the data dir's local listener: the public URL may not resolve from here);
 * --ca-file, else the data dir's root.
 */
export function serverTarget(opts: TargetOptions): ServerTarget {
  let server = opts.server || opts.env.LATCHKEY_SERVER || undefined;
  let ca: string | undefined = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  let dataDirToken: string | undefined;
  if (opts.dataDir) {
    const cfg = join(opts.dataDir, CONFIG_FILE);
    if (!existsSync(cfg)) throw new UsageError(`no ${CONFIG_FILE} in ${opts.dataDir}; is it the server's --data-dir?`);
    server ??= localServerUrl(opts.dataDir);
    const tokenFile = join(opts.dataDir, FILES.adminToken);
    if (existsSync(tokenFile)) dataDirToken = readFileSync(tokenFile, 'utf8').trim() || undefined;
    ca ??= readFileSync(join(opts.dataDir, FILES.rootCert), 'utf8');
  }
  if (!server) throw new UsageError('which server? give --data-dir D (on the server host) or --server https://HOST:PORT');
  return { server, ...(ca ? { ca } : {}), ...(dataDirToken ? { dataDirToken } : {}) };
}

/** The session store of this user (XDG_CONFIG_HOME and the like, from env). */
export const userSessions = (env: NodeJS.ProcessEnv): SessionStore => sessionStore(configDir(env));

export function adminClientFrom(opts: TargetOptions & { clock?: () => Date; sessions?: SessionStore }): AdminClient {
  const target = serverTarget(opts);
  const envToken = opts.env.LATCHKEY_ADMIN_TOKEN;
  const clock = opts.clock ?? (() => new Date());
  type Credential = { token: string; ca: string | undefined; session?: { origin: string; store: SessionStore } };
  let credential: Promise<Credential> | undefined;

  const refresh = (ca: string | undefined) => (refreshToken: string) => apiCall<AdminSession>({ server: target.server, ...(ca ? { ca } : {}) }, 'POST', AUTH_PATHS.refresh, { body: { refreshToken } });
  const sessionDeps = (c: { origin: string; store: SessionStore }, ca: string | undefined) => ({ store: c.store, origin: c.origin, clock, refresh: refresh(ca) });

  async function resolve(): Promise<Credential> {
    if (envToken) return { token: envToken, ca: target.ca };
    const origin = serverOrigin(target.server);
    const store = opts.sessions ?? userSessions(opts.env);
    const entry = await store.get(origin);
    if (entry) {
      const ca = target.ca ?? entry.caPem;
      const token = await sessionToken(sessionDeps({ origin, store }, ca));
      if (token) return { token, ca, session: { origin, store } };
    }
    if (target.dataDirToken) return { token: target.dataDirToken, ca: target.ca };
    throw new UsageError(`no admin credentials for ${origin}: sign in with \`latchkey-server login --server ${origin}\`, set LATCHKEY_ADMIN_TOKEN, or give --data-dir of the server (on its host)`);
  }

  return {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      credential ??= resolve();
      let c = await credential;
      let a = await apiRequest({ server: target.server, ...(c.ca ? { ca: c.ca } : {}) }, method, path, { body, token: c.token });
      // A session the server no longer takes (ended early, or our clock is behind): refresh once and
      // send again. The request was refused before it did anything, so sending it again is safe.
      if (a.status === 401 && c.session) {
        const token = await sessionToken(sessionDeps(c.session, c.ca), c.token);
        if (token === undefined) throw apiError(a);
        c = { ...c, token };
        credential = Promise.resolve(c);
        a = await apiRequest({ server: target.server, ...(c.ca ? { ca: c.ca } : {}) }, method, path, { body, token });
      }
      if (a.status >= 400) throw apiError(a);
      return a.json as T;
    },
  };
}
