/**
 * `latchkey-server gateway sync`: keeps a gateway's CRL file current.
 * Subscribes to `/v1/events`; on (re)connect, on every revocation or CRL
 * update, and every `resyncSeconds` as a safety net, it fetches the issuing
 * and root CRLs, writes them to one file atomically and applies them (reload
 * command, or HAProxy's runtime API). Reconnects with backoff and jitter.
 * Every effect is injected (see gateway-sync-node.ts for the real ones),
 * so the loop is tested with fakes and a fixed clock.
 *
 * Failures are loud: a CRL that cannot be fetched, is past its nextUpdate or
 * cannot be applied is logged as an error on every retry (with backoff), and
 * the gateway keeps what it last applied. A refused gateway token (401/403)
 * is fatal: the loop stops and `done` rejects with GatewayAuthError.
 */
import { parseCrl } from '@latchkey/pki';
import type { CrlIssuer, GatewayEvent } from '@latchkey/protocol';

export interface FetchedCrl {
  issuer: CrlIssuer;
  pem: string;
}

export interface EventStreamHandlers {
  onOpen(): void;
  onEvent(e: GatewayEvent): void;
  /** `authRefused`: the server answered 401/403 to the upgrade (a wrong or revoked gateway token). */
  onClose(why: string, authRefused?: boolean): void;
}

export interface EventStream {
  subscribe(since: string | undefined): void;
  close(): void;
}

export interface GatewaySyncEffects {
  /** The CRL's PEM, or undefined when the server publishes none for that CA (404). */
  fetchCrl(issuer: CrlIssuer): Promise<string | undefined>;
  /** Writes the CRL file atomically (temp file, fsync, rename). */
  writeCrlFile(pem: string): Promise<void>;
  /** Makes the gateway use the new file (reload command, HAProxy runtime API). */
  apply(pem: string): Promise<void>;
  /** Opens `/v1/events`; `onClose` is called exactly once, also when the connection fails. */
  openStream(h: EventStreamHandlers): EventStream;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
  /** A progress line, or (level 'error') something the operator must see and fix. */
  log(line: string, level?: 'error' | 'warn'): void;
  /** Milliseconds: CRL expiry, how long a sync has waited for a CRL number (default Date.now). */
  now?(): number;
  /** Where the operator (or a monitoring check) sees how the sync is doing (`--status-file`). */
  status?(s: SyncStatus): void;
}

/** The state `gateway sync` reports after every attempt. */
export interface SyncStatus {
  /** ok: the gateway holds the server's current CRLs; failing: it is on an older one (see error); stopped: fatal. */
  state: 'ok' | 'failing' | 'stopped';
  at: string;
  /** The CRL numbers the gateway applied last. */
  applied: Partial<Record<CrlIssuer, string>>;
  lastSuccessAt?: string;
  failingSince?: string;
  error?: string;
}

export interface SyncResult {
  crlNumbers: Partial<Record<CrlIssuer, string>>;
  serials: number;
  changed: boolean;
}

/** Reconnect/retry delay: 0.5 s doubling to 30 s, ±20% jitter. */
export function backoffMs(attempt: number, random: () => number): number {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** The CRL number, validity and revoked serials of a CRL's PEM. */
export function describeCrl(pem: string): { crlNumber: bigint | undefined; thisUpdate: Date; nextUpdate: Date | undefined; serials: string[] } {
  const c = parseCrl(pem);
  return { crlNumber: c.crlNumber, thisUpdate: c.thisUpdate, nextUpdate: c.nextUpdate, serials: c.entries.map((e) => e.serialHex) };
}

/** How long a sync waits for a serial an event named before applying the CRL without it. */
export const MAX_STALE_WAIT_MS = 60_000;

export class StaleCrlError extends Error {
  override readonly name = 'StaleCrlError';
}

/** The server sent a CRL whose nextUpdate has passed: never applied (the gateway keeps the one it has). */
export class ExpiredCrlError extends Error {
  override readonly name = 'ExpiredCrlError';
}

/** The server refused the gateway token (HTTP 401/403): retrying cannot help, so it is fatal. */
export class GatewayAuthError extends Error {
  override readonly name = 'GatewayAuthError';
  constructor(what: string) {
    super(
      `the server refused the gateway token (${what}); create one with \`latchkey-server gateway token create --name NAME\` and give it with --token-file FILE or LATCHKEY_GATEWAY_TOKEN`,
    );
  }
}

/**
 * One sync: fetch both CRLs, refuse to go back to an older CRL number (a
 * replica that has not seen the newest yet) or to miss serials an event
 * said are revoked, then write and apply when the content changed (always
 * when `force`).
 */
export async function syncOnce(
  fx: Pick<GatewaySyncEffects, 'fetchCrl' | 'writeCrlFile' | 'apply' | 'log' | 'now'>,
  state: { last?: string; numbers: Partial<Record<CrlIssuer, bigint>> },
  opts: { force: boolean; expectCrlNumber?: bigint; why: string },
): Promise<SyncResult> {
  const fetched: FetchedCrl[] = [];
  for (const issuer of ['issuing', 'root'] as const) {
    const pem = await fx.fetchCrl(issuer);
    if (pem === undefined) {
      if (issuer === 'issuing') throw new Error('the server publishes no CRL for its issuing CA');
      continue;
    }
    fetched.push({ issuer, pem });
  }
  const numbers: Partial<Record<CrlIssuer, bigint>> = {};
  let serials: string[] = [];
  const now = fx.now?.() ?? Date.now();
  for (const f of fetched) {
    const d = describeCrl(f.pem);
    if (d.crlNumber === undefined) throw new Error(`the ${f.issuer} CRL has no CRL number`);
    // An expired CRL makes nginx and HAProxy refuse every device, and applying it as if it were fresh would
    // hide that the server is not regenerating (or its clock is behind): keep what is applied and say so.
    if (d.nextUpdate && d.nextUpdate.getTime() <= now) {
      throw new ExpiredCrlError(
        `the server sent ${f.issuer} CRL #${d.crlNumber} whose nextUpdate ${d.nextUpdate.toISOString()} has passed (it is ${new Date(now).toISOString()} here): the server's clock is behind or it is not regenerating its CRLs; not applied, the gateway keeps the CRL it has`,
      );
    }
    const before = state.numbers[f.issuer];
    if (before !== undefined && d.crlNumber < before) throw new StaleCrlError(`the server sent ${f.issuer} CRL #${d.crlNumber}, older than #${before} already applied`);
    numbers[f.issuer] = d.crlNumber;
    if (f.issuer === 'issuing') serials = d.serials;
  }
  const issuingNumber = numbers.issuing;
  if (opts.expectCrlNumber !== undefined && issuingNumber !== undefined && issuingNumber < opts.expectCrlNumber) {
    throw new StaleCrlError(`the server sent issuing CRL #${issuingNumber}, but the revocation is listed from #${opts.expectCrlNumber} on (a replica that has not caught up)`);
  }
  const bundle = fetched.map((f) => (f.pem.endsWith('\n') ? f.pem : `${f.pem}\n`)).join('');
  const changed = bundle !== state.last;
  const crlNumbers = Object.fromEntries(Object.entries(numbers).map(([k, v]) => [k, String(v)])) as SyncResult['crlNumbers'];
  const nums = fetched.map((f) => `${f.issuer} #${numbers[f.issuer]}`).join(', ');
  if (changed || opts.force) {
    await fx.writeCrlFile(bundle);
    await fx.apply(bundle);
    state.last = bundle;
    fx.log(`synced CRLs (${nums}; ${serials.length} revoked serial(s)) after ${opts.why}`);
  } else {
    fx.log(`CRLs unchanged (${nums}) after ${opts.why}`);
  }
  state.numbers = { ...state.numbers, ...numbers };
  return { crlNumbers, serials: serials.length, changed };
}

export interface GatewaySyncOptions {
  /** Full resync every so often even without events (0: never). */
  resyncSeconds: number;
}

export interface GatewaySync {
  /** Resolves when stopped; rejects with GatewayAuthError when the server refuses the token. */
  done: Promise<void>;
  stop(): void;
}

/** The long-running sync: stream, syncs coalesced (one at a time, one more if events came meanwhile), reconnects. */
export function runGatewaySync(fx: GatewaySyncEffects, opts: GatewaySyncOptions): GatewaySync {
  const abort = new AbortController();
  const state: { last?: string; numbers: Partial<Record<CrlIssuer, bigint>> } = { numbers: {} };
  let cursor: string | undefined;
  let stream: EventStream | undefined;
  let fatal: Error | undefined;
  const stop = (): void => {
    abort.abort();
    stream?.close();
  };
  let lastSuccessAt: string | undefined;
  let failingSince: string | undefined;
  const report = (kind: SyncStatus['state'], error?: string): void => {
    const at = new Date(fx.now?.() ?? Date.now()).toISOString();
    if (kind === 'ok') {
      lastSuccessAt = at;
      failingSince = undefined;
    } else failingSince ??= at;
    const applied = Object.fromEntries(Object.entries(state.numbers).map(([k, v]) => [k, String(v)]));
    fx.status?.({ state: kind, at, applied, ...(lastSuccessAt ? { lastSuccessAt } : {}), ...(failingSince ? { failingSince } : {}), ...(error ? { error } : {}) });
  };
  const fail = (e: Error): void => {
    fatal ??= e;
    fx.log(e.message, 'error');
    report('stopped', e.message);
    stop();
  };

  // --- the sync scheduler
  // onlyRevocations: every reason is a revocation; such a sync is skipped when the issuing CRL applied
  // meanwhile (its crl-updated event comes first) has the number the revocations named, or a later one.
  let wanted: { why: string; force: boolean; crlNumber?: bigint; onlyRevocations: boolean } | undefined;
  let running = false;
  let failures = 0;
  let staleSince: number | undefined;
  const maxNumber = (a: bigint | undefined, b: bigint | undefined): bigint | undefined => (a === undefined ? b : b === undefined || a >= b ? a : b);
  const request = (why: string, crlNumber?: bigint, force = false): void => {
    wanted ??= { why, force: false, onlyRevocations: true };
    if (!wanted.why.includes(why)) wanted.why = `${wanted.why}, ${why}`;
    wanted.force ||= force;
    wanted.onlyRevocations &&= crlNumber !== undefined;
    wanted.crlNumber = maxNumber(wanted.crlNumber, crlNumber);
    void drain();
  };
  async function drain(): Promise<void> {
    if (running) return;
    running = true;
    try {
      while (wanted && !abort.signal.aborted) {
        const w = wanted;
        wanted = undefined;
        const applied = state.numbers.issuing;
        if (w.onlyRevocations && !w.force && w.crlNumber !== undefined && applied !== undefined && applied >= w.crlNumber) {
          fx.log(`${w.why}: already in the applied CRL`);
          continue;
        }
        try {
          await syncOnce(fx, state, { force: w.force, ...(w.crlNumber !== undefined ? { expectCrlNumber: w.crlNumber } : {}), why: w.why });
          failures = 0;
          staleSince = undefined;
          report('ok');
        } catch (e) {
          if (e instanceof GatewayAuthError) return fail(e);
          report('failing', (e as Error).message);
          const delay = backoffMs(failures++, fx.random);
          // A replica a few milliseconds behind is routine (a warning); anything else leaves the gateway on an old CRL.
          fx.log(`CRL sync failed (${(e as Error).message}); retrying in ${(delay / 1000).toFixed(1)} s`, e instanceof StaleCrlError ? 'warn' : 'error');
          // A CRL number the server keeps not reaching (a replica left behind, a restored database) must
          // not hold the gateway's CRL back for good: stop waiting for it.
          const now = fx.now?.() ?? Date.now();
          if (e instanceof StaleCrlError && w.crlNumber !== undefined && now - (staleSince ??= now) >= MAX_STALE_WAIT_MS) {
            fx.log(`the server's issuing CRL still has not reached #${w.crlNumber} after ${Math.round((now - staleSince) / 1000)} s; syncing without waiting for it`);
            delete w.crlNumber;
            w.onlyRevocations = false;
            staleSince = undefined;
          }
          // Put it back, merged with whatever came meanwhile.
          const meanwhile = wanted as typeof w | undefined;
          if (meanwhile) {
            const n = maxNumber(w.crlNumber, meanwhile.crlNumber);
            wanted = { why: `${w.why}, ${meanwhile.why}`, force: w.force || meanwhile.force, onlyRevocations: w.onlyRevocations && meanwhile.onlyRevocations, ...(n !== undefined ? { crlNumber: n } : {}) };
          } else wanted = w;
          await fx.sleep(delay, abort.signal).catch(() => undefined);
        }
      }
    } finally {
      running = false;
    }
  }

  // --- the stream, reconnected with backoff
  async function loop(): Promise<void> {
    let attempt = 0;
    while (!abort.signal.aborted) {
      let opened = false;
      let refused = false;
      const why = await new Promise<string>((resolve) => {
        stream = fx.openStream({
          onOpen() {
            opened = true;
            attempt = 0;
            stream!.subscribe(cursor);
            fx.log(cursor ? `event stream connected; resuming after cursor ${cursor}` : 'event stream connected');
            // Whatever happened while we were away: fetch everything afresh.
            request('(re)connect');
          },
          onEvent(e) {
            cursor = e.cursor;
            // The server announces the new CRL first: a revocation already in the applied CRL needs no fetch (see drain).
            if (e.type === 'revocation') request(`revocation of ${e.deviceId}`, e.issuer === 'issuing' ? BigInt(e.crlNumber) : undefined);
            else if (e.type === 'crl-updated') request(`${e.issuer} CRL #${e.crlNumber}`);
            else request('resync-required');
          },
          onClose(why, authRefused) {
            refused = !!authRefused;
            resolve(why);
          },
        });
      });
      stream = undefined;
      if (refused) return fail(new GatewayAuthError(`event stream: ${why}`));
      if (abort.signal.aborted) break;
      const delay = backoffMs(opened ? 0 : ++attempt, fx.random);
      fx.log(`event stream ${opened ? 'closed' : 'unavailable'} (${why}); reconnecting in ${(delay / 1000).toFixed(1)} s`);
      await fx.sleep(delay, abort.signal).catch(() => undefined);
    }
  }

  let resync: Promise<void> = Promise.resolve();
  if (opts.resyncSeconds > 0) {
    resync = (async () => {
      while (!abort.signal.aborted) {
        await fx.sleep(opts.resyncSeconds * 1000, abort.signal).catch(() => undefined);
        if (!abort.signal.aborted) request('periodic resync');
      }
    })();
  }

  const done = Promise.all([loop(), resync]).then(() => {
    if (fatal) throw fatal;
  });
  return { done, stop };
}
