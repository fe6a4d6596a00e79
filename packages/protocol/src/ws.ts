/**
 * WebSocket messages. Every message is JSON with a `type` discriminator.
 *  - `/v1/agent` (device mTLS): agent ↔ server control channel.
 *  - `/v1/events` (gateway token): revocations and CRL updates for gateways,
 *    each with an opaque monotonic cursor so a gateway can resume.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DeviceFacts } from './facts.js';
import { RevokeReason } from './admin.js';

const Timestamp = Type.String({ format: 'date-time', maxLength: 40 });
const Serial = Type.String({ pattern: '^[0-9a-f]{1,42}$' });
const Cursor = Type.String({ minLength: 1, maxLength: 64 });
const strict = { additionalProperties: false } as const;

// ------------------------------------------------------- agent → server
export const AgentHello = Type.Object(
  {
    type: Type.Literal('hello'),
    protocolVersion: Type.Integer({ minimum: 1 }),
    agentVersion: Type.String({ maxLength: 64 }),
    facts: DeviceFacts,
  },
  { $id: 'AgentHello', ...strict },
);
export const AgentStatus = Type.Object(
  {
    type: Type.Literal('status'),
    serial: Serial,
    notAfter: Timestamp,
    keystore: Type.Union([Type.Literal('os'), Type.Literal('pkcs11'), Type.Literal('file')]),
    lastError: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { $id: 'AgentStatus', ...strict },
);
export const Heartbeat = Type.Object({ type: Type.Literal('heartbeat'), seq: Type.Integer({ minimum: 0 }) }, { $id: 'Heartbeat', ...strict });

export const AgentMessage = Type.Union([AgentHello, AgentStatus, Heartbeat], { $id: 'AgentMessage' });
export type AgentMessage = Static<typeof AgentMessage>;

// ------------------------------------------------------- server → agent
export const ServerWelcome = Type.Object(
  { type: Type.Literal('welcome'), deviceId: Type.String({ format: 'uuid' }), heartbeatSeconds: Type.Integer({ minimum: 1, maximum: 3600 }) },
  { $id: 'ServerWelcome', ...strict },
);
export const ServerRevoked = Type.Object(
  { type: Type.Literal('revoked'), reason: RevokeReason, revokedAt: Timestamp },
  { $id: 'ServerRevoked', ...strict },
);
export const ServerRenewNow = Type.Object(
  { type: Type.Literal('renew-now'), reason: Type.Optional(Type.String({ maxLength: 200 })) },
  { $id: 'ServerRenewNow', ...strict },
);
export const ServerPolicy = Type.Object(
  {
    type: Type.Literal('policy'),
    certLifetimeSeconds: Type.Integer({ minimum: 60 }),
    renewFraction: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }),
    heartbeatSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
  },
  { $id: 'ServerPolicy', ...strict },
);
export const HeartbeatAck = Type.Object({ type: Type.Literal('heartbeat-ack'), seq: Type.Integer({ minimum: 0 }) }, { $id: 'HeartbeatAck', ...strict });

export const ServerMessage = Type.Union([ServerWelcome, ServerRevoked, ServerRenewNow, ServerPolicy, HeartbeatAck], { $id: 'ServerMessage' });
export type ServerMessage = Static<typeof ServerMessage>;

// ------------------------------------------------------- gateway event stream
export const Subscribe = Type.Object({ type: Type.Literal('subscribe'), since: Type.Optional(Cursor) }, { $id: 'Subscribe', ...strict });
export type Subscribe = Static<typeof Subscribe>;

export const RevocationEvent = Type.Object(
  {
    type: Type.Literal('revocation'),
    cursor: Cursor,
    deviceId: Type.String({ format: 'uuid' }),
    serials: Type.Array(Serial, { maxItems: 1000 }),
    issuer: Type.Union([Type.Literal('issuing'), Type.Literal('root')]),
    reason: RevokeReason,
    at: Timestamp,
  },
  { $id: 'RevocationEvent', ...strict },
);
export const CrlUpdatedEvent = Type.Object(
  {
    type: Type.Literal('crl-updated'),
    cursor: Cursor,
    issuer: Type.Union([Type.Literal('issuing'), Type.Literal('root')]),
    crlNumber: Type.String({ pattern: '^[0-9]{1,48}$' }),
    url: Type.String({ maxLength: 2000 }),
  },
  { $id: 'CrlUpdatedEvent', ...strict },
);
/** The server cannot replay from the gateway's cursor: fetch the CRLs afresh. */
export const ResyncRequired = Type.Object({ type: Type.Literal('resync-required'), cursor: Cursor }, { $id: 'ResyncRequired', ...strict });

export const GatewayEvent = Type.Union([RevocationEvent, CrlUpdatedEvent, ResyncRequired], { $id: 'GatewayEvent' });
export type GatewayEvent = Static<typeof GatewayEvent>;
