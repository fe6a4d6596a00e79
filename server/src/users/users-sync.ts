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
import type { AdminTokensRepo } from '../admin/admin-tokens-repo.js';
import type { UsersRepo } from './users-repo.js';

export interface UsersSyncDeps {
  oidc: NonNullable<ServerConfig['oidc']>;
  users: Pick<UsersRepo, 'withLiveDevices' | 'claimForSync' | 'findById' | 'synced' | 'liveDeviceIds'>;
  /** Ends a person's admin sessions. */
  sessions: Pick<AdminTokensRepo, 'revokeSessionsOf'>;
  client: Pick<OidcClient, 'refresh'>;
  verifier: Pick<OidcVerifier, 'verifyIdToken'>;
  devices: Pick<DevicesService, 'revoke'>;
  tx: Transactor;
  clock: () => Date;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

const PAGE = 500;
/** A run may take devices from `oidc.syncHoldAbove` people, or from this share of the people it checked; past both it holds (see mayWithdraw). */
const MASS_WITHDRAWAL_FRACTION = 0.25;

const emptyResult = (): UsersSyncResult => ({ checked: 0, unchanged: 0, removed: [], disabled: [], unreachable: [], revokedDevices: [] });

export type UsersSync = ReturnType<typeof createUsersSync>;

export function createUsersSync(d: UsersSyncDeps) {
  /** Revokes the person's devices and ends their sessions, naming the IdP and why. */
  async function withdraw(userId: string, issuer: string, email: string, status: 'removed' | 'disabled', why: string, revoked: string[]): Promise<void> {
    const actor = `idp:${issuer}`;
    const at = d.clock().toISOString();
    await d.tx.inTransaction(async (trx) => {
      await auditRepo(trx).insert({ at, actor, action: `user.${status}`, target: userId, details: { email, why } });
    });
    await d.sessions.revokeSessionsOf(userId, at);
    for (const id of await d.users.liveDeviceIds(userId)) {
      await d.devices.revoke(id, 'privilegeWithdrawn', actor);
      revoked.push(id);
    }
  }

  /** What the IdP says of one person; their groups and refresh token are stored at once, their status only by `apply`. */
  type Verdict = { userId: string; issuer: string; email: string; outcome: 'unchanged' | 'unreachable' } | { userId: string; issuer: string; email: string; outcome: 'removed' | 'disabled'; why: string };

  async function decide(userId: string): Promise<Verdict | undefined> {
    const u = await d.users.findById(userId);
    if (!u || u.status !== 'active') return undefined;
    const base = { userId: u.id, issuer: u.issuer, email: u.email };
    // Nothing to ask the IdP with (it gave no refresh token: add offline_access to the scopes).
    if (!u.idp_refresh_token) return { ...base, outcome: 'unreachable' };
    let outcome;
    try {
      outcome = await d.client.refresh(u.issuer, u.idp_refresh_token);
    } catch (e) {
      d.log('users sync: the identity provider could not be asked; nothing changed for this person', { issuer: u.issuer, user: u.id, err: (e as Error).message });
      return { ...base, outcome: 'unreachable' };
    }
    if (outcome.kind === 'invalid-grant') {
      return { ...base, outcome: 'disabled', why: 'the identity provider refused the refresh (person disabled or deleted, or the grant revoked)' };
    }
    if (outcome.kind !== 'tokens') return { ...base, outcome: 'unreachable' };
    let id;
    try {
      id = await d.verifier.verifyIdToken(u.issuer, outcome.idToken, { nonce: null });
    } catch (e) {
      d.log('users sync: the refreshed ID token was refused; nothing changed for this person', { issuer: u.issuer, user: u.id, err: e instanceof LatchkeyError ? e.message : String(e) });
      return { ...base, outcome: 'unreachable' };
    }
    const refreshToken = outcome.refreshToken ?? u.idp_refresh_token;
    // A token about someone else, or groups the IdP left out (too many): not a verdict on this person.
    if (id.subject !== u.subject || id.groupsUnknown) {
      await d.users.synced(u.id, { email: u.email, groups: JSON.parse(u.groups) as string[], status: 'active', refreshToken });
      return { ...base, outcome: 'unreachable' };
    }
    await d.users.synced(u.id, { email: u.email, groups: id.groups, status: 'active', refreshToken });
    const enroll = enrollRefusal(id, d.oidc);
    if ('refusal' in enroll) return { ...base, outcome: 'removed', why: enroll.refusal };
    if ('refusal' in adminRefusal(id, d.oidc)) await d.sessions.revokeSessionsOf(u.id, d.clock().toISOString());
    return { ...base, outcome: 'unchanged' };
  }

  async function apply(v: Verdict, result: UsersSyncResult): Promise<void> {
    result.checked++;
    if (v.outcome === 'unchanged') result.unchanged++;
    else if (v.outcome === 'unreachable') result.unreachable.push(v.email);
    else if (v.outcome === 'removed' || v.outcome === 'disabled') {
      const u = await d.users.findById(v.userId);
      await d.users.synced(v.userId, { email: v.email, groups: u ? (JSON.parse(u.groups) as string[]) : [], status: v.outcome, refreshToken: v.outcome === 'disabled' ? null : undefined });
      await withdraw(v.userId, v.issuer, v.email, v.outcome, v.why, result.revokedDevices);
      result[v.outcome].push(v.email);
    }
  }

  /**
   * Whether one run may take devices from this many people: an IdP that lost or expired every
   * refresh token (restored from backup, idle limits passed) looks like everyone disabled.
   */
  const mayWithdraw = (withdrawals: number, checked: number) => withdrawals <= d.oidc.syncHoldAbove || withdrawals <= checked * MASS_WITHDRAWAL_FRACTION;

  async function runAll(minAgeSeconds: number, opts: { force?: boolean }): Promise<UsersSyncResult> {
    const verdicts: Verdict[] = [];
    let after = '';
    for (;;) {
      const page = await d.users.withLiveDevices(PAGE, after);
      for (const u of page) {
        const now = d.clock();
        if (!(await d.users.claimForSync(u.id, now.toISOString(), new Date(now.getTime() - minAgeSeconds * 1000).toISOString()))) continue;
        const v = await decide(u.id);
        if (v) verdicts.push(v);
      }
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.id;
    }
    const result = emptyResult();
    const withdrawals = verdicts.filter((v) => v.outcome === 'removed' || v.outcome === 'disabled');
    if (!opts.force && !mayWithdraw(withdrawals.length, verdicts.length)) {
      const held = `the identity provider would take devices from ${withdrawals.length} of ${verdicts.length} people at once; nothing was revoked. Check the IdP (a restored backup or expired refresh tokens look like this), then run \`latchkey-server users sync --force\``;
      d.log(`users sync held: ${held}`, { withdrawals: withdrawals.length, checked: verdicts.length });
      await d.tx.inTransaction((trx) => auditRepo(trx).insert({ at: d.clock().toISOString(), actor: 'system', action: 'users.sync-held', target: null, details: { withdrawals: withdrawals.length, checked: verdicts.length } }));
      for (const v of verdicts) {
        result.checked++;
        if (v.outcome === 'unreachable') result.unreachable.push(v.email);
        else if (v.outcome === 'unchanged') result.unchanged++;
      }
      return { ...result, held };
    }
    for (const v of verdicts) await apply(v, result);
    return result;
  }

  let running: Promise<UsersSyncResult> | undefined;

  return {
    /**
     * Asks the IdP about one person now (an admin session being refreshed): their state
     * after the check, and their groups. `unreachable` leaves what the last check stored.
     */
    async recheck(userId: string): Promise<{ status: 'active' | 'removed' | 'disabled' | 'unreachable'; groups: string[] }> {
      const result = emptyResult();
      const now = d.clock().toISOString();
      // Claimed like a sync, so a replica's periodic run never spends the same refresh token.
      if (await d.users.claimForSync(userId, now, now)) {
        const v = await decide(userId);
        // Out of the enrollment groups is users sync's business (it weighs devices); an admin need not enroll.
        if (v && v.outcome !== 'removed') await apply(v, result);
      }
      const u = await d.users.findById(userId);
      if (!u) return { status: 'disabled', groups: [] };
      const groups = JSON.parse(u.groups) as string[];
      if (result.unreachable.length > 0 && u.status === 'active') return { status: 'unreachable', groups };
      return { status: u.status, groups };
    },
    /**
     * Every active person with live devices whom no replica checked in the last
     * `minAgeSeconds` (the claim keeps two replicas from spending one refresh token twice).
     * Devices are taken only after everyone was asked, and not at all past the mass-withdrawal
     * guard unless `force`.
     */
    async syncAll(minAgeSeconds: number, opts: { force?: boolean } = {}): Promise<UsersSyncResult> {
      // One run at a time in this process: a periodic run that outlasts its interval, or admins asking
      // again and again, share the run in progress (a forced one runs after it).
      if (running && !opts.force) return running;
      while (running) await running.catch(() => undefined);
      const run = runAll(minAgeSeconds, opts);
      running = run;
      try {
        return await run;
      } finally {
        if (running === run) running = undefined;
      }
    },
  };
}
