/**
 * What the admin web console reads beyond the admin API's lists: the
 * overview (`GET /v1/admin/overview`), the audit log's filters
 * (`GET /v1/admin/audit`) and the live stream (`GET /v1/admin/live`,
 * server-sent events). The devices list's sort, order and online filter are
 * in DeviceListQuery (admin.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import { type AuditEvent, Device, RevokeReason } from './admin.js';
import { BoundedText, embed, SerialHex, Timestamp, Uuid } from './common.js';

// ------------------------------------------------------- overview
/** `GET /v1/admin/overview` query string. */
export const OverviewQuery = Type.Object(
  {
    /** "Expiring soon" means within this many seconds (default 86400, at most 90 days). */
    expiringWithinSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 90 * 86400 })),
  },
  { $id: 'OverviewQuery', additionalProperties: false },
);
export type OverviewQuery = Static<typeof OverviewQuery>;

const CrlAge = Type.Union([
  Type.Object({ crlNumber: Type.Integer({ minimum: 0 }), thisUpdate: Timestamp(), nextUpdate: Timestamp(), ageSeconds: Type.Integer() }),
  Type.Null(),
]);

/** One gateway stream connected to `/v1/events` on the replica that answered. */
export const ConnectedGateway = Type.Object(
  {
    tokenId: Uuid(),
    name: BoundedText(100),
    remote: BoundedText(100),
    connectedAt: Timestamp(),
    /** When an event was last sent on the stream; null before the first. */
    lastEventAt: Type.Union([Timestamp(), Type.Null()]),
    /** Persisted events (revocations, CRL updates) not yet sent on it. */
    behindEvents: Type.Integer({ minimum: 0 }),
    /** Bytes queued on the socket, unsent (a gateway that does not keep up). */
    backlogBytes: Type.Integer({ minimum: 0 }),
  },
  { $id: 'ConnectedGateway' },
);
export type ConnectedGateway = Static<typeof ConnectedGateway>;

export const ConsoleOverview = Type.Object(
  {
    at: Timestamp(),
    devices: Type.Object({ pending: Type.Integer(), active: Type.Integer(), revoked: Type.Integer(), denied: Type.Integer(), total: Type.Integer() }),
    /** Devices with an agent connected now (any replica). */
    online: Type.Integer({ minimum: 0 }),
    /** The oldest 10 pending devices. */
    pendingApprovals: Type.Array(embed(Device)),
    /** Active devices whose current certificate ends within `withinSeconds` (and has not ended); the first 10 by notAfter. */
    expiringSoon: Type.Object({
      withinSeconds: Type.Integer(),
      count: Type.Integer({ minimum: 0 }),
      items: Type.Array(Type.Object({ deviceId: Uuid(), name: BoundedText(64), serial: SerialHex(), notAfter: Timestamp() })),
    }),
    /** The last 10 device revocations (audit log). */
    recentRevocations: Type.Array(
      Type.Object({ deviceId: Uuid(), name: BoundedText(64), at: Timestamp(), reason: Type.Union([embed(RevokeReason), Type.Null()]), actor: BoundedText(200) }),
    ),
    crl: Type.Object({ issuing: CrlAge, root: CrlAge }),
    gateways: Type.Array(embed(ConnectedGateway)),
  },
  { $id: 'ConsoleOverview' },
);
export type ConsoleOverview = Static<typeof ConsoleOverview>;

// ------------------------------------------------------- audit
/** `GET /v1/admin/audit` query string: newest first; filters combine. */
export const AuditListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    /** A previous page's nextCursor (an audit id): older rows. */
    before: Type.Optional(Type.Integer({ minimum: 1 })),
    action: Type.Optional(Type.String({ maxLength: 100 })),
    /** Exact target, e.g. a device id. */
    target: Type.Optional(Type.String({ maxLength: 200 })),
    /** Exact actor, e.g. "user:alice@example.com" or "admin:ci". */
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** Rows at or after this time. */
    since: Type.Optional(Timestamp()),
    /** Rows before this time. */
    until: Type.Optional(Timestamp()),
  },
  { $id: 'AuditListQuery', additionalProperties: false },
);
export type AuditListQuery = Static<typeof AuditListQuery>;

// ------------------------------------------------------- live stream
/** `event:` names of `GET /v1/admin/live`. */
export const LIVE_EVENTS = ['audit', 'presence', 'revocation', 'issuance', 'device-approved', 'policy'] as const;
export type LiveEventName = (typeof LIVE_EVENTS)[number];

/** `event: presence`: sent when who is online changes. */
export interface LivePresence {
  online: number;
}

/** The `data:` of each live event, by its name (bus events as the server publishes them). */
export interface LiveEventData {
  audit: AuditEvent;
  presence: LivePresence;
  revocation: { type: 'revocation'; deviceId: string; crlNumber: number; reason: string; at: string };
  issuance: { type: 'issuance'; deviceId: string; serial: string; kind: 'enroll' | 'renew' | 'recover'; at: string };
  'device-approved': { type: 'device-approved'; deviceId: string; at: string };
  policy: { type: 'policy'; group: string; at: string };
}

/** Streams one process serves at once, and one credential (cookie session or token) may hold. */
export const LIVE_LIMITS = { perProcess: 500, perCredential: 10, pingSeconds: 15 } as const;
