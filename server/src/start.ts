/**
 * `latchkey-server start`: the process. Loads and validates config once,
 * unlocks the CA keys, opens the database (migrating it), serves HTTPS on
 * one port (TLS 1.2/1.3; client certificates requested, never required at
 * the TLS layer), and closes gracefully on SIGTERM/SIGINT: in-flight
 * requests (an issuance mid-transaction) finish before the process exits.
 */
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { join } from 'node:path';
import { buildApp } from './app.js';
import { buildCaContext, loadCaKeys, type CaContext } from './ca/ca-context.js';
import { FILES } from './ca/ca-files.js';
import { ConfigError, caPassphrase, loadConfig, type ConfigOverrides } from './config/config-load.js';
import { createEventBus } from './events/event-bus.js';
import { renewServiceCertificatesIfNeeded } from './init.js';
import { openDb } from './storage/db.js';
import { DEFAULT_GROUP } from './tokens/tokens-service.js';
import { groupsRepo } from './tokens/tokens-repo.js';
import { agentConnectionCap, openFileLimit } from './util/fd-limit.js';

/** The HTTPS server's TLS: its certificate from the data dir; client certificates requested, checked per route zone. */
export function serverTlsOptions(dataDir: string, ca: CaContext): ServerOptions {
  return {
    key: readFileSync(join(dataDir, FILES.tlsKey)),
    cert: readFileSync(join(dataDir, FILES.tlsCert)),
    ca: [ca.issuing.cert.der, ca.root.der].map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64')}\n-----END CERTIFICATE-----\n`),
    requestCert: true,
    // Checked per route zone (device routes verify against our CA and records).
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}

export interface Started {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startServer(dataDir: string, env: NodeJS.ProcessEnv, flags: ConfigOverrides, log: (line: string) => void): Promise<Started> {
  const config = loadConfig(dataDir, env, flags);
  const passphrase = caPassphrase(dataDir, config, env);
  let keys;
  try {
    keys = loadCaKeys(dataDir, passphrase);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  let ca = buildCaContext(dataDir, config, keys);
  if (await renewServiceCertificatesIfNeeded({ dataDir, config, issuing: ca.issuing, passphrase, now: new Date() })) {
    log('renewed the server TLS and OCSP certificates (they were within 30 days of expiry)');
    ca = buildCaContext(dataDir, config, loadCaKeys(dataDir, passphrase));
  }
  const db = await openDb({ dataDir, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}) });
  await groupsRepo(db.kysely).ensure({ name: DEFAULT_GROUP, cert_lifetime_seconds: config.certLifetimeSeconds, require_approval: 0, created_at: new Date().toISOString() });
  // The bus exists before the app and its logger: report to stderr like the start-up lines.
  const bus = await createEventBus(db, { onError: (m, e) => log(`event bus: ${m}${e ? `: ${e.message}` : ''}`) });
  const { app, crl, inFlight } = await buildApp({
    db,
    ca,
    config,
    bus,
    fastify: {
      logger: {
        level: config.logLevel,
        redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
      },
      https: serverTlsOptions(dataDir, ca),
      forceCloseConnections: 'idle',
    },
  });
  const lastColon = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, lastColon).replace(/^\[|\]$/g, '');
  const port = Number(config.listen.slice(lastColon + 1));
  await app.listen({ host, port });
  crl.start();
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  log(`latchkey-server listening on https://${host.includes(':') ? `[${host}]` : host}:${actualPort} (${db.engine}); devices use ${config.url}`);
  const fileLimit = openFileLimit();
  const cap = agentConnectionCap(config.maxAgentConnections, fileLimit);
  log(`control channel: up to ${Number.isFinite(cap) ? cap : 'unlimited'} agent connections${config.maxAgentConnections ? ' (maxAgentConnections)' : fileLimit ? ` (open-file limit ${fileLimit} less a reserve; raise LimitNOFILE / ulimit -n for more)` : ''}`);
  let closing: Promise<void> | undefined;
  return {
    url: config.url,
    port: actualPort,
    close() {
      closing ??= (async () => {
        crl.stop();
        log(`shutting down: ${inFlight()} request(s) in flight are answered first; new ones get 503`);
        await app.close();
        await bus.close();
        await db.close();
      })();
      return closing;
    },
  };
}
