/**
 * A real latchkey-server whose identity provider is a real IdP process: the
 * fixture's confidential client as the server's OAuth client, the given
 * `oidc` settings merged in. Both stop after the test.
 */
import { randomBytes } from 'node:crypto';
import { freePort, initServer, startServer, type ServerProcess, type TestCtx } from '../processes.js';
import { CONFIDENTIAL_CLIENT_ID, LOOPBACK_REDIRECT, PUBLIC_CLIENT_ID, startIdp, type Idp } from './idp-fixture.js';

/** Where the IdP sends a browser back after a sign-in started from the web console. */
export const CONSOLE_CALLBACK = '/v1/console/sign-in/callback';

export interface SsoServer {
  idp: Idp;
  server: ServerProcess;
  dataDir: string;
  /** SHA-256 of the server's root, as `init` printed it. */
  fingerprint: string;
}

export async function startSsoServer(t: TestCtx, oidc: Record<string, unknown>, issuer: Record<string, unknown> = {}): Promise<SsoServer> {
  // The server's port first: the confidential client's redirect URIs include the console's callback on it.
  const port = await freePort();
  const idp = await startIdp({
    clients: [
      { client_id: PUBLIC_CLIENT_ID, redirect_uris: [LOOPBACK_REDIRECT] },
      { client_id: CONFIDENTIAL_CLIENT_ID, client_secret: randomBytes(16).toString('hex'), redirect_uris: [LOOPBACK_REDIRECT, `https://127.0.0.1:${port}${CONSOLE_CALLBACK}`], application_type: 'web' },
    ],
  });
  t.after(() => idp.stop());
  const client = idp.clients.find((c) => c.client_id === CONFIDENTIAL_CLIENT_ID)!;
  const { dataDir, fingerprint } = await initServer(t, {
    port,
    config: { oidc: { issuers: [{ issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret, ...issuer }], ...oidc } },
  });
  const server = await startServer(t, dataDir, port);
  return { idp, server, dataDir, fingerprint };
}
