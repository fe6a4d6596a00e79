/**
 * The control channel's decisions, pure: what an agent's message leads to,
 * which connections of a device give way to a newer one, the policy message
 * of a group. channel-connection.ts and channel-hub.ts do what they say.
 */
import { type AgentMessage, DEFAULT_RENEW_FRACTION, PROTOCOL_VERSION, WS_CLOSE_CODES, type ServerMessage } from '@latchkey/protocol';

export type MessageAction =
  | { do: 'close'; code: number; reason: string }
  /** The hello of a supported protocol version: the agent is now online. */
  | { do: 'greet'; agentVersion: string; factsJson: string }
  | { do: 'ack'; seq: number }
  /** A status naming a serial other than the certificate the connection authenticated with: counted, ignored. */
  | { do: 'serial-mismatch'; claimed: string }
  | { do: 'nothing' };

/** What a (schema-valid) message from an agent leads to; `greeted` says whether its hello came already. */
export function nextForMessage(conn: { greeted: boolean; serial: string }, msg: AgentMessage): MessageAction {
  if (!conn.greeted && msg.type !== 'hello') return { do: 'close', code: WS_CLOSE_CODES.protocolError, reason: 'the first message must be hello' };
  if (msg.type === 'hello') {
    if (msg.protocolVersion !== PROTOCOL_VERSION) return { do: 'close', code: WS_CLOSE_CODES.unsupportedVersion, reason: `this server speaks protocol ${PROTOCOL_VERSION}` };
    return { do: 'greet', agentVersion: msg.agentVersion, factsJson: JSON.stringify(msg.facts) };
  }
  if (msg.type === 'heartbeat') return { do: 'ack', seq: msg.seq };
  // The serial on record is the one the connection authenticated with; an agent's claim never replaces it.
  // (After a renewal the agent reconnects with its new certificate.)
  if (msg.type === 'status' && msg.serial !== conn.serial) return { do: 'serial-mismatch', claimed: msg.serial };
  return { do: 'nothing' };
}

/**
 * At most `max` connections per device: the newest authenticated wins, the
 * oldest (most likely a dead connection the agent already left behind, or a
 * second copy of the identity) go. `open` is in connection order.
 */
export const connectionsToReplace = <T>(open: readonly T[], max: number): T[] => open.slice(0, Math.max(0, open.length - max));

/** The `policy` message of a group, serialized once for all its agents. */
export const policyMessage = (g: { cert_lifetime_seconds: number }, heartbeatSeconds: number): string =>
  JSON.stringify({ type: 'policy', certLifetimeSeconds: g.cert_lifetime_seconds, renewFraction: DEFAULT_RENEW_FRACTION, heartbeatSeconds } satisfies ServerMessage);
