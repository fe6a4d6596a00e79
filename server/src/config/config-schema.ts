/** The server's configuration: schema first, types from it. */
import { Type, type Static } from '@sinclair/typebox';

const Groups = Type.Array(Type.String({ minLength: 1 }), { default: [] });

/** One OpenID Provider. `issuer` is checked for https (http only on 127.0.0.1/localhost) in validateConfig. */
export const OidcIssuerSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 1 }),
    clientId: Type.String({ minLength: 1 }),
    /** Never logged. */
    clientSecret: Type.Optional(Type.String({ minLength: 1 })),
    /** Relative to the data dir. */
    clientSecretFile: Type.Optional(Type.String({ minLength: 1 })),
    scopes: Type.Array(Type.String({ minLength: 1 }), { default: ['openid', 'email', 'profile', 'groups', 'offline_access'] }),
    emailClaim: Type.String({ minLength: 1, default: 'email' }),
    groupsClaim: Type.String({ minLength: 1, default: 'groups' }),
    /**
     * Accept ID tokens without an `email_verified` claim (one saying false is still refused). Only for a
     * provider whose emails are all of domains it owns, e.g. Entra ID, which never sends email_verified.
     */
    trustEmail: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

/** Identity providers and what their groups allow (not wired into enrollment or admin auth yet). */
export const OidcConfigSchema = Type.Object(
  {
    issuers: Type.Array(OidcIssuerSchema, { default: [] }),
    allowedEmailDomains: Groups,
    adminGroups: Type.Object({ viewer: Groups, operator: Groups, admin: Groups }, { additionalProperties: false, default: {} }),
    enrollGroups: Groups,
    /** Which Latchkey group a signed-in person's device joins: the first entry whose IdP group they are in; else `default`. */
    groupMapping: Type.Array(Type.Object({ idpGroup: Type.String({ minLength: 1 }), group: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }) }, { additionalProperties: false }), { default: [] }),
    /** Sign-ins in progress at once on the server (each holds an IdP device code or PKCE state until it ends or expires). */
    maxSignInsInProgress: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
    /** Devices one person may hold (not revoked or denied). */
    maxDevicesPerUser: Type.Integer({ minimum: 1, maximum: 10_000, default: 5 }),
    /** How often every replica asks the IdP about users with devices (users sync); 0: only by hand. */
    syncIntervalSeconds: Type.Integer({ minimum: 0, maximum: 7 * 86400, default: 3600 }),
    /**
     * `users sync` revokes nobody when it would take devices from more than this many people and from more
     * than a quarter of those it checked (an IdP that lost its refresh tokens looks like everyone disabled);
     * `users sync --force` applies it.
     */
    syncHoldAbove: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 5 }),
    /** An admin session's lifetime, and how long it can be refreshed without signing in again. */
    sessionSeconds: Type.Integer({ minimum: 60, maximum: 86400, default: 3600 }),
    refreshSeconds: Type.Integer({ minimum: 60, maximum: 30 * 86400, default: 43_200 }),
  },
  { additionalProperties: false, default: {} },
);

/** TPM attestation (issue 14): which TPM manufacturers are trusted, and the challenge exchange's bounds. */
export const AttestationConfigSchema = Type.Object(
  {
    /**
     * A directory of CA certificates (PEM or DER, roots and intermediates) of TPM manufacturers: an EK
     * certificate that chains to one proves a genuine TPM. Relative to the data dir. Read once at start
     * (at most 1000 files of 64 KiB each). Absent: only EKs registered by hash (`devices register`) are trusted.
     */
    ekRootsDir: Type.Optional(Type.String({ minLength: 1 })),
    /** How long a credential-activation challenge may be answered. */
    challengeTtlSeconds: Type.Integer({ minimum: 10, maximum: 3600, default: 300 }),
    /** Unused, unexpired challenges one enrollment token or device may hold; a new one past it drops the oldest. */
    maxOpenChallenges: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
  },
  { additionalProperties: false, default: {} },
);

export const ServerConfigSchema = Type.Object(
  {
    /** Organization name in certificate subjects. */
    org: Type.String({ minLength: 1, maxLength: 64 }),
    /** Public base URL devices and gateways use, e.g. https://latchkey.example.com:8443 */
    url: Type.String({ pattern: '^https://[^/\\s]+$' }),
    /** HOST:PORT to listen on. */
    listen: Type.String({ pattern: '^[^\\s]+:[0-9]{1,5}$' }),
    /** SPIFFE trust domain of device identities. */
    trustDomain: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$' }),
    /** postgres://… to use PostgreSQL; absent: SQLite file in the data dir. */
    databaseUrl: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
    /** File holding the CA key passphrase (when LATCHKEY_CA_PASSPHRASE is not set). */
    caPassphraseFile: Type.Optional(Type.String({ minLength: 1 })),
    /** Default certificate lifetime for the default group. */
    certLifetimeSeconds: Type.Integer({ minimum: 5, maximum: 366 * 86400 }),
    /** Upper bound for any group's lifetime. */
    maxCertLifetimeSeconds: Type.Integer({ minimum: 60, maximum: 366 * 86400 }),
    /** Recovery grace window after expiry. */
    recoveryGraceSeconds: Type.Integer({ minimum: 0, maximum: 366 * 86400 }),
    /** CRL nextUpdate - thisUpdate. */
    crlValiditySeconds: Type.Integer({ minimum: 60, maximum: 30 * 86400 }),
    /** Retry-After while a device waits for approval. */
    approvalRetrySeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    /** How often agents heartbeat on the control channel; a connection silent for 2.5x this is closed. */
    agentHeartbeatSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    /**
     * Most agent control channels one server process holds; 0: its open-file limit minus a reserve
     * for everything else (HTTPS requests, the database, logs). Past it agents get 503 and retry.
     */
    maxAgentConnections: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    /**
     * Most unexpired certificates one device may hold (revoked or superseded ones count: a CRL lists
     * them until they expire). A renewal past it is refused until the oldest expires.
     */
    maxCertificatesPerDevice: Type.Integer({ minimum: 2, maximum: 1000 }),
    /** How long a renewed device's previous certificate stays valid before it is revoked as superseded. */
    supersededOverlapSeconds: Type.Integer({ minimum: 0, maximum: 7 * 86400 }),
    /** Re-enrollment attempts per minute per device (each replica counts its own). */
    reenrollRateLimitPerMinute: Type.Integer({ minimum: 1, maximum: 100_000 }),
    /** Control channels one device may hold at once; a newer one closes the oldest (close code `replaced`). */
    maxAgentConnectionsPerDevice: Type.Integer({ minimum: 1, maximum: 100 }),
    /** A TCP connection that has not completed the TLS handshake after this long is closed. */
    tlsHandshakeTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 120 }),
    /** The time a request's headers may take: from the handshake for the first request, from its first byte for later ones. */
    requestHeadersTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 300 }),
    /** The time a whole request (headers and body) may take to arrive. At least requestHeadersTimeoutSeconds. */
    requestTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    /** A keep-alive connection idle this long between requests is closed. */
    keepAliveTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    /**
     * Most idle HTTPS connections (handshaking, before the first request, between requests) one process holds;
     * past it a new connection closes the oldest idle one of the busiest client address. 0: half of what the
     * open-file limit leaves besides the control channel.
     */
    maxIdleConnections: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    /** Largest request body accepted. */
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 10 * 1024 * 1024 }),
    /** Unauthenticated requests per minute per client address on enrollment endpoints. */
    enrollRateLimitPerMinute: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Days the replayable events (gateway cursors) are kept; absent: 7. A gateway away longer resyncs (fetches the CRLs again). */
    eventsRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    /** OpenID Providers; absent: none. */
    oidc: Type.Optional(OidcConfigSchema),
    /** TPM attestation; absent: the defaults (no EK roots, 300 s challenges, 5 open per token or device). */
    attestation: Type.Optional(AttestationConfigSchema),
    logLevel: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('silent')]),
  },
  { additionalProperties: false },
);
export type ServerConfig = Readonly<Static<typeof ServerConfigSchema>>;

export const CONFIG_DEFAULTS = {
  certLifetimeSeconds: 86_400,
  maxCertLifetimeSeconds: 30 * 86_400,
  recoveryGraceSeconds: 14 * 86_400,
  crlValiditySeconds: 3_600,
  approvalRetrySeconds: 10,
  agentHeartbeatSeconds: 30,
  maxAgentConnections: 0,
  maxCertificatesPerDevice: 4,
  supersededOverlapSeconds: 300,
  reenrollRateLimitPerMinute: 30,
  maxAgentConnectionsPerDevice: 2,
  tlsHandshakeTimeoutSeconds: 10,
  requestHeadersTimeoutSeconds: 10,
  requestTimeoutSeconds: 30,
  keepAliveTimeoutSeconds: 30,
  maxIdleConnections: 0,
  bodyLimitBytes: 64 * 1024,
  enrollRateLimitPerMinute: 600,
  logLevel: 'info',
} as const;
