/**
 * The control channel in a token worker, for a daemon whose key OpenSSL
 * must load fresh (see protocol.ts): the same interface as
 * startControlChannel, one worker at a time. `reconnect()` (after a renewal)
 * starts a fresh worker, which loads the new key; a worker that dies on its
 * own is replaced after a backoff.
 */
import type { ControlChannel, ControlChannelOptions } from '../channel/control-channel.js';
import { backoffMs } from '../util/backoff.js';
import { type TokenWorker, describeExit, spawnTokenWorker } from './client.js';
import type { ChannelEvent } from './protocol.js';

/** A worker that lived shorter than this counts as a crash for the backoff. */
const EARLY_EXIT_MS = 10_000;

export function startControlChannelInWorker(o: ControlChannelOptions & { argv?: string[] }): ControlChannel {
  let worker: TokenWorker | undefined;
  let stopped = false;
  let connected = false;
  let crashes = 0;
  let timer: NodeJS.Timeout | undefined;

  const restartLater = (why: string, started: number): void => {
    crashes = Date.now() - started < EARLY_EXIT_MS ? crashes + 1 : 1;
    const wait = backoffMs(crashes, (o.random ?? Math.random)(), o.backoff ?? { baseMs: 1000, capMs: 60_000 });
    o.log(`latchkey: the control channel process ${why}; restarting in ${(wait / 1000).toFixed(1)} s`);
    clearTimeout(timer);
    timer = setTimeout(start, wait);
  };

  const onEvent = (w: () => TokenWorker | undefined) => (e: ChannelEvent): void => {
    // A worker being replaced may still talk for a moment: only the current one counts,
    // except that a revocation is a revocation whoever heard it.
    if (worker !== w() && e.kind !== 'revoked') return;
    if (e.kind === 'connected') {
      connected = true;
      crashes = 0;
    } else if (e.kind === 'disconnected') connected = false;
    else if (e.kind === 'revoked') {
      stopped = true;
      o.onRevoked(e.reason, e.at);
    } else if (e.kind === 'renew-now') o.onRenewNow(e.reason);
    else {
      const { kind: _, ...policy } = e;
      o.onPolicy?.(policy);
    }
  };

  function start(): void {
    if (stopped) return;
    const started = Date.now();
    // The callbacks run only once the worker talks, after `w` is set.
    const w: TokenWorker = spawnTokenWorker({ ...(o.argv ? { argv: o.argv } : {}), stateDir: o.stateDir, env: o.env, log: (l) => worker === w && o.log(l), onChannel: onEvent(() => w) });
    worker = w;
    w.channel().catch((e: Error) => {
      if (worker === w && w.alive) o.log(`latchkey: control channel process: ${e.message}`);
    });
    void w.exited.then((x) => {
      if (worker !== w) return;
      worker = undefined;
      connected = false;
      if (!stopped) restartLater(describeExit(x), started);
    });
  }

  start();
  return {
    reconnect() {
      // A fresh process, so the engine loads the renewed key.
      clearTimeout(timer);
      const old = worker;
      worker = undefined;
      connected = false;
      void old?.stop();
      start();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      const w = worker;
      worker = undefined;
      connected = false;
      await w?.stop();
    },
    get connected() {
      return connected;
    },
  };
}
