/**
 * Signing in with the device authorization grant (RFC 8628), through the
 * Latchkey server: `POST /v1/auth/device` starts it, the person opens the URL
 * on any device and types the code, and the agent polls
 * `POST /v1/auth/device/poll` at the interval (longer when the server's
 * Retry-After says so, 5 s longer for good after a 429, §3.5) until the
 * result, a refusal, or the flow's expiry.
 */
import { AUTH_PATHS } from '@latchkey/protocol';
import { AgentError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { type AuthApi, type AuthReply, readOr, refused } from './sso-api.js';
import { type EnrollGrant, type PollAnswer, type PollState, nextPoll, readDeviceStarted, readEnrollGrant } from './sso-fns.js';

/** Polls go on this long past the flow's expiresAt (clock skew); the server says AUTH_EXPIRED first. */
const EXPIRY_SLACK_MS = 30_000;

export async function deviceSignIn(api: AuthApi, o: { issuer?: string; log: (line: string) => void; clock: Pick<Clock, 'now' | 'sleep'> }): Promise<EnrollGrant> {
  const start = await api.post(AUTH_PATHS.deviceStart, { purpose: 'enroll', ...(o.issuer ? { issuer: o.issuer } : {}) });
  if (start.status !== 200) throw refused(start, 'starting the sign-in');
  const flow = readOr(start, readDeviceStarted);
  o.log(`To enroll this device, open ${flow.verificationUri} and enter code ${flow.userCode}`);
  if (flow.verificationUriComplete) o.log(`(or open ${flow.verificationUriComplete}, which has the code in it)`);
  o.log(`waiting for the sign-in (until ${flow.expiresAt.toISOString()})…`);
  let state: PollState = { intervalSeconds: flow.intervalSeconds, failures: 0 };
  let waitSeconds = flow.intervalSeconds;
  const deadline = flow.expiresAt.getTime() + EXPIRY_SLACK_MS;
  let lastFailure: AgentError | undefined;
  for (;;) {
    const left = deadline - o.clock.now().getTime();
    if (left <= 0) throw new AgentError('SERVER_REFUSED', 'the sign-in took too long; run the same command again', { serverCode: 'AUTH_EXPIRED' });
    await o.clock.sleep(Math.min(waitSeconds * 1000, left));
    const r = await api.post(AUTH_PATHS.devicePoll, { flowId: flow.flowId }).catch((e: unknown) => {
      if (e instanceof AgentError && e.code === 'SERVER_UNREACHABLE') return e;
      throw e;
    });
    let answer: PollAnswer;
    if (r instanceof AgentError) {
      answer = { kind: 'transient' };
      lastFailure = r;
    } else if (r.status === 200) return readOr(r, readEnrollGrant);
    else if (r.status === 202) answer = { kind: 'pending', ...retryAfter(r) };
    else if (r.status === 429) answer = { kind: 'slow-down', ...retryAfter(r) };
    else if (r.status >= 500) {
      // IDP_UNAVAILABLE included: the person may have finished already, so a few more polls.
      answer = { kind: 'transient' };
      lastFailure = refused(r, 'waiting for the sign-in');
    } else throw refused(r, 'waiting for the sign-in');
    const next = nextPoll(state, answer);
    if (!next) throw lastFailure ?? new AgentError('SERVER_UNREACHABLE', 'the server stopped answering while waiting for the sign-in; run the same command again');
    if (answer.kind === 'transient') o.log(`(${lastFailure?.message}; trying again in ${next.waitSeconds} s)`);
    state = next.state;
    waitSeconds = next.waitSeconds;
  }
}

const retryAfter = (r: AuthReply): { retryAfterSeconds?: number } => (r.retryAfterSeconds ? { retryAfterSeconds: r.retryAfterSeconds } : {});
