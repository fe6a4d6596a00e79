/** Pure helpers of the console's live stream: the SSE wire format and its bounds. */
import { LIVE_LIMITS, type LiveEventName } from '@latchkey/protocol';

/** One server-sent event (WHATWG HTML §9.2): JSON.stringify never writes a newline, so `data` is one line. */
export const sseMessage = (event: LiveEventName, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** A comment line: keeps proxies from closing an idle stream, and finds dead ones. */
export const SSE_PING = ': ping\n\n';

export interface LiveLimits {
  perProcess: number;
  perCredential: number;
}

export const DEFAULT_LIVE_LIMITS: LiveLimits = { perProcess: LIVE_LIMITS.perProcess, perCredential: LIVE_LIMITS.perCredential };

/** Why one more stream may not open (a message saying what to do), or undefined when it may. */
export function refuseStream(open: { total: number; ofCredential: number }, limits: LiveLimits): string | undefined {
  if (open.ofCredential >= limits.perCredential) {
    return `this sign-in already has ${open.ofCredential} live streams open (at most ${limits.perCredential}); close other console tabs and retry`;
  }
  if (open.total >= limits.perProcess) return `this server already serves ${open.total} live streams (at most ${limits.perProcess}); retry in a minute`;
  return undefined;
}

/** Where the poller reads from next: a little below the newest id seen, where PostgreSQL may still commit rows late. */
export const pollFrom = (highWater: number, lateWindow: number): number => Math.max(0, highWater - lateWindow);
