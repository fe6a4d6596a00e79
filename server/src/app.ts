/**
 * The fastify app as a plugin tree: public, device (mTLS) and admin zones
 * are sibling plugins, each with its own auth and content-type parsers.
 * The process (TLS, signals, logger) lives in start.ts; tests build this and
 * use `inject`.
 */
import type { ServerOptions } from 'node:https';
import * as crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { PATHS } from '@latchkey/protocol';
import { createAdminAccess } from './admin/admin-access.js';
import { adminRoutes } from './admin/admin-routes.js';
import type { Reauthorize } from './admin/admin-sessions.js';
import { auditRepo } from './audit/audit-repo.js';
import { actorOf } from './admin/admin-auth.js';
import { peerCertificateDer } from './auth/client-cert.js';
import { createDeviceCertAuth } from './auth/device-cert-auth.js';
import type { CaContext } from './ca/ca-context.js';
import { certificatesRepo } from './certificates/certificates-repo.js';
import type { ServerConfig } from './config/config-schema.js';
import { createChannelHub, type ChannelHub } from './agent-channel/channel-hub.js';
import { createPresence } from './agent-channel/presence.js';
import { agentConnectionCap, openFileLimit } from './util/fd-limit.js';
import { compromisedKeysRepo } from './devices/compromised-keys-repo.js';
import { devicesRepo } from './devices/devices-repo.js';
import { createDevicesService } from './devices/devices-service.js';
import { errorHandler, frameworkErrors, MAX_PARAM_LENGTH, notFoundHandler } from './http-errors.js';
import { attestationRepo } from './attestation/attestation-repo.js';
import { deviceAttestationRoutes, publicAttestationRoutes } from './attestation/attestation-routes.js';
import { createAttestationService } from './attestation/attestation-service.js';
import { loadEkRoots } from './attestation/ek-roots.js';
import { publicEstRoutes, deviceEstRoutes } from './est/est-routes.js';
import { createEstService } from './est/est-service.js';
import type { EventBus } from './events/event-bus.js';
import { eventsRepo } from './events/events-repo.js';
import { createGatewayEventsHub } from './gateway/gateway-events.js';
import { gatewayTokenRoutes } from './gateway/gateway-routes.js';
import { gatewayTokensRepo } from './gateway/gateway-tokens-repo.js';
import { createGatewayTokensService } from './gateway/gateway-tokens-service.js';
import { groupRoutes } from './groups/groups-routes.js';
import { groupsRepo } from './groups/groups-repo.js';
import { createGroupsService } from './groups/groups-service.js';
import { registeredDevicesRepo } from './registered-devices/registered-devices-repo.js';
import { registeredDeviceRoutes } from './registered-devices/registered-devices-routes.js';
import { createRegisteredDevicesService } from './registered-devices/registered-devices-service.js';
import { createIssuanceService } from './issuance/issuance-service.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createRateLimiter, perAddress, registerRateLimit } from './rate-limit.js';
import { createCrlService, type CrlService } from './revocation/crl-service.js';
import { crlStateRepo } from './revocation/crl-state-repo.js';
import { createOcspCache, revocationRoutes } from './revocation/revocation-routes.js';
import { outboxRepo } from './revocation/outbox-repo.js';
import { createRevocationOutbox, type RevocationOutbox } from './revocation/revocation-outbox.js';
import { type CrashPoint, noCrash } from './util/crash-point.js';
import type { Db } from './storage/db.js';
import { ping } from './storage/executor.js';
import { transactor } from './storage/transaction.js';
import { tokensRepo } from './tokens/tokens-repo.js';
import { createTokensService } from './tokens/tokens-service.js';
import { keyedMutex } from './util/keyed-mutex.js';
import { routeUpgrades } from './upgrade-router.js';
import { authFlowsRepo } from './auth/auth-flows-repo.js';
import { authRoutes } from './auth/auth-routes.js';
import { createSignInService, type SessionIssuer, type SignInService } from './auth/sign-in-service.js';
import { createOidcClient } from './oidc/oidc-client.js';
import { createOidcVerifier, type OidcVerifier } from './oidc/oidc-verifier.js';
import { adminTokensRepo } from './admin/admin-tokens-repo.js';
import { usersRepo } from './users/users-repo.js';
import { idpReauthorize } from './auth/reauthorize.js';
import { usersRoutes } from './users/users-routes.js';
import { createLiveHub, type LiveHub } from './live/live-hub.js';
import { liveRoutes } from './live/live-routes.js';
import { createOverviewService } from './overview/overview-service.js';
import { overviewRoutes } from './overview/overview-routes.js';
import { createUsersSync, type UsersSync } from './users/users-sync.js';
import { type ConsoleAssets, loadConsoleAssets } from './console/console-assets.js';
import { consoleRoutes } from './console/console-routes.js';
import { fingerprintSha256 } from '@latchkey/pki';

export interface AppDeps {
  db: Db;
  ca: CaContext;
  config: ServerConfig;
  bus: EventBus;
  clock?: () => Date;
  /** The TLS client certificate of a request (DER). Default: the TLS socket's peer certificate. */
  clientCert?: (req: FastifyRequest) => Buffer | undefined;
  /** Test-only crash points (see util/crash-point.ts); the process entry point sets it from its environment. */
  crashPoint?: CrashPoint;
  /** HTTP to the identity providers (tests may route it); default: global fetch. */
  idpFetch?: typeof globalThis.fetch;
  /** Process options: logger, and `https` for TLS (see start.ts). */
  fastify?: FastifyServerOptions & { https?: ServerOptions };
  /** Whether a person may still administer when their session is refreshed (the IdP is asked); default: refuse. */
  reauthorize?: Reauthorize;
  /** The web console's built files; default: server/console/dist beside the compiled server. */
  consoleAssets?: ConsoleAssets;
}

export interface App {
  app: FastifyInstance;
  crl: CrlService;
  /** Committed revocations still owing their CRL and event: start() delivers leftovers and sweeps. */
  outbox: RevocationOutbox;
  metrics: Metrics;
  channels: ChannelHub;
  /** The console's live streams (`GET /v1/admin/live`). */
  live: LiveHub;
  /** HTTP requests being handled now (a graceful stop waits for them). */
  inFlight(): number;
}

/** Failed admin logins one client address may make in a minute. */
const ADMIN_LOGIN_FAILURES_PER_MINUTE = 30;

export async function buildApp(d: AppDeps): Promise<App> {
  const clock = d.clock ?? (() => new Date());
  const metrics = createMetrics();
  const app = Fastify({
    bodyLimit: d.config.bodyLimitBytes,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    // The router's own refusals (a path parameter over maxParamLength, bad percent-encoding) in our error body too.
    frameworkErrors,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    ...d.fastify,
  } as FastifyServerOptions) as unknown as FastifyInstance;
  let inFlight = 0;
  // The response's 'close' comes once it is sent, or when the connection dies first.
  app.addHook('onRequest', async (_req, reply) => {
    inFlight++;
    reply.raw.once('close', () => inFlight--);
  });

  // Repositories on the database, and the one way services run a transaction.
  const k = d.db.kysely;
  const tx = transactor(d.db);
  const certificates = certificatesRepo(k);
  const crl = createCrlService({
    crlState: crlStateRepo(k),
    certificates,
    tx,
    rowLocks: d.db.engine === 'postgres',
    ca: d.ca,
    validitySeconds: d.config.crlValiditySeconds,
    clock,
    bus: d.bus,
    onError: (e) => app.log.error({ err: e }, 'CRL regeneration failed'),
  });
  const commitLocks = keyedMutex();
  const issuance = createIssuanceService({ tx, ca: d.ca, clock, randomBytes: crypto.randomBytes, bus: d.bus, metrics, commitLocks, supersededOverlapSeconds: d.config.supersededOverlapSeconds });
  // Per device, after its certificate authenticated it: bounds what one enrolled laptop can make us do.
  const reenrollLimiter = createRateLimiter(d.config.reenrollRateLimitPerMinute);
  // One device-certificate check for every device-mTLS way in (simplereenroll, /v1/agent).
  const deviceCertAuth = createDeviceCertAuth({ certificates, issuingCa: d.ca.issuing.cert, clock });
  // TPM attestation (issue 14): the manufacturer CAs are read once, here.
  const attestation = createAttestationService({
    tx,
    tokens: tokensRepo(k),
    registered: registeredDevicesRepo(k),
    devices: devicesRepo(k),
    challenges: attestationRepo(k),
    deviceCertAuth,
    reenrollLimiter,
    ekRoots: loadEkRoots(d.config.attestation?.ekRootsDir),
    clock,
    random: crypto.randomBytes,
    config: d.config,
    rowLocks: d.db.engine === 'postgres',
  });
  const est = createEstService({
    attestation,
    devices: devicesRepo(k),
    tokens: tokensRepo(k),
    certificates,
    compromisedKeys: compromisedKeysRepo(k),
    groups: groupsRepo(k),
    tx,
    issuance,
    commitLocks,
    reenrollLimiter,
    deviceCertAuth,
    clock,
    config: d.config,
  });
  const tokens = createTokensService({ tokens: tokensRepo(k), groups: groupsRepo(k), tx, clock });
  const groups = createGroupsService({ groups: groupsRepo(k), tx, bus: d.bus, clock, maxCertLifetimeSeconds: d.config.maxCertLifetimeSeconds });
  const outbox = createRevocationOutbox({ outbox: outboxRepo(k), crl, bus: d.bus, clock, log: (msg, extra) => app.log.error(extra ?? {}, msg) });
  const devices = createDevicesService({
    devices: devicesRepo(k),
    certificates,
    audit: auditRepo(k),
    tx,
    clock,
    bus: d.bus,
    metrics,
    outbox,
    crashPoint: d.crashPoint ?? noCrash,
    onDeliveryError: (e) => app.log.error({ err: e }, 'CRL rebuild or event after a revocation failed; the revocation is committed and its delivery is retried every few seconds'),
    // presence is made below; this runs only when a request comes in.
    onlineAmong: (ids) => presence.onlineAmong(ids),
    aliveSince: () => presence.aliveSince(),
  });
  // Admin sessions, API tokens and the admin zone's auth hook.
  // People: the identity providers, when configured (issue 12).
  const oidc = d.config.oidc && d.config.oidc.issuers.length > 0 ? d.config.oidc : undefined;
  let verifier: OidcVerifier | undefined;
  let signIn: SignInService | undefined;
  let usersSync: UsersSync | undefined;
  // A session's refresh asks the IdP again (usersSync is made below, with the IdP client).
  const reauthorize = d.reauthorize ?? (oidc ? idpReauthorize({ oidc, users: usersRepo(k), sync: () => usersSync! }) : undefined);
  const adminAccess = createAdminAccess({ db: k, tx, clock, config: d.config, rowLocks: d.db.engine === 'postgres', ...(reauthorize ? { reauthorize } : {}) });
  const ocspCache = createOcspCache(clock);
  if (oidc) {
    const issuers = oidc.issuers.map((i) => ({ issuer: i.issuer, clientId: i.clientId, clientSecret: i.clientSecret, emailClaim: i.emailClaim, groupsClaim: i.groupsClaim, trustEmail: i.trustEmail, scopes: i.scopes }));
    verifier = createOidcVerifier({ issuers, clock, ...(d.idpFetch ? { fetch: d.idpFetch } : {}) });
    const client = createOidcClient({ issuers, verifier, ...(d.idpFetch ? { fetch: d.idpFetch } : {}) });
    const sessions: SessionIssuer = adminAccess.sessions;
    signIn = createSignInService({ oidc, client, verifier, flows: authFlowsRepo(k), groups: groupsRepo(k), tx, clock, sessions });
    usersSync = createUsersSync({ oidc, users: usersRepo(k), sessions: adminTokensRepo(k), client, verifier, devices, tx, clock, log: (msg, extra) => app.log.warn(extra ?? {}, msg) });
    if (oidc.syncIntervalSeconds > 0) {
      // Every replica runs it; each person is claimed by one (users-repo claimForSync).
      const everyMs = oidc.syncIntervalSeconds * 1000;
      const sync = usersSync;
      const timer = setInterval(() => {
        sync.syncAll(oidc.syncIntervalSeconds / 2).then(
          (r) => { if (r.removed.length + r.disabled.length > 0) app.log.info({ removed: r.removed.length, disabled: r.disabled.length, revokedDevices: r.revokedDevices.length }, 'users sync revoked the devices of people the identity provider no longer allows'); },
          (e: Error) => app.log.error({ err: e }, 'users sync failed; it runs again at the next interval'),
        );
      }, everyMs);
      timer.unref();
      app.addHook('onClose', async () => clearInterval(timer));
    }
  }
  // Which agents are connected, on every replica (agent_sessions + replicas tables).
  // Each heartbeat also publishes this replica's gateway streams (gatewayEvents is made below), for every replica's overview.
  const presence = await createPresence({ db: d.db, clock, log: (msg, extra) => app.log.warn(extra ?? {}, msg), published: () => JSON.stringify(gatewayEvents.snapshot().slice(0, 200)) });
  const channels = createChannelHub({ deviceCertAuth, groups: groupsRepo(k), bus: d.bus, clock, metrics, presence, heartbeatSeconds: d.config.agentHeartbeatSeconds, maxConnections: agentConnectionCap(d.config.maxAgentConnections, openFileLimit()), maxPerDevice: d.config.maxAgentConnectionsPerDevice, log: (msg, extra) => app.log.warn(extra ?? {}, msg) });
  // Fastify made its server already: WebSocket upgrades are routed by path.
  const gatewayEvents = createGatewayEventsHub({
    events: eventsRepo(k),
    gatewayTokens: gatewayTokensRepo(k),
    bus: d.bus,
    pingSeconds: d.config.agentHeartbeatSeconds,
    log: (msg, extra) => app.log.warn(extra ?? {}, msg),
    onSent: (e) => metrics.observe('latchkey_gateway_event_lag_seconds', {}, Math.max(0, clock().getTime() - Date.parse(e.at)) / 1000),
    clock,
  });
  // The console: its overview, and its live stream (one audit poller per process, closed before the server stops).
  const overview = createOverviewService({ devices: devicesRepo(k), devicesService: devices, certificates, audit: auditRepo(k), events: eventsRepo(k), crl, gateways: gatewayEvents, gatewaysElsewhere: () => presence.publishedElsewhere(), countOnline: () => presence.countOnline(), clock });
  const live = createLiveHub({ audit: auditRepo(k), presence, adminTokens: adminTokensRepo(k), bus: d.bus, clock, lateWindow: d.db.engine === 'postgres' ? 100 : 0, log: (msg, extra) => app.log.warn(extra ?? {}, msg) });
  app.addHook('preClose', async () => live.close());
  metrics.watch({
    clock,
    devicesByStatus: () => devicesRepo(k).countByStatus(),
    agentsOnline: () => presence.countOnline(),
    agentConnections: () => channels.size,
    caCertificates: () => ({ root: d.ca.root, issuing: d.ca.issuing.cert }),
    servedCrl: (ca) => crl.get(ca),
    gatewayStreams: () => ({ connected: gatewayEvents.size, backlogBytes: gatewayEvents.backlogBytes }),
    onError: (metric, e) => app.log.warn({ err: e, metric }, 'a metric could not be read; left out of this scrape'),
  });
  // A revoked gateway token's streams close at once on every replica (each also re-checks its tokens every ping).
  const gatewayTokens = createGatewayTokensService({
    gatewayTokens: gatewayTokensRepo(k),
    tx,
    clock,
    onRevoked: (tokenId) => {
      d.bus.publish({ type: 'gateway-token-revoked', tokenId, at: clock().toISOString() }).catch((e: Error) => app.log.error({ err: e }, 'could not announce a revoked gateway token'));
    },
  });
  routeUpgrades(app.server, { [PATHS.agentChannel]: channels.handleUpgrade, [PATHS.events]: gatewayEvents.handleUpgrade });
  // Before the HTTP server stops: upgraded sockets would otherwise hold it open.
  app.addHook('preClose', async () => {
    await channels.close();
    await presence.close().catch((e: Error) => app.log.warn({ err: e }, 'could not remove this replica from the presence tables'));
  });
  app.addHook('preClose', async () => gatewayEvents.close());
  d.bus.subscribe((e) => {
    // Another replica published a CRL: serve the new one.
    if (e.type === 'crl-updated') crl.invalidate();
    // A revocation anywhere: no reused OCSP answer may say good any more.
    if (e.type === 'revocation') ocspCache.clear();
    if (e.type === 'gateway-token-revoked') gatewayEvents.tokenRevoked(e.tokenId);
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addHook('onResponse', async (req, reply) => {
    metrics.observe('latchkey_http_request_duration_seconds', { route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  // Public zone: anyone may ask.
  await app.register(async (pub) => {
    await pub.register(publicEstRoutes({ est, ca: d.ca, enrollRateLimitPerMinute: d.config.enrollRateLimitPerMinute, metrics, bodyLimit: d.config.bodyLimitBytes, crashPoint: d.crashPoint ?? noCrash }));
    await pub.register(publicAttestationRoutes({ attestation, enrollRateLimitPerMinute: d.config.enrollRateLimitPerMinute }));
    await pub.register(authRoutes({ signIn, verifier }));
    await pub.register(revocationRoutes({ certificates, ca: d.ca, crl, clock, metrics, bodyLimit: d.config.bodyLimitBytes, ocspCache }));
    await pub.register(adminAccess.publicRoutes);
    pub.get(PATHS.healthz, async () => ({ status: 'ok' }));
    pub.get(PATHS.readyz, async (_req, reply) => {
      try {
        await ping(k);
        return { status: 'ready', database: d.db.engine };
      } catch {
        return reply.code(503).send({ status: 'unavailable', database: d.db.engine });
      }
    });
    pub.get(PATHS.metrics, async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.render()));
  });
  // Device zone: the route checks the TLS client certificate against our records.
  const clientCert = d.clientCert ?? ((req: FastifyRequest) => peerCertificateDer(req.raw.socket));
  await app.register(deviceEstRoutes({ est, clientCert, metrics, bodyLimit: d.config.bodyLimitBytes }));
  await app.register(deviceAttestationRoutes({ attestation, clientCert }));
  // Admin zone: bearer admin tokens and people's sessions, with roles.
  await app.register(
    async (admin) => {
      await registerRateLimit(admin);
      // Failed logins only: a valid token is never slowed by someone else's guessing.
      admin.addHook('onRequest', adminAccess.authHook(admin.createRateLimit(perAddress(ADMIN_LOGIN_FAILURES_PER_MINUTE, ''))));
      await admin.register(adminRoutes({ audit: auditRepo(k), tokens, devices }));
      await admin.register(adminAccess.adminRoutes);
      await admin.register(groupRoutes({ groups }));
      await admin.register(registeredDeviceRoutes({ registered: createRegisteredDevicesService({ tx, list: registeredDevicesRepo(k), clock }) }));
      await admin.register(usersRoutes({ users: usersRepo(k), sync: usersSync }));
      // Gateway tokens for /v1/events and `gateway sync`.
      await admin.register(gatewayTokenRoutes({ gatewayTokens }));
      await admin.register(overviewRoutes({ overview }));
      await admin.register(liveRoutes({ live }));
      // Devices whose agent is connected to the control channel now (any replica), and since when.
      admin.get('/devices/online', { config: { minRole: 'viewer' } }, async () => ({ items: await presence.online(), nextCursor: null }));
      // Ask a device's agent to renew now (over its control channel, on whichever replica holds it).
      admin.post('/devices/:id/renew-now', { config: { minRole: 'operator' } }, async (req) => devices.renewNow((req.params as { id: string }).id, actorOf(req)));
    },
    { prefix: PATHS.admin },
  );
  // The web console: its pages, assets and browser sign-in; it acts through the admin API above.
  await app.register(
    consoleRoutes({
      assets: d.consoleAssets ?? loadConsoleAssets(),
      url: d.config.url,
      rootFingerprint: fingerprintSha256(d.ca.root.der),
      idpConfigured: oidc !== undefined,
      signIn,
      adminTokens: adminTokensRepo(k),
      sessions: adminAccess.sessions,
      authHook: adminAccess.authHook,
      clock,
    }),
  );
  return { app, crl, outbox, metrics, channels, live, inFlight: () => inFlight };
}
