/**
 * One control-channel connection: opens the WebSocket with the device's TLS
 * identity, says hello and status, heartbeats (and drops a connection that
 * stopped answering), reads the server's messages and an HTTP refusal of the
 * upgrade, and reports each to the loop (control-channel.ts), which decides.
 */
import type { AgentHeartbeat } from '@latchkey/protocol';
import { MAX_WS_MESSAGE_BYTES, RETRY_AFTER_HEADER } from '@latchkey/protocol/wire';
import WebSocket from 'ws';
import { REFUSAL_MAX_BODY, REFUSAL_READ_MS, type ServerEvent, heartbeatEveryMs, heartbeatOverdue, readServerMessage } from './channel-fns.js';

export interface ChannelSocketEvents {
  log: (line: string) => void;
  /** The TLS and WebSocket handshakes are done. */
  onOpen(): void;
  /** The server greeted this connection (answer to hello). */
  onWelcome(): void;
  /** policy, revoked or renew-now. */
  onMessage(m: Exclude<ServerEvent, { type: 'welcome' }>): void;
  /** The upgrade was answered with an HTTP error; the socket is dropped. */
  onRefused(r: { status: number | undefined; body: string; retryAfter: string | string[] | undefined }): void;
  /** The connection closed (not after a refusal); `upForMs`: how long since welcome, undefined if never welcomed. */
  onClose(code: number, upForMs: number | undefined): void;
}

export interface ChannelSocketOptions {
  url: URL;
  /** node:tls options: the pinned root as `ca`, and the device's certificate and key (deviceTlsOptions). */
  tls: object;
  /** The hello and status messages, sent on open. */
  greeting: () => Promise<object[]>;
}

export function openChannelSocket(o: ChannelSocketOptions, on: ChannelSocketEvents): WebSocket {
  const sock = new WebSocket(o.url, { ...o.tls, handshakeTimeout: 15_000, maxPayload: MAX_WS_MESSAGE_BYTES, perMessageDeflate: false } as WebSocket.ClientOptions);
  let seq = 0;
  // This connection's own heartbeat timer (a reconnect may overlap the old socket's closing).
  let heartbeat: NodeJS.Timeout | undefined;
  let welcomedAt: number | undefined;
  // Anything from the server (acks included) shows the connection is alive.
  let lastHeard = performance.now();
  const beat = (seconds: unknown): void => {
    const every = heartbeatEveryMs(seconds);
    clearInterval(heartbeat);
    heartbeat = setInterval(() => {
      if (sock.readyState !== sock.OPEN) return;
      if (heartbeatOverdue(performance.now(), lastHeard, every)) {
        on.log(`latchkey: the control channel got no answer for ${Math.round((performance.now() - lastHeard) / 1000)} s; reconnecting`);
        sock.terminate();
        return;
      }
      sock.send(JSON.stringify({ type: 'heartbeat', seq: seq++ } satisfies AgentHeartbeat));
    }, every);
  };
  sock.on('open', () => {
    on.onOpen();
    void o.greeting().then((msgs) => msgs.forEach((m) => sock.send(JSON.stringify(m)))).catch(() => sock.terminate());
  });
  sock.on('message', (data) => {
    lastHeard = performance.now();
    const m = readServerMessage(data.toString(), () => new Date());
    if (!m) return;
    if (m.type === 'welcome') {
      welcomedAt = performance.now();
      beat(m.heartbeatSeconds);
      on.onWelcome();
      return;
    }
    if (m.type === 'policy') beat(m.policy.heartbeatSeconds);
    on.onMessage(m);
  });
  let refused = false;
  sock.on('unexpected-response', (_req, res) => {
    // The upgrade was answered with an HTTP error: read why, then drop the socket (one retry, from the loop).
    refused = true;
    let body = '';
    res.on('data', (d: Buffer) => {
      if (body.length < REFUSAL_MAX_BODY) body += d.toString();
    });
    res.on('error', () => undefined);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(cutoff);
      sock.terminate();
      on.onRefused({ status: res.statusCode, body, retryAfter: res.headers[RETRY_AFTER_HEADER] });
    };
    const cutoff = setTimeout(finish, REFUSAL_READ_MS);
    res.on('end', finish);
    res.on('close', finish);
  });
  sock.on('error', () => undefined);
  sock.on('close', (code) => {
    clearInterval(heartbeat);
    if (!refused) on.onClose(code, welcomedAt === undefined ? undefined : performance.now() - welcomedAt);
  });
  return sock;
}
