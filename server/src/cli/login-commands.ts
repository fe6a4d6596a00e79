/**
 * `latchkey-server login` and `logout`: a person signs in with the device
 * authorization grant (RFC 8628) through the server, which asks the
 * company's identity provider; the admin session lands in the user's config
 * dir (session-store.ts) and admin commands use it (admin-client.ts).
 * Nothing is written before the sign-in succeeds, so Ctrl-C leaves nothing.
 */
import { Option } from '@latchkey/cli';
import { AUTH_PATHS, type AuthDeviceStarted, type AuthResult } from '@latchkey/protocol';
import { serverTarget, userSessions, type ServerTarget } from '../admin-client.js';
import { ApiError, UsageError } from '../cli-errors.js';
import { terminalSafe } from '../util/terminal-text.js';
import { apiCall, apiRequest } from './api-request.js';
import { str, type Cmd, type ServerCliCtx } from './cli-context.js';
import { printer } from './cli-output.js';
import { LoginCancelled, abortableSleep, loginError, pollDeviceLogin } from './device-login.js';
import { SessionFileError, serverOrigin, type StoredSession } from './session-store.js';

type AdminResult = Extract<AuthResult, { purpose: 'admin' }>;

const targetOf = (ctx: ServerCliCtx): ServerTarget =>
  serverTarget({ ...(str(ctx.o, 'dataDir') ? { dataDir: str(ctx.o, 'dataDir')! } : {}), ...(str(ctx.o, 'server') ? { server: str(ctx.o, 'server')! } : {}), ...(str(ctx.o, 'caFile') ? { caFile: str(ctx.o, 'caFile')! } : {}), env: ctx.env });

const serverOptions = (): Option[] => [
  new Option('--server <url>', 'the server, https://HOST:PORT; env LATCHKEY_SERVER'),
  new Option('--ca-file <file>', 'the root CA to trust for --server (PEM); kept with the session'),
  new Option('--data-dir <dir>', "on the server host: the server's data dir (its local URL and root CA)"),
  new Option('--json', 'print only JSON on stdout'),
];

/** Ctrl-C (or SIGTERM) aborts the returned signal instead of killing the process, until `release`. */
function interruptible(): { signal: AbortSignal; release: () => void } {
  const ac = new AbortController();
  const stop = (): void => ac.abort(new LoginCancelled('cancelled'));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return {
    signal: ac.signal,
    release: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

async function signIn(ctx: ServerCliCtx, t: ServerTarget, signal: AbortSignal): Promise<AdminResult> {
  const issuer = str(ctx.o, 'issuer');
  const started = await apiCall<AuthDeviceStarted>(t, 'POST', AUTH_PATHS.deviceStart, { body: { purpose: 'admin', ...(issuer ? { issuer } : {}) }, signal }).catch((e: unknown) => {
    throw e instanceof ApiError ? loginError(e, t.server) : e;
  });
  ctx.err(`Open ${terminalSafe(started.verificationUri)} and enter code ${terminalSafe(started.userCode)}`);
  if (started.verificationUriComplete) ctx.err(`(or open ${terminalSafe(started.verificationUriComplete)}, which carries the code)`);
  ctx.err(`Waiting for you to sign in, until ${started.expiresAt}; Ctrl-C cancels.`);
  const result = await pollDeviceLogin({
    started,
    server: t.server,
    poll: (s) => apiRequest(t, 'POST', AUTH_PATHS.devicePoll, { body: { flowId: started.flowId }, signal: s }),
    clock: () => new Date(),
    sleep: abortableSleep,
    signal,
  });
  return result as AdminResult;
}

export const login: Cmd = {
  usage: 'login',
  summary: "sign in through the company's identity provider (device code); admin commands then act as you",
  options: [...serverOptions(), new Option('--issuer <url>', 'which identity provider, when the server has several')],
  examples: ['login --server https://latchkey.example.com:8443', 'login --server https://latchkey.example.com:8443 --ca-file root.pem', 'login --data-dir /var/lib/latchkey'],
  async run(ctx) {
    const t = targetOf(ctx);
    const origin = serverOrigin(t.server);
    const store = userSessions(ctx.env);
    const p = printer(!!ctx.o.json, ctx.out, ctx.err);
    const { signal, release } = interruptible();
    try {
      let r: AdminResult;
      try {
        r = await signIn(ctx, t, signal);
      } catch (e) {
        if (!(e instanceof LoginCancelled || signal.aborted)) throw e;
        ctx.err('sign-in cancelled; nothing was stored');
        return 130;
      }
      // The session exists at the server now: it is stored before we stop (a Ctrl-C meanwhile waits).
      const entry: StoredSession = { server: origin, ...(t.ca ? { caPem: t.ca } : {}), session: r.session, user: r.user };
      const replaced = await store.locked(() => store.put(entry));
      // The session this login replaces ends now rather than at its expiry (best effort).
      if (replaced && replaced.session.token !== r.session.token) {
        await apiRequest({ server: t.server, ...((t.ca ?? replaced.caPem) ? { ca: t.ca ?? replaced.caPem } : {}) }, 'POST', AUTH_PATHS.logout, { token: replaced.session.token, timeoutMs: 5000 }).catch(() => undefined);
      }
      if (ctx.env.LATCHKEY_ADMIN_TOKEN) ctx.err('note: LATCHKEY_ADMIN_TOKEN is set, and admin commands use it before this session; unset it to act as yourself');
      p.print({ server: origin, user: r.user, role: r.session.role, expiresAt: r.session.expiresAt, refreshExpiresAt: r.session.refreshExpiresAt, file: store.file }, () => `signed in as ${r.user.email} (role ${r.session.role}) until ${r.session.expiresAt}; renewed as needed until ${r.session.refreshExpiresAt}`);
    } finally {
      release();
    }
    return 0;
  },
};

export const logout: Cmd = {
  usage: 'logout',
  summary: 'end your admin session at the server and forget it here',
  options: serverOptions(),
  examples: ['logout --server https://latchkey.example.com:8443', 'logout'],
  async run(ctx) {
    const store = userSessions(ctx.env);
    const p = printer(!!ctx.o.json, ctx.out, ctx.err);
    const named = str(ctx.o, 'server') || ctx.env.LATCHKEY_SERVER || str(ctx.o, 'dataDir');
    const t = named ? targetOf(ctx) : undefined;
    let entries: StoredSession[];
    try {
      entries = await store.list({ evenIfShared: true });
    } catch (e) {
      if (!(e instanceof SessionFileError)) throw e;
      // A file we cannot read: its sessions cannot be ended at the server, only forgotten here.
      await store.discard();
      ctx.err(`removed ${store.file}, which could not be read; sessions in it end by themselves when they expire`);
      p.print({ removedFile: store.file }, () => 'signed out (the session file was unreadable and is removed)');
      return 0;
    }
    let origin: string;
    if (t) origin = serverOrigin(t.server);
    else if (entries.length === 1) origin = entries[0]!.server;
    else if (entries.length === 0) {
      p.print({ signedOut: null }, () => 'not signed in to any server');
      return 0;
    } else throw new UsageError(`signed in to several servers (${entries.map((e) => e.server).join(', ')}); say which with --server URL`);

    const ended = await store.locked(async () => {
      const entry = await store.get(origin, { evenIfShared: true });
      if (!entry) return undefined;
      const ca = t?.ca ?? entry.caPem;
      // 401: the session had ended already. Any other failure: it is forgotten here all the same.
      const a = await apiRequest({ server: origin, ...(ca ? { ca } : {}) }, 'POST', AUTH_PATHS.logout, { token: entry.session.token, timeoutMs: 10_000 }).catch((e: Error) => e);
      const atServer = a instanceof Error ? `could not tell the server (${a.message}); the session ends by itself at ${entry.session.expiresAt}` : a.status < 300 ? 'ended at the server' : a.status === 401 ? 'it had already ended at the server' : `the server answered ${a.status}; the session ends by itself at ${entry.session.expiresAt}`;
      await store.remove(origin, { evenIfShared: true });
      return { entry, atServer };
    });
    if (!ended) {
      p.print({ signedOut: null, server: origin }, () => `not signed in to ${origin}`);
      return 0;
    }
    p.print({ signedOut: ended.entry.user.email, server: origin }, () => `signed out ${ended.entry.user.email} from ${origin}: ${ended.atServer}`);
    return 0;
  },
};

export const loginCommands: Cmd[] = [login, logout];
