/**
 * `users sync`: asks the identity provider about every person who holds
 * devices, with the refresh token of their last sign-in (RFC 6749 §6). A
 * refused refresh (invalid_grant: disabled, deleted, grant revoked) or an ID
 * token whose groups or domain no longer allow enrollment revokes their
 * devices and ends their admin sessions, audited with the IdP as the actor.
 * An IdP that cannot be asked changes nothing: an outage never revokes.
 */
import type { UsersSyncResult } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { adminRefusal, enrollRefusal } from '../auth/sign-in-fns.js';
import type { ServerConfig } from '../config/config-schema.js';
import type { DevicesService } from '../devices/devices-service.js';
import { LatchkeyError } from '../errors.js';
import type { OidcClient } from '../oidc/oidc-client.js';
import type { OidcVerifier } from '../oidc/oidc-verifier.js';
import type { Transactor } from '../storage/transaction.js';
import type { UsersRepo } from './users-repo.js';

export interface UsersSyncDeps {
  oidc: NonNullable<ServerConfig['oidc']>;
  users: Pick<UsersRepo, 'withLiveDevices' | 'claimForSync' | 'findById' | 'synced' | 'liveDeviceIds' | 'endSessions'>;
  client: Pick<OidcClient, 'refresh'>;
  verifier: Pick<OidcVerifier, 'verifyIdToken'>;
  devices: Pick<DevicesService, 'revoke'>;
  tx: Transactor;
  clock: () => Date;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

const PAGE = 500;

export type UsersSync = ReturnType<typeof createUsersSync>;

export function createUsersSync(d: UsersSyncDeps) {
  /** Revokes the person's devices and ends their sessions, naming the IdP and why. */
  async function withdraw(userId: string, issuer: string, email: string, status: 'removed' | 'disabled', why: string, revoked: string[]): Promise<void> {
    const actor = `idp:${issuer}`;
    const at = d.clock().toISOString();
    await d.tx.inTransaction(async (trx) => {
      await auditRepo(trx).insert({ at, actor, action: `user.${status}`, target: userId, details: { email, why } });
    });
    await d.users.endSessions(userId, at);
    for (const id of await d.users.liveDeviceIds(userId)) {
      await d.devices.revoke(id, 'privilegeWithdrawn', actor);
      revoked.push(id);
    }
  }

  async function syncOne(userId: string, result: UsersSyncResult): Promise<void> {
    const u = await d.users.findById(userId);
    if (!u || u.status !== 'active') return;
    result.checked++;
    if (!u.idp_refresh_token) {
      // Nothing to ask the IdP with (it gave no refresh token: add offline_access to the scopes).
      result.unreachable.push(u.email);
      return;
    }
    let outcome;
    try {
      outcome = await d.client.refresh(u.issuer, u.idp_refresh_token);
    } catch (e) {
      d.log('users sync: the identity provider could not be asked; nothing changed for this person', { issuer: u.issuer, user: u.id, err: (e as Error).message });
      result.unreachable.push(u.email);
      return;
    }
    if (outcome.kind === 'invalid-grant') {
      await d.users.synced(u.id, { email: u.email, groups: JSON.parse(u.groups) as string[], status: 'disabled', refreshToken: null });
      await withdraw(u.id, u.issuer, u.email, 'disabled', 'the identity provider refused the refresh (person disabled or deleted, or the grant revoked)', result.revokedDevices);
      result.disabled.push(u.email);
      return;
    }
    if (outcome.kind !== 'tokens') {
      result.unreachable.push(u.email);
      return;
    }
    let id;
    try {
      id = await d.verifier.verifyIdToken(u.issuer, outcome.idToken, { nonce: null });
    } catch (e) {
      d.log('users sync: the refreshed ID token was refused; nothing changed for this person', { issuer: u.issuer, user: u.id, err: e instanceof LatchkeyError ? e.message : String(e) });
      result.unreachable.push(u.email);
      return;
    }
    if (id.subject !== u.subject) {
      result.unreachable.push(u.email);
      return;
    }
    const refreshToken = outcome.refreshToken ?? u.idp_refresh_token;
    const enroll = enrollRefusal(id, d.oidc);
    if ('refusal' in enroll) {
      await d.users.synced(u.id, { email: u.email, groups: id.groups, status: 'removed', refreshToken });
      await withdraw(u.id, u.issuer, u.email, 'removed', enroll.refusal, result.revokedDevices);
      result.removed.push(u.email);
      return;
    }
    await d.users.synced(u.id, { email: u.email, groups: id.groups, status: 'active', refreshToken });
    if ('refusal' in adminRefusal(id, d.oidc)) await d.users.endSessions(u.id, d.clock().toISOString());
    result.unchanged++;
  }

  return {
    /**
     * Every active person with live devices whom no replica checked in the last
     * `minAgeSeconds` (the claim keeps two replicas from spending one refresh token twice).
     */
    async syncAll(minAgeSeconds: number): Promise<UsersSyncResult> {
      const result: UsersSyncResult = { checked: 0, unchanged: 0, removed: [], disabled: [], unreachable: [], revokedDevices: [] };
      let after = '';
      for (;;) {
        const page = await d.users.withLiveDevices(PAGE, after);
        for (const u of page) {
          const now = d.clock();
          if (!(await d.users.claimForSync(u.id, now.toISOString(), new Date(now.getTime() - minAgeSeconds * 1000).toISOString()))) continue;
          await syncOne(u.id, result);
        }
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.id;
      }
      return result;
    },
  };
}
