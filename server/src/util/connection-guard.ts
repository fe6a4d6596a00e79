/**
 * Connections that hold a descriptor without doing anything — a TCP
 * connection that never starts TLS, a TLS connection that never sends a
 * request, a keep-alive connection between requests — are bounded in time
 * and in number, so that a client opening thousands of them cannot use up
 * the open-file limit and lock everyone else out (issue 10 §5).
 *
 * Time: the TLS handshake (tls.Server `handshakeTimeout`), request headers,
 * the whole request and keep-alive idleness are Node's own timeouts (set in
 * start.ts). Node applies none of them to a connection that has not sent a
 * byte after its handshake, so this guard closes a TLS connection whose
 * first request has not arrived within `firstRequestMs` of the handshake.
 *
 * Number: a connection is *idle* from accept until its first request and
 * between requests, *busy* while a request is in flight, and *upgraded* once
 * it is handed to a WebSocket handler (the control channel and the gateway
 * stream, with their own caps and heartbeats, which this guard never
 * closes). Past `maxIdle` idle connections, or `maxOpen` connections of any
 * kind (short of the open-file limit), a new connection sheds an idle one:
 * the oldest of the address holding the most, so one client flooding the
 * server loses its own connections first and a new client (an admin, an
 * enrolling device) gets in. With nothing idle to shed at `maxOpen`, the
 * new connection is closed at once: the process keeps its last descriptors.
 *
 * Shutdown: the guard also is the server's `closeIdleConnections`, which
 * `server.close()` runs (Node 19+). Node's own counts a connection as idle
 * once its request is read, and destroys it when the response is ended
 * (`res.end()` called) even if its bytes are still being written: an
 * issuance committed just before the close lost its answer. Here a
 * connection is busy until its response has closed (fully written), and
 * once the server is closing it is ended as soon as it is done.
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type ShedReason = 'idle-cap' | 'open-cap' | 'first-request-timeout' | 'refused';

export interface ConnectionGuardOptions {
  maxIdle: number;
  maxOpen: number;
  /** After the TLS handshake, the time allowed until the first request's headers are in. */
  firstRequestMs: number;
  onShed?: (reason: ShedReason) => void;
}

export interface ConnectionGuard {
  readonly idle: number;
  readonly open: number;
  /** The server's `closeIdleConnections`: closes connections with no request in flight, and from now on each one as its last response is written. */
  closeIdle(): void;
  close(): void;
}

interface Tracked {
  raw: Socket;
  addr: string;
  state: 'idle' | 'busy' | 'upgraded';
  /** Requests in flight (more than one when pipelined). */
  inFlight: number;
  timer?: NodeJS.Timeout;
}

/** The raw TCP socket and the TLS socket over it share the peer's address and port. */
const keyOf = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;

export function guardConnections(server: HttpServer, o: ConnectionGuardOptions): ConnectionGuard {
  /** Every open connection, by peer address and port. */
  const byKey = new Map<string, Tracked>();
  /** Idle connections by peer address, oldest first. */
  const idleByAddr = new Map<string, Set<Tracked>>();
  let idle = 0;
  /** Set by closeIdle: the server is closing, a connection that is done is closed. */
  let closing = false;

  const toIdle = (t: Tracked): void => {
    t.state = 'idle';
    let set = idleByAddr.get(t.addr);
    if (!set) idleByAddr.set(t.addr, (set = new Set()));
    set.add(t);
    idle++;
  };
  const leaveIdle = (t: Tracked, state: Tracked['state']): void => {
    const set = idleByAddr.get(t.addr);
    if (set?.delete(t)) {
      idle--;
      if (set.size === 0) idleByAddr.delete(t.addr);
    }
    t.state = state;
  };

  /** Closes the oldest idle connection of the address holding the most; false if none is idle. */
  const shedOne = (reason: ShedReason): boolean => {
    let worst: Set<Tracked> | undefined;
    for (const set of idleByAddr.values()) if (!worst || set.size > worst.size) worst = set;
    const victim: Tracked | undefined = worst?.values().next().value;
    if (!victim) return false;
    leaveIdle(victim, 'busy');
    o.onShed?.(reason);
    victim.raw.destroy();
    return true;
  };

  const onConnection = (raw: Socket): void => {
    // Reset by the peer before we got to it.
    if (!raw.remoteAddress) return void raw.destroy();
    if (byKey.size >= o.maxOpen && !shedOne('open-cap')) {
      o.onShed?.('refused');
      raw.destroy();
      return;
    }
    const key = keyOf(raw);
    const t: Tracked = { raw, addr: raw.remoteAddress ?? '', state: 'idle', inFlight: 0 };
    byKey.set(key, t);
    toIdle(t);
    if (idle > o.maxIdle) shedOne('idle-cap');
    raw.once('close', () => {
      clearTimeout(t.timer);
      leaveIdle(t, 'busy');
      if (byKey.get(key) === t) byKey.delete(key);
    });
  };

  const onSecure = (sock: Socket): void => {
    const t = byKey.get(keyOf(sock));
    if (t?.state !== 'idle') return;
    t.timer = setTimeout(() => {
      if (t.state !== 'idle' || t.raw.destroyed) return;
      o.onShed?.('first-request-timeout');
      t.raw.destroy();
    }, o.firstRequestMs);
    t.timer.unref();
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const t = byKey.get(keyOf(req.socket));
    if (!t || t.state === 'upgraded') return;
    clearTimeout(t.timer);
    t.inFlight++;
    leaveIdle(t, 'busy');
    res.once('close', () => {
      // Between requests it is idle again (Node's keepAliveTimeout closes it), unless it is going.
      if (--t.inFlight !== 0 || t.state !== 'busy' || t.raw.destroyed || byKey.get(keyOf(t.raw)) !== t) return;
      // Closing: ended once what is still queued on it is written.
      if (closing) req.socket.destroySoon();
      else toIdle(t);
    });
  };

  const onUpgrade = (req: IncomingMessage): void => {
    const t = byKey.get(keyOf(req.socket));
    if (!t) return;
    clearTimeout(t.timer);
    leaveIdle(t, 'upgraded');
  };

  server.on('connection', onConnection);
  server.on('secureConnection', onSecure);
  server.on('request', onRequest);
  server.on('upgrade', onUpgrade);
  const closeIdle = (): void => {
    closing = true;
    for (const set of [...idleByAddr.values()]) for (const t of [...set]) t.raw.destroy();
  };
  // server.close() calls it (Node 19+), and so does fastify's forceCloseConnections: 'idle'.
  server.closeIdleConnections = closeIdle;
  return {
    get idle() {
      return idle;
    },
    get open() {
      return byKey.size;
    },
    closeIdle,
    close() {
      server.off('connection', onConnection);
      server.off('secureConnection', onSecure);
      server.off('request', onRequest);
      server.off('upgrade', onUpgrade);
      // No longer counting: Node's own sweep is back.
      if (server.closeIdleConnections === closeIdle) Reflect.deleteProperty(server, 'closeIdleConnections');
      for (const t of byKey.values()) clearTimeout(t.timer);
    },
  };
}
