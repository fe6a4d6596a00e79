/**
 * The console's client of the admin API: the same routes the CLI calls, so
 * roles are enforced in one place (the server). Same-origin cookie, the CSRF
 * header on every call, 401 → sign-in, and `{error:{code,message}}` turned
 * into an ApiError whose message is shown to the person as the server wrote it.
 */
import type { ConsoleSession } from '@latchkey/protocol';
import { CONSOLE_PATHS, CSRF_HEADER, PATHS } from '@latchkey/protocol/wire';


export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken = '';
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** The path to come back to after signing in (only this origin's paths). */
export function currentPath(): string {
  return location.pathname + location.search;
}

export function signInUrl(next = currentPath()): string {
  return next === '/' || next.startsWith('/sign-in') ? '/sign-in' : `/sign-in?next=${encodeURIComponent(next)}`;
}

/** A `next` parameter is followed only when it is a path on this origin. */
export function safeNext(next: string | null): string {
  return next && /^\/(?![/\\])/.test(next) && !next.startsWith('/sign-in') ? next : '/';
}

type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = 'HTTP_' + res.status;
  let message = `the server answered ${res.status} ${res.statusText}; try again, or look at the server's log`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    /* not JSON: keep the generic message */
  }
  return new ApiError(res.status, code, message);
}

export async function request<T>(method: string, path: string, body?: unknown, opts: { redirectOn401?: boolean } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      // No content-type without a body: fastify refuses an empty JSON body (a DELETE).
      headers: { [CSRF_HEADER]: csrfToken, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the server could not be reached; check the connection and try again');
  }
  if (res.status === 401 && opts.redirectOn401 !== false) {
    location.assign(signInUrl());
    // The page is going away; never resolve, so no caller renders a half state.
    return new Promise<T>(() => {});
  }
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>('GET', withQuery(path, query)),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};

export const ADMIN = PATHS.admin;

export async function loadSession(): Promise<ConsoleSession> {
  const s = await request<ConsoleSession>('GET', CONSOLE_PATHS.session);
  setCsrfToken(s.csrfToken ?? '');
  return s;
}
