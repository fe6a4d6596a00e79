/**
 * The gateways' event stream, `wss://…/v1/events` (docs/architecture.md "Protocols"),
 * authenticated by a gateway token at the upgrade. After `subscribe
 * { since? }` the server replays the persisted revocations and CRL updates
 * after `since`, in order, then goes on with live ones: it subscribes to the
 * bus before it reads the table and buffers, so nothing falls in between,
 * and skips what it already sent. A cursor it cannot replay from gets
 * `resync-required` with the current cursor. Pings find dead connections;
 * a revoked gateway token closes its streams (4003).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { GatewaySubscribe, MAX_WS_MESSAGE_BYTES, WS_CLOSE_CODES, type GatewayEvent } from '@latchkey/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { bearer } from '../auth/bearer.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { DeliveredEvent, EventBus, ServerEvent } from '../events/event-bus.js';
import type { EventsRepo } from '../events/events-repo.js';
import { limitMessageRate, readWsMessage, refuseUpgrade, WS_MESSAGE_RATE } from '../upgrade-router.js';
import { fromDelivered, replayStart, sentSet, toGatewayEvent } from './gateway-events-fns.js';
import type { GatewayTokensRepo } from './gateway-tokens-repo.js';

const checkSubscribe = TypeCompiler.Compile(GatewaySubscribe);
const REPLAY_PAGE = 500;

export interface GatewayEventsHub {
  /** Takes an HTTP upgrade to PATHS.events (see upgrade-router.ts). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes the streams of a gateway token that was just revoked. */
  tokenRevoked(id: string): void;
  readonly size: number;
  /** The most bytes queued unsent on one stream (a gateway that does not keep up). */
  readonly backlogBytes: number;
  /** The streams connected now, and how far each is behind `head` (the events table's newest id). */
  list(head: number): GatewayStreamInfo[];
  /** The streams connected now with the cursor each has (what a replica publishes for the others' overview). */
  snapshot(): GatewayStreamSnapshot[];
  close(): Promise<void>;
}

export interface GatewayStreamInfo {
  tokenId: string;
  name: string;
  remote: string;
  connectedAt: string;
  lastEventAt: string | null;
  behindEvents: number;
  backlogBytes: number;
}

/** One stream as the replicas table carries it: its position rather than how far behind (the head moves on). */
export interface GatewayStreamSnapshot extends Omit<GatewayStreamInfo, 'behindEvents'> {
  position: number | null;
}

/** How far behind `head` a stream is; a stream not yet subscribed is not behind. */
export const streamInfo = (s: GatewayStreamSnapshot, head: number): GatewayStreamInfo => {
  const { position, ...rest } = s;
  return { ...rest, behindEvents: position === null ? 0 : Math.max(0, head - position) };
};

interface Stream {
  ws: WebSocket;
  tokenId: string;
  name: string;
  remote: string;
  connectedAt: string;
  lastEventAt: string | null;
  /** The newest cursor the stream has (sent, or where it started); undefined before it subscribed. */
  position: number | undefined;
  alive: boolean;
}

export function createGatewayEventsHub(deps: {
  events: Pick<EventsRepo, 'head' | 'oldest' | 'after'>;
  gatewayTokens: Pick<GatewayTokensRepo, 'findByHash' | 'revokedAmong'>;
  bus: Pick<EventBus, 'subscribe'>;
  pingSeconds: number;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** Called for each event sent on a stream (metrics: how late it went out). */
  onSent?: (e: ServerEvent) => void;
  clock?: () => Date;
}): GatewayEventsHub {
  const now = (): string => (deps.clock?.() ?? new Date()).toISOString();
  /** One event went out on the stream at `cursor`. */
  const sentOn = (s: Stream, cursor: string): void => {
    s.lastEventAt = now();
    s.position = Math.max(s.position ?? 0, Number(cursor));
  };
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  const streams = new Set<Stream>();

  async function authenticate(req: IncomingMessage): Promise<{ tokenId: string; name: string } | { status: number; code: string; message: string }> {
    const token = bearer(req);
    if (!token) return { status: 401, code: 'UNAUTHORIZED', message: 'the event stream needs `Authorization: Bearer <gateway token>` (latchkey-server gateway token create)' };
    const row = await deps.gatewayTokens.findByHash(hashSecret(token));
    if (!row) return { status: 401, code: 'UNAUTHORIZED', message: 'the gateway token is not valid' };
    if (row.revoked_at) return { status: 403, code: 'FORBIDDEN', message: `the gateway token "${row.name}" was revoked; create a new one with \`latchkey-server gateway token create\`` };
    return { tokenId: row.id, name: row.name };
  }

  const send = (ws: WebSocket, m: GatewayEvent): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  };

  /** Replays after `since` (or says resync-required), then delivers live events; `buffered` holds what the bus brought meanwhile. */
  async function start(s: Stream, since: string | undefined, buffered: DeliveredEvent[], goLive: (fn: (e: DeliveredEvent) => void) => void): Promise<void> {
    const sent = sentSet();
    const deliver = (e: DeliveredEvent): void => {
      if (!e.cursor || sent.has(e.cursor)) return;
      const g = fromDelivered(e);
      if (!g) return;
      sent.add(e.cursor);
      send(s.ws, g);
      sentOn(s, e.cursor);
      deps.onSent?.(e);
    };
    const head = await deps.events.head();
    if (since === undefined) s.position = Math.max(s.position ?? 0, head);
    else {
      const start = replayStart(since, head, await deps.events.oldest());
      if (start === 'resync') {
        // Unknown (another database, garbage) or older than what is kept: start afresh from now.
        // Events the bus brought since the subscription follow: the gateway fetches the CRLs once more, harmlessly.
        send(s.ws, { type: 'resync-required', cursor: String(head) });
        s.position = Math.max(s.position ?? 0, head);
      } else {
        let { after } = start;
        for (;;) {
          const rows = await deps.events.after(after, ['revocation', 'crl-updated'], REPLAY_PAGE);
          for (const r of rows) {
            const cursor = String(r.id);
            const e = JSON.parse(r.payload) as ServerEvent;
            const g = toGatewayEvent(e, cursor);
            sent.add(cursor);
            if (g) {
              send(s.ws, g);
              deps.onSent?.(e);
            }
            sentOn(s, cursor);
          }
          if (rows.length < REPLAY_PAGE || s.ws.readyState !== s.ws.OPEN) break;
          after = Number(rows[rows.length - 1]!.id);
        }
      }
    }
    for (const e of buffered.splice(0)) deliver(e);
    goLive(deliver);
  }

  function onConnection(ws: WebSocket, token: { tokenId: string; name: string }, remote: string): void {
    const tokenId = token.tokenId;
    const s: Stream = { ws, tokenId, name: token.name, remote, connectedAt: now(), lastEventAt: null, position: undefined, alive: true };
    streams.add(s);
    let unsubscribe: (() => void) | undefined;
    ws.on('pong', () => (s.alive = true));
    limitMessageRate(ws, { ...WS_MESSAGE_RATE, code: WS_CLOSE_CODES.tooManyMessages, onExceeded: () => deps.log('a gateway sent messages or pings faster than allowed; closed', { tokenId }) });
    ws.on('message', (data, isBinary) => {
      s.alive = true;
      const msg = readWsMessage(ws, data, isBinary, checkSubscribe, WS_CLOSE_CODES.protocolError);
      if (!msg) return;
      if (unsubscribe) {
        ws.close(WS_CLOSE_CODES.protocolError, 'subscribe once per connection');
        return;
      }
      // On the bus first, buffering, then read the table: no gap between replay and live.
      const buffered: DeliveredEvent[] = [];
      let live: ((e: DeliveredEvent) => void) | undefined;
      unsubscribe = deps.bus.subscribe((e) => (live ? live(e) : buffered.push(e)));
      start(s, msg.since, buffered, (fn) => (live = fn)).catch((e: Error) => {
        deps.log('gateway event replay failed', { err: e.message });
        ws.close(1011, 'replay failed; reconnect');
      });
    });
    ws.on('close', () => {
      unsubscribe?.();
      streams.delete(s);
    });
    ws.on('error', () => undefined);
  }

  // Pings: a stream that did not answer since the last one is dead. The same
  // tick notices gateway tokens revoked on another replica.
  const timer = setInterval(() => {
    const ids = new Set<string>();
    for (const s of streams) {
      if (!s.alive) {
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
      ids.add(s.tokenId);
    }
    if (ids.size === 0) return;
    deps.gatewayTokens
      .revokedAmong([...ids])
      .then((revoked) => revoked.forEach(hub.tokenRevoked))
      .catch((e: Error) => deps.log('could not check gateway tokens', { err: e.message }));
  }, deps.pingSeconds * 1000);
  timer.unref();

  const hub: GatewayEventsHub = {
    handleUpgrade(req, socket, head) {
      authenticate(req).then(
        (r) => {
          if ('status' in r) return refuseUpgrade(socket, r.status, r.code, r.message);
          wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, r, req.socket.remoteAddress ?? 'unknown'));
        },
        (e: Error) => {
          deps.log('gateway token check failed', { err: e.message });
          refuseUpgrade(socket, 500, 'INTERNAL', 'the server could not check the gateway token');
        },
      );
    },
    tokenRevoked(id) {
      for (const s of streams) if (s.tokenId === id) s.ws.close(WS_CLOSE_CODES.revoked, 'gateway token revoked');
    },
    get size() {
      return streams.size;
    },
    get backlogBytes() {
      let most = 0;
      for (const s of streams) most = Math.max(most, s.ws.bufferedAmount);
      return most;
    },
    snapshot() {
      return [...streams].map((s) => ({
        tokenId: s.tokenId,
        name: s.name,
        remote: s.remote,
        connectedAt: s.connectedAt,
        lastEventAt: s.lastEventAt,
        position: s.position ?? null,
        backlogBytes: s.ws.bufferedAmount,
      }));
    },
    list(head) {
      return hub.snapshot().map((s) => streamInfo(s, head));
    },
    async close() {
      clearInterval(timer);
      for (const s of streams) s.ws.close(1001, 'server shutting down');
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
  return hub;
}
