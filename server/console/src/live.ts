/**
 * One EventSource on `/v1/admin/live` for the whole console. Pages subscribe
 * to event names and refetch (debounced: a burst of audit rows is one
 * request). EventSource retries by itself after a dropped connection; when
 * the server refuses the stream (401 after a sign-out elsewhere, 429) it
 * gives up, so we ask who we are (a 401 there goes to sign-in) and reconnect
 * with a growing delay.
 */
import { LIVE_EVENTS, type LiveEventName as LiveEvent } from '@latchkey/protocol/wire';
import { ADMIN, loadSession } from './api.js';
type Listener = (event: LiveEvent, data: unknown) => void;

const listeners = new Set<{ events: readonly LiveEvent[]; fn: Listener }>();
const stateListeners = new Set<(connected: boolean) => void>();
let source: EventSource | null = null;
let retryMs = 1000;
let retryTimer: ReturnType<typeof setTimeout> | undefined;

export function startLive(): void {
  if (source) return;
  const es = new EventSource(`${ADMIN}/live`, { withCredentials: true });
  source = es;
  es.onopen = () => {
    retryMs = 1000;
    for (const l of stateListeners) l(true);
  };
  es.onerror = () => {
    for (const l of stateListeners) l(false);
    if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    source = null;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      // A 401 here sends the page to sign-in; anything else: try the stream again.
      loadSession().then(startLive, startLive);
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30_000);
  };
  for (const name of LIVE_EVENTS) {
    es.addEventListener(name, (ev) => {
      let data: unknown = null;
      try {
        data = JSON.parse((ev as MessageEvent<string>).data);
      } catch {
        /* a message we cannot read: still a reason to refetch */
      }
      for (const l of listeners) if (l.events.includes(name)) l.fn(name, data);
    });
  }
}

/** Call `fn` (at most once per `waitMs`) after any of `events`; returns the unsubscribe. */
export function onLive(events: readonly LiveEvent[], fn: Listener, waitMs = 500): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last: { event: LiveEvent; data: unknown } | undefined;
  const entry = {
    events,
    fn: (event: LiveEvent, data: unknown) => {
      last = { event, data };
      if (timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (last) fn(last.event, last.data);
      }, waitMs);
    },
  };
  listeners.add(entry);
  return () => {
    clearTimeout(timer);
    listeners.delete(entry);
  };
}

export function onLiveState(fn: (connected: boolean) => void): () => void {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}
