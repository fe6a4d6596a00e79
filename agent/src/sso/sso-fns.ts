/**
 * Signing in to enroll (issue 12), the pure part: which flow, the PKCE pair,
 * the loopback callback, when to poll next, what the server's answers hold
 * and what each refusal tells the person. sso-device.ts and sso-browser.ts
 * carry these out; sso-fns.test.ts drives them with plain values.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const SSO_FLOWS = ['device', 'browser'] as const;
export type SsoFlow = (typeof SSO_FLOWS)[number];

/** The path of the loopback redirect (RFC 8252 §7.3: `http://127.0.0.1:PORT/callback`). */
export const CALLBACK_PATH = '/callback';

/**
 * The browser flow where a person sits at this machine's screen (macOS and
 * Windows always; Linux and the BSDs when an X or Wayland display is set),
 * the device flow otherwise (SSH, a server, a container); `forced` wins.
 */
export function chooseFlow(host: { platform: NodeJS.Platform; env: Record<string, string | undefined> }, forced?: SsoFlow): SsoFlow {
  if (forced) return forced;
  if (host.platform === 'darwin' || host.platform === 'win32') return 'browser';
  return host.env.DISPLAY || host.env.WAYLAND_DISPLAY ? 'browser' : 'device';
}

export interface Pkce {
  /** RFC 7636 §4.1 code_verifier: 43 base64url characters of 32 random bytes. */
  verifier: string;
  /** RFC 7636 §4.2 S256 code_challenge: base64url(SHA-256(ASCII(verifier))). */
  challenge: string;
}

/** The PKCE pair of 32 random bytes (pass `crypto.randomBytes(32)`). */
export function pkceOf(random: Buffer): Pkce {
  if (random.length !== 32) throw new Error('PKCE needs 32 random bytes');
  const verifier = random.toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier, 'ascii').digest('base64url') };
}

/** What one request to the loopback listener is. */
export type Callback =
  | { kind: 'not-found' }
  /** No state, or not the state of this sign-in: answered 400 and ignored (another local process guessing). */
  | { kind: 'bad-state' }
  /** The state matches but there is neither a code nor an error. */
  | { kind: 'malformed' }
  | { kind: 'code'; code: string }
  /** RFC 6749 §4.1.2.1: the IdP sent the person back with an error (access_denied…). */
  | { kind: 'error'; error: string; description: string };

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
};

/** Reads the request target of a callback (`/callback?code=…&state=…`) against the state this sign-in expects. */
export function parseCallback(target: string, expectedState: string): Callback {
  let url: URL;
  try {
    url = new URL(target, 'http://127.0.0.1');
  } catch {
    return { kind: 'not-found' };
  }
  if (url.pathname !== CALLBACK_PATH) return { kind: 'not-found' };
  const q = url.searchParams;
  const state = q.getAll('state');
  if (state.length !== 1 || !sameSecret(state[0]!, expectedState)) return { kind: 'bad-state' };
  const code = q.getAll('code');
  const error = q.get('error');
  if (error !== null) return { kind: 'error', error: printable(error, 100), description: printable(q.get('error_description') ?? '', 300) };
  if (code.length !== 1 || !code[0] || code[0].length > 2000) return { kind: 'malformed' };
  return { kind: 'code', code: code[0] };
}

/** Text from the network for a terminal: no control characters (no escape sequences), bounded. */
export function printable(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '?').slice(0, max);
}

// ------------------------------------------------------------------ device flow polling

export interface PollState {
  intervalSeconds: number;
  /** Transient failures (unreachable, 5xx) in a row. */
  failures: number;
}

export type PollAnswer =
  /** 202 AUTH_PENDING, with the server's Retry-After if any. */
  | { kind: 'pending'; retryAfterSeconds?: number }
  /** 429: polled faster than allowed (RFC 8628 §3.5 slow_down). */
  | { kind: 'slow-down'; retryAfterSeconds?: number }
  /** The server could not be reached or failed (5xx): retried, a few times. */
  | { kind: 'transient' };

/** Transient failures in a row after which polling gives up. */
export const MAX_POLL_FAILURES = 3;

/**
 * When to poll again (RFC 8628 §3.4, §3.5): at the interval, or later if the
 * server's Retry-After says so; `slow_down` adds 5 s to the interval for this
 * and every later poll. Undefined: give up (too many failures in a row).
 */
export function nextPoll(s: PollState, a: PollAnswer): { state: PollState; waitSeconds: number } | undefined {
  const ra = (n: number | undefined): number => (n !== undefined && Number.isFinite(n) && n > 0 ? Math.min(n, 600) : 0);
  switch (a.kind) {
    case 'pending':
      return { state: { ...s, failures: 0 }, waitSeconds: Math.max(s.intervalSeconds, ra(a.retryAfterSeconds)) };
    case 'slow-down': {
      const intervalSeconds = s.intervalSeconds + 5;
      return { state: { intervalSeconds, failures: 0 }, waitSeconds: Math.max(intervalSeconds, ra(a.retryAfterSeconds)) };
    }
    case 'transient': {
      const failures = s.failures + 1;
      if (failures >= MAX_POLL_FAILURES) return undefined;
      return { state: { ...s, failures }, waitSeconds: s.intervalSeconds * 2 ** failures };
    }
  }
}

// ------------------------------------------------------------------ the server's answers

export interface Provider {
  issuer: string;
  deviceFlow: boolean;
  browserFlow: boolean;
}

export interface DeviceStarted {
  flowId: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  intervalSeconds: number;
  expiresAt: Date;
}

export interface BrowserStarted {
  flowId: string;
  authorizeUrl: string;
  state: string;
  expiresAt: Date;
}

/** `AuthResult` of purpose `enroll`: who signed in, the one-use token, the group it enrolls into. */
export interface EnrollGrant {
  email: string;
  issuer: string;
  enrollToken: string;
  group: string;
  expiresAt: Date;
}

/** A server answer that does not match the protocol (packages/protocol auth.ts). */
export class BadAnswer extends Error {}

type Json = Record<string, unknown>;
const obj = (v: unknown, what: string): Json => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadAnswer(`${what}: not a JSON object`);
  return v as Json;
};
const text = (o: Json, k: string, what: string, max: number, re?: RegExp): string => {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > max || (re && !re.test(v))) throw new BadAnswer(`${what}: no valid "${k}"`);
  return v;
};
const time = (o: Json, k: string, what: string): Date => {
  const d = new Date(text(o, k, what, 40));
  if (Number.isNaN(d.getTime())) throw new BadAnswer(`${what}: "${k}" is not a time`);
  return d;
};
const SECRET = /^[A-Za-z0-9_-]{20,200}$/;

/** A URL the agent may show or open: http(s) only, no credentials, no control characters. */
export function webUrl(v: string, what: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new BadAnswer(`${what}: not a URL`);
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.password || printable(u.href, 4000) !== u.href) throw new BadAnswer(`${what}: not an http(s) URL`);
  return u.href;
}

export function readProviders(v: unknown): Provider[] {
  const what = 'the identity providers';
  const list = obj(v, what).providers;
  if (!Array.isArray(list)) throw new BadAnswer(`${what}: no "providers" list`);
  return list.map((p) => {
    const o = obj(p, what);
    return { issuer: text(o, 'issuer', what, 500), deviceFlow: o.deviceFlow === true, browserFlow: o.browserFlow === true };
  });
}

export function readDeviceStarted(v: unknown): DeviceStarted {
  const what = 'the start of the device sign-in';
  const o = obj(v, what);
  const interval = o.intervalSeconds;
  if (typeof interval !== 'number' || !Number.isInteger(interval) || interval < 1 || interval > 600) throw new BadAnswer(`${what}: no valid "intervalSeconds"`);
  const complete = o.verificationUriComplete;
  return {
    flowId: text(o, 'flowId', what, 200, SECRET),
    userCode: printable(text(o, 'userCode', what, 100), 100),
    verificationUri: webUrl(text(o, 'verificationUri', what, 2000), what),
    ...(typeof complete === 'string' ? { verificationUriComplete: webUrl(complete, what) } : {}),
    intervalSeconds: interval,
    expiresAt: time(o, 'expiresAt', what),
  };
}

export function readBrowserStarted(v: unknown): BrowserStarted {
  const what = 'the start of the browser sign-in';
  const o = obj(v, what);
  return {
    flowId: text(o, 'flowId', what, 200, SECRET),
    authorizeUrl: webUrl(text(o, 'authorizeUrl', what, 4000), what),
    state: text(o, 'state', what, 100),
    expiresAt: time(o, 'expiresAt', what),
  };
}

export function readEnrollGrant(v: unknown): EnrollGrant {
  const what = 'the sign-in result';
  const o = obj(v, what);
  if (o.purpose !== 'enroll') throw new BadAnswer(`${what}: not an enrollment sign-in (purpose ${String(o.purpose)})`);
  const user = obj(o.user, what);
  return {
    email: printable(text(user, 'email', what, 254), 254),
    issuer: text(user, 'issuer', what, 500),
    enrollToken: text(o, 'enrollToken', what, 200, SECRET),
    group: printable(text(o, 'group', what, 63), 63),
    expiresAt: time(o, 'expiresAt', what),
  };
}

// ------------------------------------------------------------------ what to tell the person

/**
 * The message for a sign-in or sign-in enrollment the server refused, by its
 * error code (packages/protocol errors.ts); undefined for a code that is not
 * about signing in. `serverMessage` is the server's own text (for a policy
 * refusal it names the rule).
 */
export function signInRefusal(code: string, serverMessage: string): string | undefined {
  const said = serverMessage ? `: ${printable(serverMessage, 500)}` : '';
  switch (code) {
    case 'USER_NOT_ALLOWED':
      return `you signed in, but you may not enroll a device${said}; if you should, ask IT to add you to a group that may`;
    case 'USER_DEVICE_LIMIT':
      return `you already have as many enrolled devices as allowed${said}; ask IT to revoke one you no longer use, then run the same command again`;
    case 'AUTH_DENIED':
      return `the sign-in was cancelled at the identity provider${said}; run the same command again to retry`;
    case 'AUTH_EXPIRED':
      return `the sign-in took too long (or was already used); run the same command again`;
    case 'IDP_UNAVAILABLE':
      return `the server cannot reach the identity provider right now${said}; try again in a few minutes`;
    case 'IDP_TOKEN_INVALID':
      return `the server refused the identity provider's answer${said}; run the same command again, and tell IT if it keeps happening`;
    default:
      return undefined;
  }
}

export const NO_PROVIDER = 'this server has no identity provider configured; ask IT for an enrollment token and enroll with --token';

/** RFC 6749 §4.1.2.1 error codes a person causes, as opposed to a misconfigured client. */
export function callbackErrorMessage(error: string, description: string): string {
  const why = description ? ` (${description})` : '';
  return error === 'access_denied'
    ? `the sign-in was cancelled at the identity provider${why}; run the same command again to retry`
    : `the identity provider refused the sign-in: ${error}${why}; run the same command again, and tell IT if it keeps happening`;
}

export const signedInLine = (g: EnrollGrant): string => `signed in as ${g.email}; enrolling into group ${g.group}`;
