/**
 * Signing in with the system browser, a loopback redirect and PKCE
 * (RFC 8252, RFC 7636), through the Latchkey server: the agent makes the
 * verifier and listens on 127.0.0.1; `POST /v1/auth/browser` gives the IdP's
 * authorize URL for that redirect; the browser comes back to the listener
 * with the code; `POST /v1/auth/browser/finish` sends code and verifier, and
 * the server (the OAuth client) exchanges them and answers the result.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { AUTH_PATHS } from '@latchkey/protocol';
import { AgentError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { type AuthApi, readOr, refused } from './sso-api.js';
import { type EnrollGrant, callbackErrorMessage, pkceOf, readBrowserStarted, readEnrollGrant } from './sso-fns.js';
import { startLoopback } from './sso-loopback.js';

/**
 * The command that opens `url` in the person's browser: `$BROWSER URL` when
 * set (one program, no shell), else `open` (macOS), `cmd /c start "" "URL"`
 * (Windows) or `xdg-open`.
 */
export function browserCommand(url: string, host: { platform: NodeJS.Platform; env: Record<string, string | undefined> }): { file: string; args: string[]; verbatim?: boolean } {
  if (host.env.BROWSER) return { file: host.env.BROWSER, args: [url] };
  if (host.platform === 'darwin') return { file: 'open', args: [url] };
  // An http(s) URL (sso-fns webUrl) holds no `"`; inside quotes cmd takes `&` literally.
  if (host.platform === 'win32') return { file: 'cmd', args: ['/c', 'start', '""', `"${url}"`], verbatim: true };
  return { file: 'xdg-open', args: [url] };
}

/** Starts the browser and does not wait for it; a missing or failing opener is no error (the URL is printed too). */
export function openBrowser(url: string, host: { platform: NodeJS.Platform; env: NodeJS.ProcessEnv }): void {
  const c = browserCommand(url, host);
  try {
    const child = spawn(c.file, c.args, { stdio: 'ignore', detached: true, windowsHide: true, ...(c.verbatim ? { windowsVerbatimArguments: true } : {}) });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // The printed URL is the fallback.
  }
}

export interface BrowserSignInOptions {
  issuer?: string;
  log: (line: string) => void;
  clock: Pick<Clock, 'now'>;
  host: { platform: NodeJS.Platform; env: NodeJS.ProcessEnv };
}

export async function browserSignIn(api: AuthApi, o: BrowserSignInOptions): Promise<EnrollGrant> {
  const pkce = pkceOf(randomBytes(32));
  const loopback = await startLoopback();
  try {
    const start = await api.post(AUTH_PATHS.browserStart, { purpose: 'enroll', ...(o.issuer ? { issuer: o.issuer } : {}), redirectUri: loopback.redirectUri, codeChallenge: pkce.challenge });
    if (start.status !== 200) throw refused(start, 'starting the sign-in');
    const flow = readOr(start, readBrowserStarted);
    openBrowser(flow.authorizeUrl, o.host);
    o.log('Sign in in the browser window that opened to enroll this device.');
    o.log(`If no browser opened, visit: ${flow.authorizeUrl}`);
    const cb = await loopback.wait(flow.state, flow.expiresAt.getTime() - o.clock.now().getTime());
    if (!cb) throw new AgentError('SERVER_REFUSED', 'the sign-in took too long; run the same command again', { serverCode: 'AUTH_EXPIRED' });
    if (cb.kind === 'error') throw new AgentError('SERVER_REFUSED', callbackErrorMessage(cb.error, cb.description), { serverCode: cb.error === 'access_denied' ? 'AUTH_DENIED' : 'IDP_ERROR' });
    const done = await api.post(AUTH_PATHS.browserFinish, { flowId: flow.flowId, code: cb.code, state: flow.state, codeVerifier: pkce.verifier });
    if (done.status !== 200) throw refused(done, 'finishing the sign-in');
    return readOr(done, readEnrollGrant);
  } finally {
    await loopback.close();
  }
}
