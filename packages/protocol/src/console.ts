/**
 * What the admin web console reads beyond the admin API's lists: its own
 * session and sign-in options (`/v1/console/*`), the overview
 * (`GET /v1/admin/overview`), the audit log's filters (`GET /v1/admin/audit`)
 * and the live stream (`GET /v1/admin/live`, server-sent events). The devices
 * list's sort, order and online filter are in DeviceListQuery (admin.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import { AdminRole, type AuditEvent, Device, RevokeReason } from './admin.js';
import { BoundedText, embed, SerialHex, Timestamp, Uuid } from './common.js';

// ------------------------------------------------------- console sign-in
/** `GET /v1/console/session`: who the browser (or a bearer token) is signed in as. */
export const ConsoleSession = Type.Object(
  {
    /** As the audit log writes it, e.g. "user:alice@example.com" or "admin:ci". */
    actor: BoundedText(200),
    role: embed(AdminRole),
    /** 'session' for a console cookie, 'token' for a bearer admin token. */
    kind: Type.Union([Type.Literal('session'), Type.Literal('token')]),
    /** The person's email for an identity-provider sign-in; null otherwise. */
    user: Type.Union([BoundedText(254), Type.Null()]),
    /** When the session (or token) ends; null for a token that does not. */
    expiresAt: Type.Union([Timestamp(), Type.Null()]),
    /** The `x-latchkey-csrf` header's value for changes; null without a console cookie (bearer). */
    csrfToken: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
    /** The server's URL, as `latchkey enroll --server` takes it. */
    serverUrl: Type.String({ maxLength: 2000 }),
    /** SHA-256 hex of the root CA, as `latchkey enroll --ca-fingerprint` takes it. */
    caFingerprint: Type.String({ pattern: '^[0-9a-f]{64}$', maxLength: 64 }),
  },
  { $id: 'ConsoleSession' },
);
export type ConsoleSession = Static<typeof ConsoleSession>;

/** `GET /v1/console/sign-in-options`. */
export const ConsoleSignInOptions = Type.Object(
  {
    providers: Type.Array(Type.Object({ issuer: Type.String({ maxLength: 300 }), name: BoundedText(300) })),
    /** True only while no identity provider is configured. */
    tokenSignIn: Type.Boolean(),
  },
  { $id: 'ConsoleSignInOptions' },
);
export type ConsoleSignInOptions = Static<typeof ConsoleSignInOptions>;

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

/** A CRL's number, validity and age (seconds since thisUpdate). */
export const CrlAge = Type.Object(
  { crlNumber: Type.Integer({ minimum: 0 }), thisUpdate: Timestamp(), nextUpdate: Timestamp(), ageSeconds: Type.Integer() },
  { $id: 'CrlAge' },
);
export type CrlAge = Static<typeof CrlAge>;
const CrlAgeOrNull = Type.Union([embed(CrlAge), Type.Null()]);

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
    crl: Type.Object({ issuing: CrlAgeOrNull, root: CrlAgeOrNull }),
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
// LIVE_EVENTS, the `event:` names, are a plain list in wire.ts (the console uses it without TypeBox).
export { LIVE_EVENTS, type LiveEventName, CONSOLE_PATHS, CSRF_HEADER } from './wire.js';

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
