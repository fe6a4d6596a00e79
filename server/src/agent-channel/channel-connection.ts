/**
 * One agent's authenticated connection: hello within 10 s, then heartbeats
 * within 2.5 intervals, a bounded message rate; each message does what
 * `nextForMessage` says. The hub learns when the agent is online (hello
 * accepted) and offline again.
 */
import { randomUUID } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { AgentMessage, WS_CLOSE_CODES, type ServerMessage } from '@latchkey/protocol';
import type { WebSocket } from 'ws';
import type { Metrics } from '../metrics.js';
import { limitMessageRate, readWsMessage, WS_MESSAGE_RATE } from '../upgrade-router.js';
import { nextForMessage } from './channel-fns.js';
import type { PolicyCache } from './channel-policy.js';

const checkAgentMessage = TypeCompiler.Compile(AgentMessage);

/** Seconds a new connection has to say hello. */
const HELLO_SECONDS = 10;

export interface OnlineDevice {
  deviceId: string;
  since: string;
  agentVersion: string | null;
  serial: string;
  remote: string;
}

export interface Conn {
  /** Its row in agent_sessions (presence). */
  id: string;
  ws: WebSocket;
  info: OnlineDevice;
  group: string;
}

export function send(ws: WebSocket, m: ServerMessage | string): void {
  if (ws.readyState === ws.OPEN) ws.send(typeof m === 'string' ? m : JSON.stringify(m));
}

export interface AgentConnectionDeps {
  heartbeatSeconds: number;
  metrics: Pick<Metrics, 'inc'>;
  policies: Pick<PolicyCache, 'get'>;
  clock: () => Date;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  /** The hello was accepted (factsJson: what the agent reported). */
  online(conn: Conn, factsJson: string): void;
  /** A connection that was online closed. */
  offline(conn: Conn): void;
}

export function attachAgent(ws: WebSocket, who: { deviceId: string; group: string; serial: string; remote: string }, deps: AgentConnectionDeps): void {
  const { deviceId, serial } = who;
  const conn: Conn = { id: randomUUID(), ws, group: who.group, info: { deviceId, since: deps.clock().toISOString(), agentVersion: null, serial, remote: who.remote } };
  let greeted = false;
  let mismatchLogged = false;
  let deadline: NodeJS.Timeout;
  const arm = (seconds: number): void => {
    clearTimeout(deadline);
    deadline = setTimeout(() => ws.close(WS_CLOSE_CODES.heartbeatTimeout, 'no heartbeat'), seconds * 1000);
    deadline.unref();
  };
  arm(HELLO_SECONDS);
  limitMessageRate(ws, {
    ...WS_MESSAGE_RATE,
    code: WS_CLOSE_CODES.tooManyMessages,
    onExceeded: () => {
      deps.metrics.inc('latchkey_ws_rate_limited_total', { endpoint: 'agent' });
      deps.log('an agent sent messages faster than allowed; closed', { deviceId, serial });
    },
  });
  ws.on('message', (data, isBinary) => {
    const msg = readWsMessage(ws, data, isBinary, checkAgentMessage, WS_CLOSE_CODES.protocolError);
    if (!msg) return;
    const next = nextForMessage({ greeted, serial }, msg);
    if (next.do === 'close' && !greeted) {
      ws.close(next.code, next.reason);
      return;
    }
    arm(deps.heartbeatSeconds * 2.5);
    switch (next.do) {
      case 'close':
        ws.close(next.code, next.reason);
        return;
      case 'greet':
        greeted = true;
        conn.info.agentVersion = next.agentVersion;
        // Presence, and the device's last_seen and facts, written in the next batch.
        deps.online(conn, next.factsJson);
        send(ws, { type: 'welcome', deviceId, heartbeatSeconds: deps.heartbeatSeconds });
        deps.policies.get(conn.group).then(
          (p) => p && send(ws, p),
          (e: Error) => deps.log('could not read the group policy', { err: e.message }),
        );
        deps.metrics.inc('latchkey_agent_connections_total');
        return;
      case 'ack':
        send(ws, { type: 'heartbeat-ack', seq: next.seq });
        return;
      case 'serial-mismatch':
        // Logged once per connection: a client repeating it cannot flood the log.
        deps.metrics.inc('latchkey_agent_status_serial_mismatch_total');
        if (!mismatchLogged) deps.log('an agent reported a serial other than the certificate it connected with; ignored', { deviceId, serial, claimed: next.claimed });
        mismatchLogged = true;
        return;
      case 'nothing':
        return;
    }
  });
  ws.on('close', () => {
    clearTimeout(deadline);
    if (greeted) deps.offline(conn);
  });
  ws.on('error', () => undefined);
}
