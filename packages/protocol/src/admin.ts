/** REST shapes of the admin API under `/v1/admin` (bearer admin tokens). */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DeviceFacts } from './facts.js';

/** RFC 5280 §5.3.1 CRLReason names and codes. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type CrlReasonName = keyof typeof CRL_REASONS;
/** Reasons an admin may give when revoking a device. */
export const RevokeReason = Type.Union(
  (['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const).map((r) => Type.Literal(r)),
  { $id: 'RevokeReason' },
);
export type RevokeReason = Static<typeof RevokeReason>;

export const AdminRole = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')], { $id: 'AdminRole' });
export type AdminRole = Static<typeof AdminRole>;

const Timestamp = Type.String({ format: 'date-time', maxLength: 40 });
const GroupName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' });
const Id = Type.String({ minLength: 1, maxLength: 64 });

export const GroupPolicy = Type.Object(
  {
    name: GroupName,
    certLifetimeSeconds: Type.Integer({ minimum: 60, maximum: 366 * 86400 }),
    requireApproval: Type.Boolean(),
  },
  { $id: 'GroupPolicy', additionalProperties: false },
);
export type GroupPolicy = Static<typeof GroupPolicy>;

export const TokenCreateRequest = Type.Object(
  {
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    /** Seconds, or a duration such as "24h", "30m", "7d". */
    ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 60, maximum: 365 * 86400 }), Type.String({ pattern: '^[1-9][0-9]{0,5}[smhd]$' })])),
    group: Type.Optional(GroupName),
  },
  { $id: 'TokenCreateRequest', additionalProperties: false },
);
export type TokenCreateRequest = Static<typeof TokenCreateRequest>;

export const TokenInfo = Type.Object(
  {
    id: Id,
    group: GroupName,
    uses: Type.Integer({ minimum: 1 }),
    usedCount: Type.Integer({ minimum: 0 }),
    expiresAt: Timestamp,
    revokedAt: Type.Union([Timestamp, Type.Null()]),
    createdAt: Timestamp,
  },
  { $id: 'TokenInfo', additionalProperties: false },
);
export type TokenInfo = Static<typeof TokenInfo>;

/** The only response that ever shows the token secret. */
export const TokenCreateResponse = Type.Object(
  { token: Type.String({ minLength: 20, maxLength: 200 }), info: TokenInfo },
  { $id: 'TokenCreateResponse', additionalProperties: false },
);
export type TokenCreateResponse = Static<typeof TokenCreateResponse>;

export const DeviceStatus = Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('revoked')], { $id: 'DeviceStatus' });
export type DeviceStatus = Static<typeof DeviceStatus>;

export const CertificateSummary = Type.Object(
  { serial: Type.String({ pattern: '^[0-9a-f]{1,42}$' }), notBefore: Timestamp, notAfter: Timestamp, revokedAt: Type.Optional(Type.Union([Timestamp, Type.Null()])) },
  { $id: 'CertificateSummary', additionalProperties: false },
);
export type CertificateSummary = Static<typeof CertificateSummary>;

export const Device = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String({ maxLength: 64 }),
    status: DeviceStatus,
    group: GroupName,
    facts: Type.Union([DeviceFacts, Type.Null()]),
    firstSeen: Timestamp,
    lastSeen: Type.Union([Timestamp, Type.Null()]),
    online: Type.Optional(Type.Object({ since: Timestamp }, { additionalProperties: false })),
    certificate: Type.Union([CertificateSummary, Type.Null()]),
    revokedAt: Type.Optional(Type.Union([Timestamp, Type.Null()])),
    revocationReason: Type.Optional(Type.Union([RevokeReason, Type.Null()])),
  },
  { $id: 'Device', additionalProperties: false },
);
export type Device = Static<typeof Device>;

export const DeviceListQuery = Type.Object(
  {
    status: Type.Optional(DeviceStatus),
    group: Type.Optional(GroupName),
    q: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { $id: 'DeviceListQuery', additionalProperties: false },
);
export type DeviceListQuery = Static<typeof DeviceListQuery>;

export const RevokeRequest = Type.Object({ reason: Type.Optional(RevokeReason) }, { $id: 'RevokeRequest', additionalProperties: false });
export type RevokeRequest = Static<typeof RevokeRequest>;

export const AuditEvent = Type.Object(
  {
    id: Id,
    at: Timestamp,
    actor: Type.String({ maxLength: 200 }),
    action: Type.String({ maxLength: 100 }),
    target: Type.Union([Type.String({ maxLength: 200 }), Type.Null()]),
    details: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'AuditEvent', additionalProperties: false },
);
export type AuditEvent = Static<typeof AuditEvent>;

/** A page of a list, with the cursor of the next page (null at the end). */
export const Page = <T extends TSchema>(item: T, id: string) =>
  Type.Object({ items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()]) }, { $id: id, additionalProperties: false });

export const DevicePage = Page(Device, 'DevicePage');
export type DevicePage = Static<typeof DevicePage>;
export const TokenPage = Page(TokenInfo, 'TokenPage');
export type TokenPage = Static<typeof TokenPage>;
export const AuditPage = Page(AuditEvent, 'AuditPage');
export type AuditPage = Static<typeof AuditPage>;
