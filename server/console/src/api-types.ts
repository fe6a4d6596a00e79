/**
 * Shapes of the console-only endpoints, as docs/console-contract (issue 13)
 * states them. They move to `@latchkey/protocol` (packages/protocol/src/console.ts);
 * when they land, this file becomes `export type { … } from '@latchkey/protocol'`.
 */
import type { AdminRole, Device, DeviceStatus } from '@latchkey/protocol';

/** `GET /v1/console/session`. */
export interface ConsoleSession {
  actor: string;
  role: AdminRole;
  kind: 'session' | 'token';
  user: string | null;
  expiresAt: string | null;
  csrfToken: string;
  /** The server's URL, as `latchkey enroll --server` takes it. */
  serverUrl: string;
  /** SHA-256 hex of the root CA, as `latchkey enroll --ca-fingerprint` takes it. */
  caFingerprint: string;
}

/** `GET /v1/console/sign-in-options`. */
export interface ConsoleSignInOptions {
  providers: { issuer: string; name: string }[];
  /** True only while no identity provider is configured. */
  tokenSignIn: boolean;
}

export type DeviceSort = 'name' | 'firstSeen' | 'lastSeen' | 'status' | 'user';
export type SortOrder = 'asc' | 'desc';

/** `GET /v1/admin/devices` query as the console sends it. */
export interface ConsoleDeviceQuery {
  q?: string;
  status?: DeviceStatus;
  group?: string;
  online?: 'true' | 'false';
  sort?: DeviceSort;
  order?: SortOrder;
  cursor?: string;
  limit?: number;
}

export interface CrlAge {
  crlNumber: number;
  thisUpdate: string;
  nextUpdate: string;
  ageSeconds: number;
}

export interface ConnectedGateway {
  tokenId: string;
  name: string;
  remote: string;
  connectedAt: string;
  lastEventAt: string | null;
  behindEvents: number;
  backlogBytes: number;
}

/** `GET /v1/admin/overview`. */
export interface ConsoleOverview {
  at: string;
  devices: { pending: number; active: number; revoked: number; denied: number; total: number };
  online: number;
  pendingApprovals: Device[];
  expiringSoon: { withinSeconds: number; count: number; items: { deviceId: string; name: string; serial: string; notAfter: string }[] };
  recentRevocations: { deviceId: string; name: string; at: string; reason: string | null; actor: string }[];
  crl: { issuing: CrlAge | null; root: CrlAge | null };
  gateways: ConnectedGateway[];
}

/** `GET /v1/admin/audit` query as the console sends it. */
export interface ConsoleAuditQuery {
  actor?: string;
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  before?: string;
  limit?: number;
}
