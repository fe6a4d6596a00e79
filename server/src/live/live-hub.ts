/**
 * The console's live stream, `GET /v1/admin/live` (server-sent events). One
 * hub per process, shared by every stream:
 * - one poller (every POLL_MS while a stream is open) tails the audit table,
 *   so rows written by any replica or by the CLI reach every console; on
 *   PostgreSQL ids may commit out of order, so it rereads a window below the
 *   newest id it saw and skips what it sent (a bounded set);
 * - the same tick compares presence's fingerprint and says `presence` when
 *   who is online changed;
 * - bus events (revocation, issuance, device-approved, policy) go out as
 *   they come.
 * Every PING_MS a comment line goes out and each stream's credential is read
 * again: a revoked or expired one closes its streams. Bounded per process and
 * per credential; a client that does not read is dropped.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LIVE_LIMITS, type LiveEventName } from '@latchkey/protocol';
import { checkLive } from '../admin/admin-auth.js';
import type { AdminTokensRepo } from '../admin/admin-tokens-repo.js';
import { type AuditRepo, toAuditEvent } from '../audit/audit-repo.js';
import type { Presence } from '../agent-channel/presence.js';
import { LatchkeyError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import { sentSet } from '../gateway/gateway-events-fns.js';
import { DEFAULT_LIVE_LIMITS, type LiveLimits, pollFrom, refuseStream, SSE_PING, sseMessage } from './live-fns.js';

const POLL_MS = 1000;
const PAGE = 500;
/** Bytes a stream may have unsent before it is dropped (a console that stopped reading). */
const MAX_BACKLOG_BYTES = 1 << 20;
const FORWARDED: ReadonlySet<string> = new Set<LiveEventName>(['revocation', 'issuance', 'device-approved', 'policy']);

interface Stream {
  raw: ServerResponse;
  credentialId: string;
}

export interface LiveHub {
  /** Answers the request with a stream (or refuses it with 429 before anything is sent). */
  open(req: FastifyRequest, reply: FastifyReply): void;
  /** One poller tick: new audit rows, and presence if it changed (the timer calls it; tests may too). */
  poll(): Promise<void>;
  /** One ping tick: a comment on every stream, and the credentials checked again. */
  ping(): Promise<void>;
  readonly size: number;
  /** Ends every stream (before the HTTP server stops: they would hold it open). */
  close(): void;
}

export function createLiveHub(deps: {
  audit: Pick<AuditRepo, 'after' | 'head'>;
  presence: Pick<Presence, 'fingerprint'>;
  adminTokens: Pick<AdminTokensRepo, 'findById'>;
  bus: Pick<EventBus, 'subscribe'>;
  clock: () => Date;
  /** Ids below the newest seen that the poller rereads: 0 on SQLite (one writer, ids commit in order). */
  lateWindow: number;
  limits?: LiveLimits;
  pollMs?: number;
  pingMs?: number;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}): LiveHub {
  const limits = deps.limits ?? DEFAULT_LIVE_LIMITS;
  const streams = new Set<Stream>();
  const sent = sentSet();
  // The poller's state: undefined until its first tick after a stream opened.
  let highWater: number | undefined;
  let presenceKey: string | undefined;
  let polling: Promise<void> | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const end = (s: Stream): void => {
    streams.delete(s);
    s.raw.end();
  };
  const write = (s: Stream, text: string): void => {
    if (s.raw.writableLength > MAX_BACKLOG_BYTES) {
      deps.log('a live stream stopped reading; closed', { credentialId: s.credentialId });
      return end(s);
    }
    s.raw.write(text);
  };
  const broadcast = (text: string): void => {
    for (const s of streams) write(s, text);
  };

  const unsubscribe = deps.bus.subscribe((e) => {
    if (!FORWARDED.has(e.type) || streams.size === 0) return;
    const { cursor: _cursor, ...event } = e;
    broadcast(sseMessage(e.type as LiveEventName, event));
  });

  async function tick(): Promise<void> {
    if (highWater === undefined) {
      // Starts from now: the console read the current state when it loaded.
      highWater = await deps.audit.head();
      presenceKey = (await deps.presence.fingerprint()).key;
      return;
    }
    for (;;) {
      const rows = await deps.audit.after(pollFrom(highWater, deps.lateWindow), PAGE + deps.lateWindow);
      for (const r of rows) {
        highWater = Math.max(highWater, r.id);
        if (sent.has(String(r.id))) continue;
        sent.add(String(r.id));
        broadcast(sseMessage('audit', toAuditEvent(r)));
      }
      if (rows.length < PAGE + deps.lateWindow) break;
    }
    const p = await deps.presence.fingerprint();
    if (p.key !== presenceKey) {
      presenceKey = p.key;
      broadcast(sseMessage('presence', { online: p.online }));
    }
  }

  const hub: LiveHub = {
    poll() {
      // One tick at a time: a slow database makes ticks late, never concurrent.
      polling ??= tick()
        .catch((e: Error) => deps.log('the live stream could not read the audit log or presence; retrying', { err: e.message }))
        .finally(() => (polling = undefined));
      return polling;
    },
    async ping() {
      broadcast(SSE_PING);
      const now = deps.clock();
      const ids = new Set([...streams].map((s) => s.credentialId));
      for (const id of ids) {
        const row = await deps.adminTokens.findById(id);
        let live = row !== undefined;
        if (row) {
          try {
            checkLive(row, now);
          } catch {
            live = false;
          }
        }
        if (!live) for (const s of streams) if (s.credentialId === id) end(s);
      }
    },
    open(req, reply) {
      const admin = req.admin;
      if (!admin) throw new LatchkeyError('UNAUTHORIZED', 'sign in to the console first');
      if (closed) throw new LatchkeyError('SERVER_BUSY', 'the server is shutting down; retry in a moment');
      const ofCredential = [...streams].filter((s) => s.credentialId === admin.id).length;
      const refusal = refuseStream({ total: streams.size, ofCredential }, limits);
      if (refusal) throw new LatchkeyError('RATE_LIMITED', refusal, { headers: { 'retry-after': '60' } });
      reply.hijack();
      const raw = reply.raw;
      // Headers other hooks set (security headers) are kept.
      raw.writeHead(200, { ...(reply.getHeaders() as Record<string, string>), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', connection: 'keep-alive' });
      raw.write(`retry: 5000\n\n`);
      const s: Stream = { raw, credentialId: admin.id };
      streams.add(s);
      raw.on('close', () => {
        streams.delete(s);
        if (streams.size === 0) stopTimers();
      });
      startTimers();
    },
    get size() {
      return streams.size;
    },
    close() {
      closed = true;
      unsubscribe();
      stopTimers();
      for (const s of [...streams]) end(s);
    },
  };

  function startTimers(): void {
    if (pollTimer) return;
    void hub.poll();
    pollTimer = setInterval(() => void hub.poll(), deps.pollMs ?? POLL_MS);
    pollTimer.unref();
    pingTimer = setInterval(() => void hub.ping().catch((e: Error) => deps.log('could not check the credentials of live streams', { err: e.message })), deps.pingMs ?? LIVE_LIMITS.pingSeconds * 1000);
    pingTimer.unref();
  }
  function stopTimers(): void {
    clearInterval(pollTimer);
    clearInterval(pingTimer);
    pollTimer = pingTimer = undefined;
    highWater = undefined;
  }
  return hub;
}
