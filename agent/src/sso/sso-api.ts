/**
 * The Latchkey server's `/v1/auth` routes, over the same HTTPS client as
 * enrollment and trusting only the root pinned by `--ca-fingerprint`
 * (est-client.ts `fetchCaCerts`). The agent never talks to the identity
 * provider itself: the server is its OAuth client.
 */
import { RETRY_AFTER_HEADER } from '@latchkey/protocol/wire';
import { AgentError } from '../errors.js';
import { errorBodyOf, httpsCall, type HttpsResponse } from '../est/est-client.js';
import { BadAnswer, printable, signInRefusal } from './sso-fns.js';

export interface AuthReply {
  status: number;
  /** The parsed JSON body of a 200. */
  body: unknown;
  retryAfterSeconds?: number;
  /** The error code and message of anything else. */
  error?: { code: string; message: string };
}

export interface AuthApi {
  get(path: string): Promise<AuthReply>;
  post(path: string, body: object): Promise<AuthReply>;
}

function reply(r: HttpsResponse, what: string): AuthReply {
  const ra = Number(r.headers[RETRY_AFTER_HEADER]);
  const retry = Number.isFinite(ra) && ra > 0 ? { retryAfterSeconds: ra } : {};
  if (r.status !== 200) return { status: r.status, body: undefined, ...retry, error: errorBodyOf(r) };
  try {
    return { status: 200, body: JSON.parse(r.body.toString('utf8')) as unknown, ...retry };
  } catch {
    throw new AgentError('SERVER_ERROR', `${what}: the server's answer is not JSON`);
  }
}

/** Calls to `server`, trusting only `rootPem`. */
export function authApi(server: string, rootPem: string): AuthApi {
  const json = { 'content-type': 'application/json', accept: 'application/json' };
  return {
    get: async (path) => reply(await httpsCall(server, { ca: rootPem }, { method: 'GET', path, headers: { accept: 'application/json' } }), path),
    post: async (path, body) => reply(await httpsCall(server, { ca: rootPem }, { method: 'POST', path, body: JSON.stringify(body), headers: json }), path),
  };
}

/** The error for a refused sign-in call: the person's message for sign-in codes, the server's words otherwise. */
export function refused(r: AuthReply, what: string): AgentError {
  const code = r.error?.code ?? '';
  const details = { status: r.status, serverCode: code, ...(r.retryAfterSeconds ? { retryAfterSeconds: r.retryAfterSeconds } : {}) };
  const mine = signInRefusal(code, r.error?.message ?? '');
  if (mine) return new AgentError(r.status >= 500 ? 'SERVER_ERROR' : 'SERVER_REFUSED', mine, details);
  const text = `${what}: the server answered ${r.status}${code ? ` ${printable(code, 40)}` : ''}${r.error?.message ? `: ${printable(r.error.message, 500)}` : ''}`;
  return new AgentError(r.status >= 500 || r.status === 429 ? 'SERVER_ERROR' : 'SERVER_REFUSED', text, details);
}

/** Reads a 200's body with one of sso-fns' readers; a body that breaks the protocol is the server's error. */
export function readOr<T>(r: AuthReply, read: (v: unknown) => T): T {
  try {
    return read(r.body);
  } catch (e) {
    if (e instanceof BadAnswer) throw new AgentError('SERVER_ERROR', `${e.message} (the server does not speak this agent's sign-in protocol)`, {}, { cause: e });
    throw e;
  }
}
