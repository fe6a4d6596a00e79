/**
 * The admin zone's people and tokens in one place for app.ts: the auth hook,
 * sessions (which the sign-in flows issue), `/v1/auth/refresh|logout` for the
 * public zone, and whoami + admin-token routes for the admin zone.
 */
import type { ServerConfig } from '../config/config-schema.js';
import { LatchkeyError } from '../errors.js';
import type { Executor } from '../storage/executor.js';
import type { Transactor } from '../storage/transaction.js';
import { adminAuthHook, type FailureLimit } from './admin-auth.js';
import { createAdminSessions, type Reauthorize } from './admin-sessions.js';
import { adminTokenRoutes } from './admin-token-routes.js';
import { adminTokensRepo } from './admin-tokens-repo.js';
import { createAdminTokensService } from './admin-tokens-service.js';
import { sessionRoutes } from './session-routes.js';

/** Without an identity provider to ask again, no session is renewed. */
const noIdp: Reauthorize = async () => {
  throw new LatchkeyError('SESSION_EXPIRED', 'no identity provider can confirm that you may still administer this server; sign in again with `latchkey-server login`');
};

export function createAdminAccess(d: { db: Executor; tx: Transactor; clock: () => Date; config: ServerConfig; rowLocks: boolean; reauthorize?: Reauthorize }) {
  const repo = adminTokensRepo(d.db);
  const oidc = d.config.oidc;
  const sessions = createAdminSessions({ adminTokens: repo, tx: d.tx, clock: d.clock, sessionSeconds: oidc?.sessionSeconds ?? 3600, refreshSeconds: oidc?.refreshSeconds ?? 43_200 });
  const adminTokens = createAdminTokensService({ adminTokens: repo, tx: d.tx, clock: d.clock, rowLocks: d.rowLocks, idpConfigured: (oidc?.issuers.length ?? 0) > 0 });
  return {
    sessions,
    authHook: (failures: FailureLimit) => adminAuthHook({ adminTokens: repo, failures, clock: d.clock }),
    publicRoutes: sessionRoutes({ sessions, reauthorize: d.reauthorize ?? noIdp }),
    adminRoutes: adminTokenRoutes({ adminTokens }),
  };
}
export type AdminAccess = ReturnType<typeof createAdminAccess>;
