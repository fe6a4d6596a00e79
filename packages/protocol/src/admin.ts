/**
 * REST shapes of the admin API under `/v1/admin` (bearer admin tokens).
 * Requests are closed (`additionalProperties: false`: a misspelt field is a
 * 400, not silently ignored); responses are open, so the server may add
 * fields without breaking older clients.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { BoundedText, embed, SerialHex, Timestamp, Uuid } from './common.js';
import { DeviceFacts } from './facts.js';
import { AssuranceLevel } from './attestation.js';
import { ADMIN_ROLES, ATTESTATION_MODES, CRL_REASONS, type CrlReasonName, DEVICE_SORTS, DEVICE_STATUSES, REVOKE_REASONS, SORT_ORDERS } from './wire.js';

// ------------------------------------------------------- revocation reasons
// CRL_REASONS and REVOKE_REASONS are plain lists in wire.ts (the console uses them without TypeBox).
export { CRL_REASONS, type CrlReasonName, REVOKE_REASONS } from './wire.js';
export const RevokeReason = Type.Union(REVOKE_REASONS.map((r) => Type.Literal(r)), { $id: 'RevokeReason' });
export type RevokeReason = Static<typeof RevokeReason>;

// ------------------------------------------------------- roles and groups
// ADMIN_ROLES (in order) and roleAtLeast are in wire.ts (the console uses them without TypeBox).
export { ADMIN_ROLES, roleAtLeast } from './wire.js';
/** Each role can do what the previous one can: viewer reads, operator also issues tokens and approves/revokes devices, admin also sets policy. */
export const AdminRole = Type.Union(ADMIN_ROLES.map((r) => Type.Literal(r)), { $id: 'AdminRole' });
export type AdminRole = Static<typeof AdminRole>;

/** Lower-case letters, digits, `-` and `_`, starting with a letter or digit, at most 63 characters. */
export const GROUP_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
/** Opaque position in a paginated list, from a previous page's `nextCursor`. */
const PageCursor = () => Type.String({ minLength: 1, maxLength: 200 });
const GroupName = () => Type.String({ pattern: GROUP_NAME_PATTERN, maxLength: 63 });

export const AttestationMode = Type.Union(ATTESTATION_MODES.map((m) => Type.Literal(m)), { $id: 'AttestationMode' });
export type AttestationMode = Static<typeof AttestationMode>;

/** Policy of a token group (`PUT /v1/admin/groups/:name` takes it without `name`). */
export const GroupPolicy = Type.Object(
  {
    name: GroupName(),
    certLifetimeSeconds: Type.Integer({ minimum: 5, maximum: 366 * 86400 }),
    requireApproval: Type.Boolean(),
    /** `tpm`: only a TPM-attested device key enrolls or renews (issue 14); `none`: any key the CSR policy allows. */
    attestation: embed(AttestationMode),
    /** With `tpm`: the device's EK must also be in the registered devices (`devices register`). */
    requireRegisteredEk: Type.Boolean(),
  },
  { $id: 'GroupPolicy', additionalProperties: false },
);
export type GroupPolicy = Static<typeof GroupPolicy>;

// ------------------------------------------------------- registered devices (EK inventory)
export { ATTESTATION_MODES, REGISTERED_DEVICES_IMPORT_LIMITS } from './wire.js';
/** SHA-256 (lower-case hex) of the EK public key's SubjectPublicKeyInfo DER. */
export const EK_HASH_PATTERN = '^[0-9a-f]{64}$';
const EkHash = () => Type.String({ pattern: EK_HASH_PATTERN, minLength: 64, maxLength: 64 });

/** `POST /v1/admin/registered-devices`: exactly one of `ekCertPem` and `ekHash`. */
export const RegisteredDeviceCreateRequest = Type.Object(
  {
    ekCertPem: Type.Optional(Type.String({ minLength: 1, maxLength: 16384 })),
    ekHash: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', minLength: 64, maxLength: 64 })),
    name: Type.Optional(BoundedText(64, { minLength: 1 })),
    group: Type.Optional(GroupName()),
  },
  { $id: 'RegisteredDeviceCreateRequest', additionalProperties: false },
);
export type RegisteredDeviceCreateRequest = Static<typeof RegisteredDeviceCreateRequest>;

/** A device registered in advance by its TPM's endorsement key. */
export const RegisteredDevice = Type.Object(
  {
    id: Uuid(),
    ekHash: EkHash(),
    /** From the EK certificate's SAN (TCG manufacturer attribute, e.g. "id:53544D20"), when registered by certificate. */
    manufacturer: Type.Union([BoundedText(200), Type.Null()]),
    hasEkCert: Type.Boolean(),
    name: Type.Union([BoundedText(64), Type.Null()]),
    group: Type.Union([GroupName(), Type.Null()]),
    createdAt: Timestamp(),
    createdBy: BoundedText(300),
    /** The device that enrolled with this EK, once one has. */
    usedByDevice: Type.Union([Uuid(), Type.Null()]),
  },
  { $id: 'RegisteredDevice' },
);
export type RegisteredDevice = Static<typeof RegisteredDevice>;

/** `GET /v1/admin/registered-devices` query string. */
export const RegisteredDeviceListQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), cursor: Type.Optional(PageCursor()) },
  { $id: 'RegisteredDeviceListQuery', additionalProperties: false },
);
export type RegisteredDeviceListQuery = Static<typeof RegisteredDeviceListQuery>;

/** `POST /v1/admin/registered-devices/import`: every row was added (all or nothing). */
export const RegisteredDeviceImportResult = Type.Object({ imported: Type.Integer({ minimum: 0 }) }, { $id: 'RegisteredDeviceImportResult' });
export type RegisteredDeviceImportResult = Static<typeof RegisteredDeviceImportResult>;

// ------------------------------------------------------- enrollment tokens
/** `POST /v1/admin/tokens`. Defaults: uses 1, ttl 24h, group "default". */
export const TokenCreateRequest = Type.Object(
  {
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    /** Seconds, or a duration such as "30m", "24h", "7d". */
    ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 60, maximum: 365 * 86400 }), Type.String({ pattern: '^[1-9][0-9]{0,5}[smhd]$', maxLength: 7 })])),
    group: Type.Optional(GroupName()),
  },
  { $id: 'TokenCreateRequest', additionalProperties: false },
);
export type TokenCreateRequest = Static<typeof TokenCreateRequest>;

/** A token as listed: never its secret (the server keeps only a hash). */
export const TokenInfo = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    group: GroupName(),
    uses: Type.Integer({ minimum: 1 }),
    usedCount: Type.Integer({ minimum: 0 }),
    expiresAt: Timestamp(),
    revokedAt: Type.Union([Timestamp(), Type.Null()]),
    createdAt: Timestamp(),
  },
  { $id: 'TokenInfo' },
);
export type TokenInfo = Static<typeof TokenInfo>;

/** The only response that ever shows the token secret. */
export const TokenCreateResponse = Type.Object(
  { token: Type.String({ minLength: 20, maxLength: 200 }), info: embed(TokenInfo) },
  { $id: 'TokenCreateResponse' },
);
export type TokenCreateResponse = Static<typeof TokenCreateResponse>;

// ------------------------------------------------------- devices
export { DEVICE_STATUSES } from './wire.js';
/** `denied`: refused while pending (`devices deny`), for good; never had a certificate. */
export const DeviceStatus = Type.Union(DEVICE_STATUSES.map((s) => Type.Literal(s)), { $id: 'DeviceStatus' });
export type DeviceStatus = Static<typeof DeviceStatus>;

/** The device's current (latest) certificate. */
export const CertificateSummary = Type.Object(
  {
    serial: SerialHex(),
    notBefore: Timestamp(),
    notAfter: Timestamp(),
    revokedAt: Type.Optional(Type.Union([Timestamp(), Type.Null()])),
  },
  { $id: 'CertificateSummary' },
);
export type CertificateSummary = Static<typeof CertificateSummary>;

const deviceFields = {
  id: Uuid(),
  /** The certificate's CN (RFC 5280 ub-common-name: 64). */
  name: BoundedText(64),
  status: embed(DeviceStatus),
  group: GroupName(),
  /** The person the device is bound to (verified email from the identity provider), or null. */
  user: Type.Optional(Type.Union([BoundedText(254), Type.Null()])),
  facts: Type.Union([embed(DeviceFacts), Type.Null()]),
  firstSeen: Timestamp(),
  lastSeen: Type.Union([Timestamp(), Type.Null()]),
  /** Whether the control channel is connected now; absent when the server does not track it. */
  online: Type.Optional(Type.Boolean()),
  certificate: Type.Union([embed(CertificateSummary), Type.Null()]),
  revokedAt: Type.Optional(Type.Union([Timestamp(), Type.Null()])),
  revocationReason: Type.Optional(Type.Union([embed(RevokeReason), Type.Null()])),
  /**
   * How much the server knows about where the device key lives: `tpm-attested`
   * once an enrollment proved the key is in the TPM of the EK below (issue 14);
   * `software` otherwise. Absent from servers before issue 14.
   */
  assurance: Type.Optional(embed(AssuranceLevel)),
  /** The TPM of an attested device; null for software devices. */
  tpm: Type.Optional(
    Type.Union([
      Type.Object(
        {
          /** SHA-256 hex of the EK's SubjectPublicKeyInfo (as `devices register --ek-hash`). */
          ekHash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
          /** How the EK was trusted: its certificate chains to a configured TPM manufacturer root, or an admin registered its hash. */
          ekTrust: Type.Union([Type.Literal('certificate'), Type.Literal('registered')]),
          /** TPM manufacturer from the EK certificate's SAN (e.g. "id:53544D20"), when it had one. */
          manufacturer: Type.Union([BoundedText(64), Type.Null()]),
          /** When the latest attested enrollment or renewal was verified. */
          attestedAt: Timestamp(),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
  ),
};

export const Device = Type.Object(deviceFields, { $id: 'Device' });
export type Device = Static<typeof Device>;

/** One certificate in a device's history. */
export const CertificateRecord = Type.Object(
  {
    serial: SerialHex(),
    kind: Type.Union([Type.Literal('enroll'), Type.Literal('renew'), Type.Literal('recover')]),
    notBefore: Timestamp(),
    notAfter: Timestamp(),
    issuedAt: Timestamp(),
    revokedAt: Type.Union([Timestamp(), Type.Null()]),
    revocationReason: Type.Union([Type.Union((Object.keys(CRL_REASONS) as CrlReasonName[]).map((r) => Type.Literal(r))), Type.Null()]),
  },
  { $id: 'CertificateRecord' },
);
export type CertificateRecord = Static<typeof CertificateRecord>;

/** `GET /v1/admin/devices/:id`: the device and its certificates, newest first. */
export const DeviceDetail = Type.Object({ ...deviceFields, certificates: Type.Array(embed(CertificateRecord)) }, { $id: 'DeviceDetail' });
export type DeviceDetail = Static<typeof DeviceDetail>;

// DEVICE_SORTS, SORT_ORDERS and DEFAULT_DEVICE_ORDER are plain lists in wire.ts (the console uses them without TypeBox).
export { DEFAULT_DEVICE_ORDER, DEVICE_SORTS, type DeviceSort, SORT_ORDERS } from './wire.js';
/** `order=` of a sorted list. */
export const SortOrder = Type.Union(SORT_ORDERS.map((o) => Type.Literal(o)), { $id: 'SortOrder' });
export type SortOrder = Static<typeof SortOrder>;

/** `GET /v1/admin/devices` query string. */
export const DeviceListQuery = Type.Object(
  {
    status: Type.Optional(embed(DeviceStatus)),
    group: Type.Optional(GroupName()),
    /** The bound person's email, exact (case-insensitive). */
    user: Type.Optional(Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' })),
    /** Case-insensitive: a substring of the device name or its bound person's email, or the beginning of its id or of the hex serial (4 digits or more) of any of its certificates. */
    q: Type.Optional(BoundedText(100)),
    /** Only devices whose agent is connected now (true), or not (false). */
    online: Type.Optional(Type.Boolean()),
    /** Default firstSeen. */
    sort: Type.Optional(Type.Union(DEVICE_SORTS.map((s) => Type.Literal(s)))),
    /** Default asc for name, user and status; desc for firstSeen and lastSeen. */
    order: Type.Optional(embed(SortOrder)),
    /** Default 100. */
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    /** A previous page's nextCursor, with the same sort and order. */
    cursor: Type.Optional(PageCursor()),
  },
  { $id: 'DeviceListQuery', additionalProperties: false },
);
export type DeviceListQuery = Static<typeof DeviceListQuery>;

/** `POST /v1/admin/devices/:id/revoke`; the reason defaults to 'unspecified'. */
export const RevokeRequest = Type.Object({ reason: Type.Optional(embed(RevokeReason)) }, { $id: 'RevokeRequest', additionalProperties: false });
export type RevokeRequest = Static<typeof RevokeRequest>;

/** `POST /v1/admin/devices/:id/deny`: refuse a pending device for good; the reason goes to the audit log. */
export const DenyRequest = Type.Object({ reason: Type.Optional(BoundedText(200, { minLength: 1 })) }, { $id: 'DenyRequest', additionalProperties: false });
export type DenyRequest = Static<typeof DenyRequest>;

// ------------------------------------------------------- audit
export const AuditEvent = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    at: Timestamp(),
    /** Who, as "<kind>:<id>": "admin:<token name>", "token:<enrollment token id>", "device:<device id>". */
    actor: BoundedText(200),
    /** What, as "<object>.<verb>": "token.create", "device.revoke", "certificate.renew", … */
    action: BoundedText(100),
    target: Type.Union([BoundedText(200), Type.Null()]),
    details: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'AuditEvent' },
);
export type AuditEvent = Static<typeof AuditEvent>;

// ------------------------------------------------------- pagination
/** A page of a list, with the cursor of the next page (null on the last page). */
export const Page = <T extends TSchema>(item: T, $id: string) =>
  Type.Object({ items: Type.Array(embed(item)), nextCursor: Type.Union([PageCursor(), Type.Null()]) }, { $id });

export const DevicePage = Page(Device, 'DevicePage');
export type DevicePage = Static<typeof DevicePage>;
export const TokenPage = Page(TokenInfo, 'TokenPage');
export type TokenPage = Static<typeof TokenPage>;
export const AuditPage = Page(AuditEvent, 'AuditPage');
export type AuditPage = Static<typeof AuditPage>;
export const GroupPage = Page(GroupPolicy, 'GroupPage');
export type GroupPage = Static<typeof GroupPage>;

// ------------------------------------------------------- gateway tokens
/** `POST /v1/admin/gateway-tokens`: a token for one gateway's `/v1/events` stream and `gateway sync`. */
export const GatewayTokenCreateRequest = Type.Object(
  { name: BoundedText(100, { minLength: 1 }) },
  { $id: 'GatewayTokenCreateRequest', additionalProperties: false },
);
export type GatewayTokenCreateRequest = Static<typeof GatewayTokenCreateRequest>;

/** A gateway token as listed: never its secret (the server keeps only a hash). */
export const GatewayTokenInfo = Type.Object(
  {
    id: Uuid(),
    name: BoundedText(100),
    createdAt: Timestamp(),
    /** "admin:<admin token name>". */
    createdBy: BoundedText(200),
    revokedAt: Type.Union([Timestamp(), Type.Null()]),
  },
  { $id: 'GatewayTokenInfo' },
);
export type GatewayTokenInfo = Static<typeof GatewayTokenInfo>;

/** The only response that ever shows the gateway token secret (`lkg_…`). */
export const GatewayTokenCreateResponse = Type.Object(
  { token: Type.String({ minLength: 20, maxLength: 200 }), info: embed(GatewayTokenInfo) },
  { $id: 'GatewayTokenCreateResponse' },
);
export type GatewayTokenCreateResponse = Static<typeof GatewayTokenCreateResponse>;

export const GatewayTokenPage = Page(GatewayTokenInfo, 'GatewayTokenPage');
export type GatewayTokenPage = Static<typeof GatewayTokenPage>;

export const RegisteredDevicePage = Page(RegisteredDevice, 'RegisteredDevicePage');
export type RegisteredDevicePage = Static<typeof RegisteredDevicePage>;
