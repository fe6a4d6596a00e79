/** Pure pieces of the console's serving and sign-in: paths, the CSP, where to send a browser back to. */
import { LatchkeyError } from '../errors.js';

export { CONSOLE_PATHS } from '@latchkey/protocol';

/** The console's pages: each answers the HTML shell, and the client draws the page. */
export const CONSOLE_PAGES = ['/', '/sign-in', '/devices', '/devices/:id', '/approvals', '/tokens', '/groups', '/gateways', '/admins', '/audit'] as const;

/** No inline script or style, nothing from another origin, never framed. */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

/** A path on this origin to return to after signing in; anything else (another origin, `//host`, `/\\host`) becomes `/`. */
export function localPath(p: string | undefined): string {
  if (!p || p.length > 300) return '/';
  return /^\/(?![/\\])[A-Za-z0-9/_.~%?=&-]*$/.test(p) ? p : '/';
}

/** The sign-in page with the reason a sign-in failed (a LatchkeyError's message; anything else is not shown). */
export function signInErrorUrl(e: unknown, next: string): string {
  const message = e instanceof LatchkeyError ? e.message : 'the sign-in failed; try again, and tell an administrator if it keeps failing';
  const q = new URLSearchParams({ error: message.slice(0, 500) });
  if (next !== '/') q.set('next', next);
  return `/sign-in?${q.toString()}`;
}
