/**
 * WebSocket messages: one JSON object per text frame, discriminated by `type`.
 *  - `/v1/agent` (device mTLS): the control channel between agent and server.
 *  - `/v1/events` (gateway token): revocations and CRL updates for gateways,
 *    each with a cursor so a gateway can resume where it left off.
 * What the server receives is closed (`additionalProperties: false`); what
 * it sends is open, so it may add fields without a protocol version bump.
 */
import { Type, type Static } from '@sinclair/typebox';
import { BoundedText, Cursor, embed, SerialHex, Timestamp, Uuid } from './common.js';
import { CrlIssuer } from './est.js';
import { DeviceFacts } from './facts.js';
import { RevokeReason } from './admin.js';
import { KEYSTORE_KINDS, POLICY_LIMITS } from './wire.js';

export { MAX_WS_MESSAGE_BYTES, WS_CLOSE_CODES, KEYSTORE_KINDS, DEFAULT_RENEW_FRACTION, POLICY_LIMITS, type AgentPolicy, agentPolicyOf } from './wire.js';

const HeartbeatSeconds = () => Type.Integer({ minimum: POLICY_LIMITS.heartbeatSeconds.min, maximum: POLICY_LIMITS.heartbeatSeconds.max });
const Seq = () => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const closed = { additionalProperties: false } as const;

// ------------------------------------------------------- agent → server
export const KeystoreKind = Type.Union(KEYSTORE_KINDS.map((k) => Type.Literal(k)), { $id: 'KeystoreKind' });
export type KeystoreKind = Static<typeof KeystoreKind>;

/** First message on a new connection. */
export const AgentHello = Type.Object(
  {
    type: Type.Literal('hello'),
    protocolVersion: Type.Integer({ minimum: 1, maximum: 1000 }),
    agentVersion: BoundedText(64, { minLength: 1 }),
    facts: embed(DeviceFacts),
  },
  { $id: 'AgentHello', ...closed },
);
export type AgentHello = Static<typeof AgentHello>;

/** The agent's current identity, after hello and after every renewal. */
export const AgentStatus = Type.Object(
  {
    type: Type.Literal('status'),
    serial: SerialHex(),
    notAfter: Timestamp(),
    keystore: embed(KeystoreKind),
    /** The last renewal failure, if the latest attempt failed. */
    lastError: Type.Optional(BoundedText(1000)),
  },
  { $id: 'AgentStatus', ...closed },
);
export type AgentStatus = Static<typeof AgentStatus>;

export const AgentHeartbeat = Type.Object({ type: Type.Literal('heartbeat'), seq: Seq() }, { $id: 'AgentHeartbeat', ...closed });
export type AgentHeartbeat = Static<typeof AgentHeartbeat>;

export const AgentMessage = Type.Union([embed(AgentHello), embed(AgentStatus), embed(AgentHeartbeat)], { $id: 'AgentMessage' });
export type AgentMessage = Static<typeof AgentMessage>;

// ------------------------------------------------------- server → agent
/** Answer to hello. */
export const ServerWelcome = Type.Object(
  { type: Type.Literal('welcome'), deviceId: Uuid(), heartbeatSeconds: HeartbeatSeconds() },
  { $id: 'ServerWelcome' },
);
export type ServerWelcome = Static<typeof ServerWelcome>;

/** The device was revoked; the server closes the connection right after. */
export const ServerRevoked = Type.Object(
  { type: Type.Literal('revoked'), reason: embed(RevokeReason), revokedAt: Timestamp() },
  { $id: 'ServerRevoked' },
);
export type ServerRevoked = Static<typeof ServerRevoked>;

/** Renew now rather than at the scheduled time (e.g. the policy changed). */
export const ServerRenewNow = Type.Object(
  { type: Type.Literal('renew-now'), reason: Type.Optional(BoundedText(200)) },
  { $id: 'ServerRenewNow' },
);
export type ServerRenewNow = Static<typeof ServerRenewNow>;

/** The device's group policy; sent after welcome and whenever it changes. */
export const ServerPolicy = Type.Object(
  {
    type: Type.Literal('policy'),
    certLifetimeSeconds: Type.Integer({ minimum: POLICY_LIMITS.certLifetimeSeconds.min, maximum: POLICY_LIMITS.certLifetimeSeconds.max }),
    /** Renew when this fraction of the lifetime has passed (default 2/3, before jitter). */
    renewFraction: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }),
    heartbeatSeconds: HeartbeatSeconds(),
  },
  { $id: 'ServerPolicy' },
);
export type ServerPolicy = Static<typeof ServerPolicy>;

/** Echoes the heartbeat's seq. */
export const ServerHeartbeatAck = Type.Object({ type: Type.Literal('heartbeat-ack'), seq: Seq() }, { $id: 'ServerHeartbeatAck' });
export type ServerHeartbeatAck = Static<typeof ServerHeartbeatAck>;

export const ServerMessage = Type.Union([embed(ServerWelcome), embed(ServerRevoked), embed(ServerRenewNow), embed(ServerPolicy), embed(ServerHeartbeatAck)], { $id: 'ServerMessage' });
export type ServerMessage = Static<typeof ServerMessage>;

// ------------------------------------------------------- gateway event stream
/** Gateway → server: start (or resume after `since`) the stream. Without `since`, only new events. */
export const GatewaySubscribe = Type.Object({ type: Type.Literal('subscribe'), since: Type.Optional(Cursor()) }, { $id: 'GatewaySubscribe', ...closed });
export type GatewaySubscribe = Static<typeof GatewaySubscribe>;

/**
 * A device was revoked. The event names the device and the first CRL number
 * of `issuer` that lists its certificates; it carries no list of serials, so
 * it stays small however many certificates the device held. A gateway whose
 * applied CRL has that number (or a later one) has nothing to fetch.
 */
export const RevocationEvent = Type.Object(
  {
    type: Type.Literal('revocation'),
    cursor: Cursor(),
    deviceId: Uuid(),
    /** RFC 5280 §5.2.3 CRLNumber in decimal of the first `issuer` CRL listing this revocation. */
    crlNumber: Type.String({ pattern: '^(0|[1-9][0-9]{0,48})$' }),
    issuer: embed(CrlIssuer),
    reason: embed(RevokeReason),
    at: Timestamp(),
  },
  { $id: 'RevocationEvent' },
);
export type RevocationEvent = Static<typeof RevocationEvent>;

/** A new CRL is published at `url` (absolute, or a path on the server). */
export const CrlUpdatedEvent = Type.Object(
  {
    type: Type.Literal('crl-updated'),
    cursor: Cursor(),
    issuer: embed(CrlIssuer),
    /** RFC 5280 §5.2.3 CRLNumber in decimal (up to 20 octets, so a string). */
    crlNumber: Type.String({ pattern: '^(0|[1-9][0-9]{0,48})$' }),
    url: Type.String({ minLength: 1, maxLength: 2000 }),
  },
  { $id: 'CrlUpdatedEvent' },
);
export type CrlUpdatedEvent = Static<typeof CrlUpdatedEvent>;

/** The server cannot replay from the gateway's cursor: fetch the CRLs afresh, then go on from `cursor`. */
export const ResyncRequiredEvent = Type.Object({ type: Type.Literal('resync-required'), cursor: Cursor() }, { $id: 'ResyncRequiredEvent' });
export type ResyncRequiredEvent = Static<typeof ResyncRequiredEvent>;

export const GatewayEvent = Type.Union([embed(RevocationEvent), embed(CrlUpdatedEvent), embed(ResyncRequiredEvent)], { $id: 'GatewayEvent' });
export type GatewayEvent = Static<typeof GatewayEvent>;
