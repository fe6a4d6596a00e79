/**
 * The wire constants the agent and the admin console need at run time, with
 * no schema library behind them: importing `@latchkey/protocol/wire` costs
 * the agent's daemon no memory for TypeBox and keeps it out of the console's
 * bundle. The full package re-exports all of it, and its schemas are built
 * from these lists, so there is one list of each.
 */
/**
 * Version of the agent ↔ server wire contract. It is bumped only on
 * incompatible changes (a field removed or retyped, a message's meaning
 * changed); adding an optional field to a server → client message is not one.
 * The agent sends it in its control-channel hello, where the server checks it.
 */
export const PROTOCOL_VERSION = 1;

/** The server's HTTP and WebSocket paths besides EST (see est.ts for the CRL table). */
export const PATHS = {
  /** Issuing CA's CRL, DER. */
  crl: '/crl',
  /** Issuing CA's CRL, PEM. */
  crlPem: '/crl.pem',
  /** Root CA's CRL, DER. */
  rootCrl: '/crl/root',
  /** Root CA's CRL, PEM. */
  rootCrlPem: '/crl/root.pem',
  /** RFC 6960 OCSP: GET `/ocsp/<base64 request>` and POST. */
  ocsp: '/ocsp',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
  /** WebSocket control channel, device mTLS. */
  agentChannel: '/v1/agent',
  /** WebSocket event stream for gateways, gateway token. */
  events: '/v1/events',
  /** Device-authenticated REST (mTLS), e.g. posting facts after enrollment. */
  device: '/v1/device',
  /** Admin REST API prefix, bearer admin tokens. */
  admin: '/v1/admin',
} as const;

/** The web console's browser sign-in (`/v1/console/*`) and its hashed assets. */
export const CONSOLE_PATHS = {
  assets: '/assets',
  /** GET: who is signed in, the role, the CSRF token. */
  session: '/v1/console/session',
  signInOptions: '/v1/console/sign-in-options',
  /** POST `{token}`: sign in with an admin token (only while no IdP is configured). */
  signInToken: '/v1/console/sign-in/token',
  /** GET `?issuer&next`: sign in through the identity provider (authorization code + PKCE). */
  signInSso: '/v1/console/sign-in/sso',
  /** Where the identity provider sends the browser back. */
  signInCallback: '/v1/console/sign-in/callback',
  signOut: '/v1/console/sign-out',
} as const;

/** The header a change made with the console's session cookie carries its CSRF token in. */
export const CSRF_HEADER = 'x-latchkey-csrf';

export const EST_PREFIX = '/.well-known/est';

/** RFC 7030 §3.2.2 operation paths. */
export const EST_PATHS = {
  cacerts: `${EST_PREFIX}/cacerts`,
  simpleenroll: `${EST_PREFIX}/simpleenroll`,
  simplereenroll: `${EST_PREFIX}/simplereenroll`,
  csrattrs: `${EST_PREFIX}/csrattrs`,
} as const;
export type EstOperation = keyof typeof EST_PATHS;

export const MEDIA_TYPES = {
  /** RFC 7030 §4.2.1 request body of simpleenroll / simplereenroll. */
  pkcs10: 'application/pkcs10',
  /** RFC 7030 §4.1.3 / §4.2.3 response body of cacerts and enroll. */
  pkcs7CertsOnly: 'application/pkcs7-mime; smime-type=certs-only',
  /** The bare type, for matching a Content-Type without parameters. */
  pkcs7: 'application/pkcs7-mime',
  /** RFC 7030 §4.5.2 csrattrs response. */
  csrattrs: 'application/csrattrs',
  /** RFC 6960 Appendix A. */
  ocspRequest: 'application/ocsp-request',
  ocspResponse: 'application/ocsp-response',
  /** RFC 5280 §4.2.1.13 / RFC 2585. */
  pkixCrl: 'application/pkix-crl',
  pemFile: 'application/x-pem-file',
  json: 'application/json',
} as const;

/** RFC 7030 §4.1.3: EST bodies are base64 DER. */
export const CONTENT_TRANSFER_ENCODING = { header: 'content-transfer-encoding', base64: 'base64' } as const;

/** RFC 7030 §4.2.3: 202 Accepted carries Retry-After while approval is pending. */
export const RETRY_AFTER_HEADER = 'retry-after';

/**
 * PKCS#10 attribute (RFC 2986 §4.1) carrying the facts: one value, a
 * UTF8String holding the JSON of a DeviceFacts object, at most
 * MAX_FACTS_JSON characters.
 *
 * PLACEHOLDER: 1.3.6.1.4.1.59402 is a private-enterprise arc not yet
 * registered with IANA for Latchkey; register one and replace it before a
 * stable release. Layout under it: .1 CSR attributes, .1.1 device facts.
 */
export const FACTS_ATTRIBUTE_OID = '1.3.6.1.4.1.59402.1.1';

/**
 * PKCS#10 attribute carrying a TPM attestation of the CSR's key (issue 14):
 * one value, a UTF8String holding the JSON of a `CsrAttestation`
 * (`@latchkey/protocol` attestation.ts), at most MAX_ATTESTATION_JSON
 * characters. Same placeholder arc as FACTS_ATTRIBUTE_OID: .1.2.
 */
export const ATTESTATION_ATTRIBUTE_OID = '1.3.6.1.4.1.59402.1.2';

/** Largest attestation JSON accepted, in characters (a P-256 key's TPM2B_PUBLIC, TPMS_ATTEST and signature fit in under 1.5 KB). */
export const MAX_ATTESTATION_JSON = 8192;

/**
 * Certificate policy (RFC 5280 §4.2.1.4) in every certificate of a device
 * whose key a TPM attested, for relying parties that read policies. Under the
 * placeholder arc: .2 certificate policies, .2.1 TPM-attested device key.
 */
export const TPM_ATTESTED_POLICY_OID = '1.3.6.1.4.1.59402.2.1';

/**
 * The subject organizationalUnit every attested device's certificate carries
 * (and no other certificate can: the server builds subjects, a device only
 * names its CN from [A-Za-z0-9._-]). Gateways that cannot read policies check
 * it in the subject DN (`gateway config --require-attested`).
 */
export const TPM_ATTESTED_OU = 'Latchkey TPM-attested device';

/**
 * TCG credential activation before an attested EST request (issue 14). The
 * agent asks for a challenge, activates it in its TPM, and sends the secret
 * back inside the CSR's attestation attribute, together with a TPM2_Certify
 * whose qualifying data is that same secret.
 */
export const ATTEST_PATHS = {
  /** POST JSON `AttestEnrollChallengeRequest`, `Authorization: Bearer <enrollment token>` (public zone). */
  enrollChallenge: '/v1/attest/enroll-challenge',
  /** POST JSON `AttestRenewChallengeRequest`, TLS client certificate of the device (device zone). */
  renewChallenge: '/v1/attest/renew-challenge',
} as const;

/** Largest facts JSON accepted, in characters. */
export const MAX_FACTS_JSON = 4096;

/** Largest WebSocket message either side accepts (a `hello` with maximal facts fits). */
export const MAX_WS_MESSAGE_BYTES = 16 * 1024;

/**
 * Close codes (RFC 6455 §7.4.2 private range 4000-4999), the last digits
 * borrowed from HTTP. The agent reconnects with backoff after any close but
 * `revoked` and `unsupportedVersion` (and after `replaced` only after a long wait).
 */
export const WS_CLOSE_CODES = {
  /** A message failed its schema or was not JSON. */
  protocolError: 4000,
  /** The hello's protocolVersion is not one the server speaks. */
  unsupportedVersion: 4001,
  /** The device (or gateway token) was revoked; sent right after `revoked`. */
  revoked: 4003,
  /** No heartbeat within the agreed interval. */
  heartbeatTimeout: 4008,
  /**
   * A newer connection of the same device took this one's place (the server keeps a few per device).
   * The agent waits long before coming back: two agents sharing one identity must not take turns forever.
   */
  replaced: 4009,
  /** The peer sent messages (or pings) faster than any agent or gateway needs to. */
  tooManyMessages: 4029,
} as const;

/** RFC 5280 §5.3.1 CRLReason names and their integer codes (7 is unused). */
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

/**
 * Reasons an admin may give when revoking a device (RFC 5280 §5.3.1 names).
 * Not the CA reasons (cACompromise, aACompromise), not certificateHold /
 * removeFromCRL: a revocation here is final. admin.ts builds the
 * RevokeReason schema from this list.
 */
export const REVOKE_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const satisfies readonly CrlReasonName[];

/** `event:` names of the admin API's live stream, `GET /v1/admin/live` (console.ts has their data). */
export const LIVE_EVENTS = ['audit', 'presence', 'revocation', 'issuance', 'device-approved', 'policy'] as const;
export type LiveEventName = (typeof LIVE_EVENTS)[number];

/** Where a device is in its life (admin API `status`). */
export const DEVICE_STATUSES = ['pending', 'active', 'revoked', 'denied'] as const;

/** Admin roles, each able to do what the previous one can: viewer reads, operator also issues tokens and approves/revokes devices, admin also sets policy. */
export const ADMIN_ROLES = ['viewer', 'operator', 'admin'] as const;
/** viewer < operator < admin: whether `have` may do what needs `need`. */
export function roleAtLeast(have: (typeof ADMIN_ROLES)[number], need: (typeof ADMIN_ROLES)[number]): boolean {
  return ADMIN_ROLES.indexOf(have) >= ADMIN_ROLES.indexOf(need);
}

/** Orders of `GET /v1/admin/devices` (`sort=`); each pages by keyset on (that column, id). */
export const DEVICE_SORTS = ['name', 'firstSeen', 'lastSeen', 'status', 'user'] as const;
export type DeviceSort = (typeof DEVICE_SORTS)[number];
/** `order=` of a sorted list. */
export const SORT_ORDERS = ['asc', 'desc'] as const;
/** The order a sort has when `order=` is not given: the newest first for times, A to Z otherwise. */
export const DEFAULT_DEVICE_ORDER: Readonly<Record<DeviceSort, (typeof SORT_ORDERS)[number]>> = { name: 'asc', user: 'asc', status: 'asc', firstSeen: 'desc', lastSeen: 'desc' };

/** Where an agent keeps its device key: the OS credential store, a PKCS#11 token, or an encrypted file. */
/** A group's attestation policy: `tpm` requires a TPM-attested device key (issue 14). */
export const ATTESTATION_MODES = ['none', 'tpm'] as const;
export type AttestationMode = (typeof ATTESTATION_MODES)[number];

/** Bounds of `POST /v1/admin/registered-devices/import` (CSV of name,ek_hash[,group]). */
export const REGISTERED_DEVICES_IMPORT_LIMITS = { maxRows: 10_000, maxBytes: 1024 * 1024 } as const;

export const KEYSTORE_KINDS = ['os', 'pkcs11', 'file'] as const;
export type KeystoreKind = (typeof KEYSTORE_KINDS)[number];

/** Renew when this fraction of a certificate's lifetime has passed (before the agent's jitter), unless the policy says otherwise. */
export const DEFAULT_RENEW_FRACTION = 2 / 3;

/** Bounds of the `policy` message's fields (ws.ts ServerPolicy); the agent ignores a policy outside them. */
export const POLICY_LIMITS = {
  certLifetimeSeconds: { min: 5, max: 366 * 86400 },
  heartbeatSeconds: { min: 1, max: 3600 },
} as const;

/** A device group's policy as the server sends it (`policy` message, without its `type`). */
export interface AgentPolicy {
  certLifetimeSeconds: number;
  /** Renew when this fraction of the lifetime has passed, exclusive 0..1. */
  renewFraction: number;
  heartbeatSeconds: number;
}

/** The policy fields of `m` if they are all there and within POLICY_LIMITS; never half a policy. */
export function agentPolicyOf(m: { certLifetimeSeconds?: unknown; renewFraction?: unknown; heartbeatSeconds?: unknown }): AgentPolicy | undefined {
  const { certLifetimeSeconds: life, renewFraction: f, heartbeatSeconds: hb } = m;
  const within = (v: unknown, l: { min: number; max: number }): v is number => Number.isInteger(v) && (v as number) >= l.min && (v as number) <= l.max;
  if (!within(life, POLICY_LIMITS.certLifetimeSeconds) || !within(hb, POLICY_LIMITS.heartbeatSeconds)) return undefined;
  if (typeof f !== 'number' || !(f > 0 && f < 1)) return undefined;
  return { certLifetimeSeconds: life, renewFraction: f, heartbeatSeconds: hb };
}

export { type HostPort, hostForUrl, localUrl, parseHostPort } from './host-port.js';
