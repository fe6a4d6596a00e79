/**
 * The agents' control channel, `wss://…/v1/agent` (docs/architecture.md
 * "Agent control channel"): one WebSocket per running agent, authenticated by
 * its device certificate at the upgrade (auth/device-cert-auth.ts, the check
 * re-enrollment makes, without its recovery window). Each connection runs in
 * channel-connection.ts; this hub admits upgrades, keeps who is connected,
 * pushes `revoked` and closes every connection of a device the moment the
 * revocation event arrives — from this replica or, over LISTEN/NOTIFY, from
 * any other — and sends a group's policy again to every connected agent of
 * the group when an administrator changes the group.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Certificate } from '@latchkey/pki';
import { MAX_WS_MESSAGE_BYTES, WS_CLOSE_CODES, type ServerMessage } from '@latchkey/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { peerCertificateDer } from '../auth/client-cert.js';
import type { DeviceCertAuth, DeviceCertRefusal } from '../auth/device-cert-auth.js';
import type { EventBus, ServerEvent } from '../events/event-bus.js';
import type { GroupsRepo } from '../groups/groups-repo.js';
import type { Metrics } from '../metrics.js';
import { refuseUpgrade } from '../upgrade-router.js';
import { attachAgent, type Conn, send } from './channel-connection.js';
import { connectionsToReplace } from './channel-fns.js';
import { createPolicyCache } from './channel-policy.js';
import type { Presence } from './presence.js';

export interface ChannelHub {
  /** Takes an HTTP upgrade to PATHS.agentChannel (see upgrade-router.ts). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Connections open now (all devices; who they are is in presence.ts, across replicas). */
  readonly size: number;
  close(): Promise<void>;
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

/** Sends per event-loop turn when a message goes to many agents. */
const FANOUT_SLICE = 500;

/** How long a device counts as just revoked (see recentlyRevoked). */
const RECENT_MS = 60_000;

export interface ChannelHubDeps {
  deviceCertAuth: DeviceCertAuth;
  groups: Pick<GroupsRepo, 'get'>;
  bus: Pick<EventBus, 'subscribe'>;
  clock: () => Date;
  metrics: Pick<Metrics, 'inc'>;
  presence: Pick<Presence, 'add' | 'remove'>;
  heartbeatSeconds: number;
  maxConnections: number;
  maxPerDevice: number;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

export function createChannelHub(deps: ChannelHubDeps): ChannelHub {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  /** Greeted connections (the agent said hello), by device. */
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
  const policies = createPolicyCache({ groups: deps.groups, heartbeatSeconds: deps.heartbeatSeconds });

  /** Who is knocking: the device behind the TLS client certificate, or why not. */
  async function authenticate(req: IncomingMessage): Promise<{ deviceId: string; group: string; cert: Certificate } | { status: number; code: string; message: string }> {
    // No recovery window here: an expired certificate renews (EST) before it connects.
    const v = await deps.deviceCertAuth(peerCertificateDer(req.socket), { recoveryGraceSeconds: 0 });
    if (!v.ok) return { status: v.reason === 'missing' ? 401 : 403, ...UPGRADE_REFUSALS[v.reason] };
    return { deviceId: v.record.device_id, group: v.record.group_name, cert: v.cert };
  }

  /** Tracks the device's socket, and closes its oldest beyond maxPerDevice. */
  function track(deviceId: string, ws: WebSocket): void {
    let socks = socketsByDevice.get(deviceId);
    if (!socks) socketsByDevice.set(deviceId, (socks = new Set()));
    socks.add(ws);
    ws.once('close', () => {
      if (socks.delete(ws) && socks.size === 0) socketsByDevice.delete(deviceId);
    });
    for (const old of connectionsToReplace([...socks], deps.maxPerDevice)) {
      socks.delete(old);
      deps.metrics.inc('latchkey_agent_connections_replaced_total');
      old.close(WS_CLOSE_CODES.replaced, 'replaced by a newer connection of this device');
      // A peer that does not answer the close must not keep a slot for ws's 30 s closing timeout.
      setTimeout(() => old.terminate(), 1000).unref();
    }
  }

  function onConnection(ws: WebSocket, who: { deviceId: string; group: string; serial: string; remote: string }, authStarted: number): void {
    const revokedAt = recentlyRevoked.get(who.deviceId);
    if (revokedAt !== undefined && revokedAt >= authStarted) {
      ws.close(WS_CLOSE_CODES.revoked, 'revoked');
      return;
    }
    track(who.deviceId, ws);
    attachAgent(ws, who, {
      heartbeatSeconds: deps.heartbeatSeconds,
      metrics: deps.metrics,
      policies,
      clock: deps.clock,
      log: deps.log,
      online(conn, factsJson) {
        let set = byDevice.get(who.deviceId);
        if (!set) byDevice.set(who.deviceId, (set = new Set()));
        set.add(conn);
        count++;
        deps.presence.add({ id: conn.id, ...conn.info }, factsJson);
      },
      offline(conn) {
        const set = byDevice.get(who.deviceId);
        if (!set?.delete(conn)) return;
        count--;
        deps.presence.remove(conn.id);
        if (set.size === 0) byDevice.delete(who.deviceId);
      },
    });
  }

  /** A group's new policy to every agent of the group, in slices: tens of thousands of sends in one go would stall heartbeats and requests for a second. */
  function pushPolicy(group: string): void {
    if (count === 0) {
      policies.drop(group);
      return;
    }
    policies.get(group, true).then(
      (p) => {
        if (!p) return;
        const to: Conn[] = [];
        for (const set of byDevice.values()) for (const c of set) if (c.group === group) to.push(c);
        const slice = (i: number): void => {
          for (const c of to.slice(i, i + FANOUT_SLICE)) send(c.ws, p);
          if (i + FANOUT_SLICE < to.length) setImmediate(slice, i + FANOUT_SLICE);
        };
        slice(0);
      },
      (err: Error) => deps.log('could not read the group policy', { err: err.message }),
    );
  }

  function onRevocation(e: Extract<ServerEvent, { type: 'revocation' }>): void {
    const now = Date.now();
    recentlyRevoked.set(e.deviceId, now);
    for (const [id, at] of recentlyRevoked) if (now - at > RECENT_MS) recentlyRevoked.delete(id);
    // Greeted or not (an agent still gathering its facts for hello): every socket of the device.
    for (const ws of socketsByDevice.get(e.deviceId) ?? []) {
      send(ws, { type: 'revoked', reason: e.reason as Extract<ServerMessage, { type: 'revoked' }>['reason'], revokedAt: e.at });
      ws.close(WS_CLOSE_CODES.revoked, 'revoked');
    }
  }

  const unsubscribe = deps.bus.subscribe((e) => {
    if (e.type === 'policy') pushPolicy(e.group);
    else if (e.type === 'renew-now') for (const c of byDevice.get(e.deviceId) ?? []) send(c.ws, { type: 'renew-now', reason: 'requested by an administrator' });
    else if (e.type === 'revocation') onRevocation(e);
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
            wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, { deviceId: r.deviceId, group: r.group, serial: r.cert.serialHex, remote: req.socket.remoteAddress ?? '' }, authStarted));
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
