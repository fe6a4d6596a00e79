/**
 * The web console's credentials in the browser: the session cookie (an admin
 * session secret, HttpOnly so no script can read it), the short-lived cookie
 * that carries an IdP sign-in in progress, and the CSRF token the console
 * sends as a header on every change.
 *
 * `__Host-` cookies (RFC 6265bis §4.1.3.2) are only accepted with Secure,
 * Path=/ and no Domain, so a sibling host cannot plant or shadow them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export const CONSOLE_COOKIE = '__Host-latchkey_console';
/** The flow id, PKCE verifier and return path of an IdP sign-in started from the console. */
export const SIGN_IN_COOKIE = '__Host-latchkey_signin';
export { CSRF_HEADER } from '@latchkey/protocol';

/** Longest Cookie header we read (a browser sends at most a few KB; ours are < 300 bytes). */
const MAX_COOKIE_HEADER = 8192;

/** One cookie's value from a request's Cookie header; undefined if absent, malformed or the header is oversized. */
export function readCookie(headers: IncomingHttpHeaders, name: string): string | undefined {
  const h = headers.cookie;
  if (typeof h !== 'string' || h.length > MAX_COOKIE_HEADER) return undefined;
  for (const part of h.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const v = part.slice(eq + 1).trim();
    // Our values are base64url and dots only: anything else was not set by us.
    return /^[A-Za-z0-9._~-]{1,1024}$/.test(v) ? v : undefined;
  }
  return undefined;
}

export interface CookieOptions {
  /** Seconds; 0 deletes the cookie. Absent: a browser-session cookie. */
  maxAge?: number;
  /** Strict for the console session; Lax for the sign-in cookie, which must come back on the IdP's redirect (a cross-site navigation). */
  sameSite: 'Strict' | 'Lax';
}

/** A Set-Cookie value for a `__Host-` cookie: Secure, HttpOnly, Path=/. */
export function setCookie(name: string, value: string, o: CookieOptions): string {
  const age = o.maxAge !== undefined ? `; Max-Age=${Math.max(0, Math.floor(o.maxAge))}` : '';
  return `${name}=${value}; Path=/; HttpOnly; Secure; SameSite=${o.sameSite}${age}`;
}

export const clearCookie = (name: string, sameSite: CookieOptions['sameSite']): string => setCookie(name, '', { maxAge: 0, sameSite });

/**
 * The CSRF token of a console session: an HMAC keyed by the session secret.
 * Only the server and whoever holds the secret can make it; the console
 * learns it from `GET /v1/console/session`, which another origin cannot read.
 */
export const csrfTokenOf = (sessionSecret: string): string => createHmac('sha256', sessionSecret).update('latchkey console csrf v1').digest('base64url');

export function csrfMatches(sessionSecret: string, presented: string | string[] | undefined): boolean {
  if (typeof presented !== 'string' || presented.length > 100) return false;
  const want = Buffer.from(csrfTokenOf(sessionSecret));
  const got = Buffer.from(presented);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Methods that change nothing (RFC 9110 §9.2.1): no CSRF token needed. */
export const isSafeMethod = (method: string): boolean => method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
