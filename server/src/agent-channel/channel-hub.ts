/**
 * The agents' control channel, `wss://…/v1/agent` (DESIGN.md "Protocols"):
 * one WebSocket per running agent, authenticated by its device certificate
 * at the upgrade (auth/device-cert-auth.ts, the check re-enrollment makes,
 * without its recovery window). The agent says hello with its
 * version and facts, then reports its status and heartbeats; the server
 * pushes `revoked` and closes every connection of a device the moment the
 * revocation event arrives — from this replica or, over LISTEN/NOTIFY, from
 * any other. After welcome it sends the device group's policy (certificate
 * lifetime, renewal point, heartbeat) and sends it again to every connected
 * agent of the group when an administrator changes the group.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Certificate } from '@latchkey/pki';
import { AgentMessage, MAX_WS_MESSAGE_BYTES, PROTOCOL_VERSION, WS_CLOSE_CODES, type ServerMessage } from '@latchkey/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import type { DeviceCertAuth, DeviceCertRefusal } from '../auth/device-cert-auth.js';
import { groupsRepo } from '../groups/groups-repo.js';
import type { EventBus } from '../events/event-bus.js';
import type { Metrics } from '../metrics.js';
import type { Presence } from './presence.js';
import type { Db } from '../storage/db.js';
import { limitMessageRate, readWsMessage, refuseUpgrade, WS_MESSAGE_RATE } from '../upgrade-router.js';

const checkAgentMessage = TypeCompiler.Compile(AgentMessage);

export interface OnlineDevice {
  deviceId: string;
  since: string;
  agentVersion: string | null;
  serial: string;
  remote: string;
}

export interface ChannelHub {
  /** Takes an HTTP upgrade to PATHS.agentChannel (see upgrade-router.ts). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Connections open now (all devices; who they are is in presence.ts, across replicas). */
  readonly size: number;
  close(): Promise<void>;
}

interface Conn {
  /** Its row in agent_sessions (presence). */
  id: string;
  ws: WebSocket;
  info: OnlineDevice;
  group: string;
}

/** A refused device certificate, in the upgrade's error codes (401 when none was presented, else 403). */
const UPGRADE_REFUSALS: Record<DeviceCertRefusal, { code: string; message: string }> = {
  missing: { code: 'CLIENT_CERT_REQUIRED', message: 'the control channel needs the device certificate as TLS client certificate' },
  unparsable: { code: 'CLIENT_CERT_UNKNOWN', message: 'the client certificate cannot be parsed' },
  'foreign-ca': { code: 'CLIENT_CERT_UNKNOWN', message: "the client certificate was not issued by this server's CA" },
  unknown: { code: 'CLIENT_CERT_UNKNOWN', message: "the client certificate is not in this server's records" },
  superseded: { code: 'CERT_SUPERSEDED', message: 'this certificate was superseded by a later one of this device; connect with the current one (is this identity copied to another machine?)' },
  revoked: { code: 'DEVICE_REVOKED', message: 'this device has been revoked' },
  'not-active': { code: 'DEVICE_REVOKED', message: 'this device has been revoked' },
  'not-yet-valid': { code: 'FORBIDDEN', message: 'the client certificate is not valid yet; check the device clock' },
  expired: { code: 'CERT_EXPIRED_PAST_GRACE', message: 'the certificate has expired; renew it first' },
};

/** How long a group's policy message is reused for connecting agents. */
const POLICY_CACHE_MS = 5000;

/** Sends per event-loop turn when a message goes to many agents. */
const FANOUT_SLICE = 500;

/** Agents renew at this fraction of the lifetime (before their ±10% jitter). */
export const RENEW_FRACTION = 2 / 3;

export function createChannelHub(deps: { db: Db; deviceCertAuth: DeviceCertAuth; bus: EventBus; clock: () => Date; metrics: Metrics; presence: Presence; heartbeatSeconds: number; maxConnections: number; maxPerDevice: number; log: (msg: string, extra?: Record<string, unknown>) => void }): ChannelHub {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  const byDevice = new Map<string, Set<Conn>>();
  let count = 0;
  let authenticating = 0;
  let lastFullLog = 0;
  /** Every open socket of a device, greeted or not yet: a revocation closes them all. */
  const socketsByDevice = new Map<string, Set<WebSocket>>();
  /**
   * Devices revoked in the last minute, with when: a connection whose
   * authentication read the database before the revocation, but whose upgrade
   * completes after the revocation event, is closed at once.
   */
  const recentlyRevoked = new Map<string, number>();
  const RECENT_MS = 60_000;

  /** Who is knocking: the device behind the TLS client certificate, or why not. */
  async function authenticate(req: IncomingMessage): Promise<{ deviceId: string; group: string; cert: Certificate } | { status: number; code: string; message: string }> {
    const sock = req.socket as Partial<TLSSocket>;
    // The DER alone (getPeerCertificate would also translate every field to JS).
    const der = typeof sock.getPeerX509Certificate === 'function' ? sock.getPeerX509Certificate()?.raw : undefined;
    // No recovery window here: an expired certificate renews (EST) before it connects.
    const v = await deps.deviceCertAuth(der, { recoveryGraceSeconds: 0 });
    if (!v.ok) return { status: v.reason === 'missing' ? 401 : 403, ...UPGRADE_REFUSALS[v.reason] };
    return { deviceId: v.record.device_id, group: v.record.group_name, cert: v.cert };
  }

  function send(ws: WebSocket, m: ServerMessage | string): void {
    if (ws.readyState === ws.OPEN) ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  /**
   * The `policy` message for a group, serialized once for all its agents;
   * undefined if the group is gone. Kept a few seconds for the agents
   * connecting meanwhile; a policy event (any replica) reads it afresh.
   */
  const policies = new Map<string, { at: number; msg: Promise<string | undefined> }>();
  function policyOf(group: string, fresh = false): Promise<string | undefined> {
    const hit = policies.get(group);
    if (!fresh && hit && Date.now() - hit.at < POLICY_CACHE_MS) return hit.msg;
    const msg = groupsRepo(deps.db.kysely)
      .get(group)
      .then((g) => (g ? JSON.stringify({ type: 'policy', certLifetimeSeconds: g.cert_lifetime_seconds, renewFraction: RENEW_FRACTION, heartbeatSeconds: deps.heartbeatSeconds } satisfies ServerMessage) : undefined));
    policies.set(group, { at: Date.now(), msg });
    msg.catch(() => policies.delete(group));
    return msg;
  }

  function onConnection(ws: WebSocket, deviceId: string, group: string, cert: Certificate, remote: string, authStarted: number): void {
    const revokedAt = recentlyRevoked.get(deviceId);
    if (revokedAt !== undefined && revokedAt >= authStarted) {
      ws.close(WS_CLOSE_CODES.revoked, 'revoked');
      return;
    }
    let socks = socketsByDevice.get(deviceId);
    if (!socks) socketsByDevice.set(deviceId, (socks = new Set()));
    socks.add(ws);
    ws.once('close', () => {
      if (socks.delete(ws) && socks.size === 0) socketsByDevice.delete(deviceId);
    });
    // At most maxPerDevice per device: the newest authenticated wins, the oldest (most likely a dead
    // connection the agent already left behind, or a second copy of the identity) goes.
    for (const old of socks) {
      if (socks.size <= deps.maxPerDevice) break;
      socks.delete(old);
      deps.metrics.inc('latchkey_agent_connections_replaced_total');
      old.close(WS_CLOSE_CODES.replaced, 'replaced by a newer connection of this device');
      // A peer that does not answer the close must not keep a slot for ws's 30 s closing timeout.
      setTimeout(() => old.terminate(), 1000).unref();
    }
    const conn: Conn = { id: randomUUID(), ws, group, info: { deviceId, since: deps.clock().toISOString(), agentVersion: null, serial: cert.serialHex, remote } };
    let greeted = false;
    let mismatchLogged = false;
    let deadline: NodeJS.Timeout;
    const arm = (seconds: number): void => {
      clearTimeout(deadline);
      deadline = setTimeout(() => ws.close(WS_CLOSE_CODES.heartbeatTimeout, 'no heartbeat'), seconds * 1000);
      deadline.unref();
    };
    arm(10);
    limitMessageRate(ws, {
      ...WS_MESSAGE_RATE,
      code: WS_CLOSE_CODES.tooManyMessages,
      onExceeded: () => {
        deps.metrics.inc('latchkey_ws_rate_limited_total', { endpoint: 'agent' });
        deps.log('an agent sent messages faster than allowed; closed', { deviceId, serial: cert.serialHex });
      },
    });
    ws.on('message', (data, isBinary) => {
      const msg = readWsMessage(ws, data, isBinary, checkAgentMessage, WS_CLOSE_CODES.protocolError);
      if (!msg) return;
      if (!greeted && msg.type !== 'hello') {
        ws.close(WS_CLOSE_CODES.protocolError, 'the first message must be hello');
        return;
      }
      arm(deps.heartbeatSeconds * 2.5);
      if (msg.type === 'hello') {
        if (msg.protocolVersion !== PROTOCOL_VERSION) {
          ws.close(WS_CLOSE_CODES.unsupportedVersion, `this server speaks protocol ${PROTOCOL_VERSION}`);
          return;
        }
        greeted = true;
        conn.info.agentVersion = msg.agentVersion;
        let set = byDevice.get(deviceId);
        if (!set) byDevice.set(deviceId, (set = new Set()));
        set.add(conn);
        count++;
        // Presence, and the device's last_seen and facts, written in the next batch.
        deps.presence.add({ id: conn.id, ...conn.info }, JSON.stringify(msg.facts));
        send(ws, { type: 'welcome', deviceId, heartbeatSeconds: deps.heartbeatSeconds });
        policyOf(group).then(
          (p) => p && send(ws, p),
          (e: Error) => deps.log('could not read the group policy', { err: e.message }),
        );
        deps.metrics.inc('latchkey_agent_connections_total');
      } else if (msg.type === 'heartbeat') {
        send(ws, { type: 'heartbeat-ack', seq: msg.seq });
      } else if (msg.type === 'status' && msg.serial !== cert.serialHex) {
        // The serial on record is the one the connection authenticated with; an agent's claim never replaces it.
        // (After a renewal the agent reconnects with its new certificate.)
        // Logged once per connection: a client repeating it cannot flood the log.
        deps.metrics.inc('latchkey_agent_status_serial_mismatch_total');
        if (!mismatchLogged) deps.log('an agent reported a serial other than the certificate it connected with; ignored', { deviceId, serial: cert.serialHex, claimed: msg.serial });
        mismatchLogged = true;
      }
    });
    ws.on('close', () => {
      clearTimeout(deadline);
      const set = byDevice.get(deviceId);
      if (set?.delete(conn)) {
        count--;
        deps.presence.remove(conn.id);
        if (set.size === 0) byDevice.delete(deviceId);
      }
    });
    ws.on('error', () => undefined);
  }

  const unsubscribe = deps.bus.subscribe((e) => {
    if (e.type === 'policy') {
      if (count === 0) {
        policies.delete(e.group);
        return;
      }
      policyOf(e.group, true).then(
        (p) => {
          if (!p) return;
          // To every agent of the group, in slices: tens of thousands of sends in one go would stall
          // heartbeats and requests for a second.
          const to: Conn[] = [];
          for (const set of byDevice.values()) for (const c of set) if (c.group === e.group) to.push(c);
          const slice = (i: number): void => {
            for (const c of to.slice(i, i + FANOUT_SLICE)) send(c.ws, p);
            if (i + FANOUT_SLICE < to.length) setImmediate(slice, i + FANOUT_SLICE);
          };
          slice(0);
        },
        (err: Error) => deps.log('could not read the group policy', { err: err.message }),
      );
      return;
    }
    if (e.type === 'renew-now') {
      for (const c of byDevice.get(e.deviceId) ?? []) send(c.ws, { type: 'renew-now', reason: 'requested by an administrator' });
      return;
    }
    if (e.type !== 'revocation') return;
    const now = Date.now();
    recentlyRevoked.set(e.deviceId, now);
    for (const [id, at] of recentlyRevoked) if (now - at > RECENT_MS) recentlyRevoked.delete(id);
    // Greeted or not (an agent still gathering its facts for hello): every socket of the device.
    for (const ws of socketsByDevice.get(e.deviceId) ?? []) {
      send(ws, { type: 'revoked', reason: e.reason as Extract<ServerMessage, { type: 'revoked' }>['reason'], revokedAt: e.at });
      ws.close(WS_CLOSE_CODES.revoked, 'revoked');
    }
  });

  return {
    handleUpgrade(req, socket, head) {
      // Full: refuse before the open-file limit is reached, so the server keeps answering everyone else.
      if (wss.clients.size + authenticating >= deps.maxConnections) {
        deps.metrics.inc('latchkey_agent_connections_refused_busy_total');
        if (Date.now() - lastFullLog > 60_000) {
          lastFullLog = Date.now();
          deps.log(`control channel full (${deps.maxConnections} connections, maxAgentConnections); agents are told to retry later`);
        }
        return refuseUpgrade(socket, 503, 'SERVER_BUSY', `this server holds ${deps.maxConnections} agent connections, its maximum; retry later`, { 'Retry-After': '60' });
      }
      authenticating++;
      const authStarted = Date.now();
      authenticate(req)
        .finally(() => authenticating--)
        .then(
        (r) => {
          if ('status' in r) return refuseUpgrade(socket, r.status, r.code, r.message);
          wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, r.deviceId, r.group, r.cert, req.socket.remoteAddress ?? '', authStarted));
        },
        (e: Error) => {
          deps.log('control channel authentication failed', { err: e.message });
          refuseUpgrade(socket, 500, 'INTERNAL', 'the server could not check the client certificate');
        },
      );
    },
    get size() {
      return count;
    },
    async close() {
      unsubscribe();
      for (const socks of socketsByDevice.values()) for (const ws of socks) ws.close(1001, 'server shutting down');
      // Peers that do not answer the closing handshake are cut off after a short grace.
      const cutoff = setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
      }, 2000);
      await new Promise<void>((r) => wss.close(() => r()));
      clearTimeout(cutoff);
    },
  };
}
