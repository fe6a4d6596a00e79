/**
 * The client side of the device authorization grant (RFC 8628) against our
 * server's `/v1/auth/device/poll`: poll no faster than the interval, honour
 * Retry-After, slow down by 5 s on 429 (§3.5), stop at `expiresAt`. What each
 * answer means is the pure `pollStep`; `pollDeviceLogin` is the loop around
 * it, with the request, the clock and the sleep passed in.
 */
import type { AuthDeviceStarted, AuthResult } from '@latchkey/protocol';
import { ApiError } from '../cli-errors.js';
import type { ApiAnswer } from './api-request.js';
import { apiError } from './api-request.js';

/** RFC 8628 §3.5: on slow_down the interval grows by 5 seconds for this and all later requests. */
export const SLOW_DOWN_SECONDS = 5;
/** Failures to reach the server or the IdP in a row before giving up. */
export const MAX_TRANSIENT = 3;

export class LoginCancelled extends Error {
  override readonly name = 'LoginCancelled';
}

/** Retry-After in seconds (delta-seconds or an HTTP date), if the answer has a usable one. */
export function retryAfterSeconds(h: ApiAnswer['headers'], now: Date): number | undefined {
  const v = h['retry-after'];
  if (typeof v !== 'string') return undefined;
  if (/^\d{1,6}$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

export type PollStep = { kind: 'done'; result: AuthResult } | { kind: 'wait'; seconds: number; interval: number; transient?: boolean } | { kind: 'fail'; error: Error };

/** What to do after one poll answer, given the current interval. */
export function pollStep(a: ApiAnswer, interval: number, ctx: { server: string; now: Date }): PollStep {
  const after = retryAfterSeconds(a.headers, ctx.now);
  if (a.status === 200) {
    const r = a.json as AuthResult | undefined;
    if (r?.purpose !== 'admin' || !r.session?.token) return { kind: 'fail', error: new ApiError(502, 'BAD_ANSWER', `${ctx.server} answered the sign-in without an admin session; is it a latchkey-server of this version?`) };
    return { kind: 'done', result: r };
  }
  if (a.status === 202) return { kind: 'wait', seconds: Math.max(interval, after ?? 0), interval };
  if (a.status === 429) {
    const slower = interval + SLOW_DOWN_SECONDS;
    return { kind: 'wait', seconds: Math.max(slower, after ?? 0), interval: slower };
  }
  const e = apiError(a);
  if (e.code === 'IDP_UNAVAILABLE' || a.status === 502 || a.status === 503) return { kind: 'wait', seconds: Math.max(interval * 2, after ?? 0), interval, transient: true };
  return { kind: 'fail', error: loginError(e, ctx.server) };
}

/** The refusal, saying what to do. */
export function loginError(e: ApiError, server: string): ApiError {
  const again = `latchkey-server login --server ${server}`;
  const say = (m: string): ApiError => new ApiError(e.status, e.code, m);
  switch (e.code) {
    case 'AUTH_DENIED':
      return say(`the identity provider refused the sign-in (${e.message}); if that was a mistake, run \`${again}\` again and approve it`);
    case 'AUTH_EXPIRED':
      return say(`the sign-in expired before it was completed (${e.message}); run \`${again}\` again and enter the new code within its time`);
    case 'USER_NOT_ALLOWED':
      return say(`you signed in, but may not administer ${server}: ${e.message}; ask whoever runs your identity provider to add you to one of the server's admin groups (oidc.adminGroups)`);
    case 'IDP_UNAVAILABLE':
      return say(`the server cannot reach the identity provider now (${e.message}); try again in a minute, and if it persists, check the server's log`);
    default:
      return e;
  }
}

export interface PollDeps {
  started: AuthDeviceStarted;
  server: string;
  poll: (signal: AbortSignal) => Promise<ApiAnswer>;
  clock: () => Date;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
}

export async function pollDeviceLogin(d: PollDeps): Promise<AuthResult> {
  const end = Date.parse(d.started.expiresAt);
  let interval = d.started.intervalSeconds;
  let transient = 0;
  let wait = interval;
  const expired = (): ApiError => loginError(new ApiError(403, 'AUTH_EXPIRED', `the code was not entered by ${d.started.expiresAt}`), d.server);
  for (;;) {
    const left = end - d.clock().getTime();
    if (left <= 0) throw expired();
    await d.sleep(Math.min(wait * 1000, left), d.signal);
    if (d.signal.aborted) throw new LoginCancelled('cancelled');
    if (d.clock().getTime() >= end) throw expired();
    let a: ApiAnswer;
    try {
      a = await d.poll(d.signal);
    } catch (e) {
      if (d.signal.aborted) throw new LoginCancelled('cancelled');
      if (++transient >= MAX_TRANSIENT) throw e;
      wait = interval * 2;
      continue;
    }
    const step = pollStep(a, interval, { server: d.server, now: d.clock() });
    if (step.kind === 'done') return step.result;
    if (step.kind === 'fail') throw step.error;
    if (step.transient) {
      if (++transient >= MAX_TRANSIENT) throw loginError(apiError(a), d.server);
    } else transient = 0;
    interval = step.interval;
    wait = step.seconds;
  }
}

/** A sleep that ends early when the signal fires. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
