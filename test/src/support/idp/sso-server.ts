/**
 * A real latchkey-server whose identity provider is a real IdP process: the
 * fixture's confidential client as the server's OAuth client, the given
 * `oidc` settings merged in. Both stop after the test.
 */
import { initServer, startServer, type ServerProcess, type TestCtx } from '../processes.js';
import { CONFIDENTIAL_CLIENT_ID, startIdp, type Idp } from './idp-fixture.js';

export interface SsoServer {
  idp: Idp;
  server: ServerProcess;
  dataDir: string;
  /** SHA-256 of the server's root, as `init` printed it. */
  fingerprint: string;
}

export async function startSsoServer(t: TestCtx, oidc: Record<string, unknown>, issuer: Record<string, unknown> = {}): Promise<SsoServer> {
  const idp = await startIdp();
  t.after(() => idp.stop());
  const client = idp.clients.find((c) => c.client_id === CONFIDENTIAL_CLIENT_ID)!;
  const { dataDir, port, fingerprint } = await initServer(t, {
    config: { oidc: { issuers: [{ issuer: idp.issuer, clientId: client.client_id, clientSecret: client.client_secret, ...issuer }], ...oidc } },
  });
  const server = await startServer(t, dataDir, port);
  return { idp, server, dataDir, fingerprint };
}
