/**
 * Sign-in through the identity provider (`/v1/auth`, protocol/auth.ts): the
 * server is the OAuth client. A flow is started (device grant, or browser
 * with the client's PKCE challenge), kept in `auth_flows` under the hash of
 * a secret only the client holds, and finished once: the ID token comes
 * straight from the IdP's token endpoint and is verified, the person is
 * recorded (`users`), and the purpose decides the result — an admin session
 * (role from IdP groups) or a one-use enrollment token bound to the person
 * (group from IdP groups, per-person device limit).
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { SECRET_PREFIXES, type AdminRole, type AdminSession, type AuthBrowserStarted, type AuthDeviceStarted, type AuthPurpose, type AuthResult } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { hashSecret } from '../auth/secret-hash.js';
import type { ServerConfig } from '../config/config-schema.js';
import { LatchkeyError } from '../errors.js';
import type { GroupsRepo } from '../groups/groups-repo.js';
import type { OidcClient, TokenOutcome } from '../oidc/oidc-client.js';
import type { OidcVerifier } from '../oidc/oidc-verifier.js';
import type { VerifiedIdentity } from '../oidc/oidc-types.js';
import type { AuthFlowsTable } from '../storage/schema.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import { tokensRepo } from '../tokens/tokens-repo.js';
import { usersRepo } from '../users/users-repo.js';
import type { AuthFlowsRepo } from './auth-flows-repo.js';
import { enrollRefusal, PLAIN_EMAIL, adminRefusal } from './sign-in-fns.js';

type OidcSettings = NonNullable<ServerConfig['oidc']>;

/** Issues an admin session for a person (admin/admin-sessions.ts). */
export interface SessionIssuer {
  issue(trx: Trx | undefined, p: { userId: string; email: string; role: AdminRole; actor: string }): Promise<AdminSession>;
}

export interface SignInDeps {
  oidc: OidcSettings;
  client: OidcClient;
  verifier: Pick<OidcVerifier, 'verifyIdToken'>;
  flows: AuthFlowsRepo;
  groups: Pick<GroupsRepo, 'get'>;
  tx: Transactor;
  clock: () => Date;
  sessions: SessionIssuer;
}

/** How long a browser sign-in may take (a device flow lasts as long as the IdP's device code). */
const BROWSER_FLOW_SECONDS = 600;
/** A sign-in's enrollment token: one use, this long. */
const ENROLL_TOKEN_SECONDS = 600;

const secret = (prefix: string) => `${prefix}${randomBytes(32).toString('base64url')}`;
const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
const s256 = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

export type SignInService = ReturnType<typeof createSignInService>;

export function createSignInService(d: SignInDeps) {
  const issuers = d.oidc.issuers.map((i) => i.issuer);

  function pickIssuer(asked: string | undefined): string {
    if (asked !== undefined) {
      if (!issuers.includes(asked)) throw new LatchkeyError('BAD_REQUEST', `issuer ${asked} is not configured on this server; use one of: ${issuers.join(', ')}`);
      return asked;
    }
    if (issuers.length === 1) return issuers[0]!;
    if (issuers.length === 0) throw new LatchkeyError('NOT_FOUND', 'this server has no identity provider configured; enroll with a token from IT, or sign in with an admin token');
    throw new LatchkeyError('BAD_REQUEST', `several identity providers are configured; choose one with --issuer: ${issuers.join(', ')}`);
  }

  /** Room for one more flow: expired ones are pruned, and past the cap a start is refused. */
  async function admitFlow(now: Date): Promise<void> {
    const iso = now.toISOString();
    await d.flows.pruneExpired(iso, 100);
    if ((await d.flows.countLive(iso)) >= d.oidc.maxSignInsInProgress) {
      throw new LatchkeyError('RATE_LIMITED', 'too many sign-ins are in progress on this server; retry in a few minutes', { headers: { 'retry-after': '60' } });
    }
  }

  async function liveFlow(flowId: string, kind: AuthFlowsTable['kind']): Promise<AuthFlowsTable> {
    const flow = await d.flows.find(hashSecret(flowId));
    if (!flow || flow.kind !== kind || flow.expires_at <= d.clock().toISOString()) {
      throw new LatchkeyError('AUTH_EXPIRED', 'this sign-in has expired, was already used, or is unknown; start it again');
    }
    return flow;
  }

  /** The person the ID token names, recorded (or updated) in `users`. */
  async function recordUser(trx: Trx, id: VerifiedIdentity, refreshToken: string | undefined, at: string): Promise<{ userId: string; email: string }> {
    const email = id.email.toLowerCase();
    if (!PLAIN_EMAIL.test(email)) {
      throw new LatchkeyError('USER_NOT_ALLOWED', `the identity provider's email for this person (${JSON.stringify(email.slice(0, 80))}) cannot go into a certificate: only letters, digits and . _ % - are allowed (a '+' would need escaping in the certificate's subject)`);
    }
    const users = usersRepo(trx);
    let known = await users.findBySubject(id.issuer, id.subject);
    if (!known) {
      await users.insertIfAbsent({ id: randomUUID(), issuer: id.issuer, subject: id.subject, email, groups: JSON.stringify(id.groups), status: 'active', idp_refresh_token: refreshToken ?? null, last_sign_in_at: at, last_synced_at: null, created_at: at });
      known = (await users.findBySubject(id.issuer, id.subject))!;
    }
    // A sign-in is the IdP's word now: active again (a removed person whom IT re-added), current groups and token.
    await users.signedIn(known.id, { email, groups: id.groups, refreshToken, at });
    return { userId: known.id, email };
  }

  async function complete(flow: Pick<AuthFlowsTable, 'purpose' | 'issuer' | 'nonce' | 'kind' | 'remote'>, out: TokenOutcome): Promise<AuthResult> {
    if (out.kind === 'denied') throw new LatchkeyError('AUTH_DENIED', 'the sign-in was refused at the identity provider (cancelled, or the client is not allowed)');
    if (out.kind === 'expired' || out.kind === 'invalid-grant') throw new LatchkeyError('AUTH_EXPIRED', 'the identity provider says this sign-in has expired or was already used; start it again');
    if (out.kind !== 'tokens') throw new LatchkeyError('AUTH_PENDING', 'the sign-in is not finished yet');
    // The device grant has no nonce; the browser flow's nonce must come back.
    const id = await d.verifier.verifyIdToken(flow.issuer, out.idToken, { nonce: flow.kind === 'browser' ? flow.nonce : null });
    const now = d.clock();
    const at = now.toISOString();
    const user = { email: id.email.toLowerCase(), issuer: flow.issuer };
    const purpose = flow.purpose as AuthPurpose;
    const decided = purpose === 'admin' ? adminRefusal(id, d.oidc) : enrollRefusal(id, d.oidc);
    if ('refusal' in decided) {
      // Audited: a refused person is worth knowing about; nothing else is written.
      await d.tx.inTransaction((trx) => auditRepo(trx).insert({ at, actor: `user:${user.email}`, action: 'auth.refused', target: null, details: { issuer: flow.issuer, purpose, why: decided.refusal, remote: flow.remote } }));
      throw new LatchkeyError('USER_NOT_ALLOWED', decided.refusal);
    }
    if (purpose === 'admin') {
      const role = (decided as { role: AdminRole }).role;
      const result = await d.tx.inTransaction(async (trx) => {
        const { userId, email } = await recordUser(trx, id, out.refreshToken, at);
        await auditRepo(trx).insert({ at, actor: `user:${email}`, action: 'auth.sign-in', target: userId, details: { issuer: flow.issuer, purpose, role, flow: flow.kind, remote: flow.remote } });
        return d.sessions.issue(trx, { userId, email, role, actor: `user:${email}` });
      });
      await d.tx.durable();
      return { purpose: 'admin', user, session: result };
    }
    const group = (decided as { group: string }).group;
    if (!(await d.groups.get(group))) {
      throw new LatchkeyError('USER_NOT_ALLOWED', `the group "${group}" this person's IdP group maps to does not exist on the server; an admin creates it with \`latchkey-server groups set ${group}\``);
    }
    const enrollToken = secret(SECRET_PREFIXES.enrollToken);
    const expiresAt = new Date(now.getTime() + ENROLL_TOKEN_SECONDS * 1000).toISOString();
    await d.tx.inTransaction(async (trx) => {
      const { userId, email } = await recordUser(trx, id, out.refreshToken, at);
      const max = d.oidc.maxDevicesPerUser;
      const live = await usersRepo(trx).liveDeviceCount(userId);
      if (live >= max) {
        throw new LatchkeyError('USER_DEVICE_LIMIT', `${email} already has ${live} devices, the most one person may have (${max}); ask an admin to revoke one you no longer use (\`latchkey-server devices list --user ${email}\`)`);
      }
      const tokenId = randomUUID();
      await tokensRepo(trx).insert({ id: tokenId, secret_hash: hashSecret(enrollToken), group_name: group, uses: 1, used_count: 0, expires_at: expiresAt, revoked_at: null, created_at: at, created_by: `user:${email}`, user_id: userId });
      await auditRepo(trx).insert({ at, actor: `user:${email}`, action: 'auth.sign-in', target: userId, details: { issuer: flow.issuer, purpose, group, token: tokenId, flow: flow.kind, remote: flow.remote } });
    });
    await d.tx.durable();
    return { purpose: 'enroll', user, enrollToken, group, expiresAt };
  }

  return {
    providers: () => issuers,

    async startDevice(p: { purpose: AuthPurpose; issuer?: string | undefined; remote: string }): Promise<AuthDeviceStarted> {
      const issuer = pickIssuer(p.issuer);
      const now = d.clock();
      await admitFlow(now);
      const auth = await d.client.startDeviceAuthorization(issuer);
      const flowId = secret(SECRET_PREFIXES.flow);
      const expiresAt = new Date(now.getTime() + auth.expiresInSeconds * 1000).toISOString();
      await d.flows.insert({
        id: hashSecret(flowId),
        kind: 'device',
        purpose: p.purpose,
        issuer,
        device_code: auth.deviceCode,
        nonce: randomBytes(16).toString('base64url'),
        state: null,
        code_challenge: null,
        redirect_uri: null,
        interval_seconds: auth.intervalSeconds,
        next_poll_at: now.toISOString(),
        expires_at: expiresAt,
        created_at: now.toISOString(),
        remote: p.remote,
      });
      return {
        flowId,
        userCode: auth.userCode,
        verificationUri: auth.verificationUri,
        ...(auth.verificationUriComplete ? { verificationUriComplete: auth.verificationUriComplete } : {}),
        intervalSeconds: auth.intervalSeconds,
        expiresAt,
      };
    },

    async pollDevice(flowId: string): Promise<AuthResult> {
      const flow = await liveFlow(flowId, 'device');
      const now = d.clock();
      const next = (seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();
      const retry = (seconds: number) => ({ headers: { 'retry-after': String(seconds) } });
      if (!(await d.flows.takePoll(flow.id, now.toISOString(), next(flow.interval_seconds)))) {
        // RFC 8628 §3.5: polling faster than the interval is slowed down.
        throw new LatchkeyError('RATE_LIMITED', `poll at most every ${flow.interval_seconds} s`, retry(flow.interval_seconds));
      }
      const out = await d.client.pollDeviceToken(flow.issuer, flow.device_code!);
      if (out.kind === 'pending') throw new LatchkeyError('AUTH_PENDING', 'waiting for the person to finish signing in at the identity provider', retry(flow.interval_seconds));
      if (out.kind === 'slow-down') {
        const interval = Math.min(flow.interval_seconds + 5, 60);
        await d.flows.slowDown(flow.id, interval, next(interval));
        throw new LatchkeyError('AUTH_PENDING', 'waiting for the person to finish signing in at the identity provider', retry(interval));
      }
      // Finished one way or another: the flow is used once.
      if (!(await d.flows.take(flow.id))) throw new LatchkeyError('AUTH_EXPIRED', 'this sign-in was already used; start it again');
      return complete(flow, out);
    },

    async startBrowser(p: { purpose: AuthPurpose; issuer?: string | undefined; redirectUri: string; codeChallenge: string; remote: string }): Promise<AuthBrowserStarted> {
      const issuer = pickIssuer(p.issuer);
      const now = d.clock();
      await admitFlow(now);
      const flowId = secret(SECRET_PREFIXES.flow);
      const state = randomBytes(24).toString('base64url');
      const nonce = randomBytes(24).toString('base64url');
      const authorizeUrl = await d.client.authorizeUrl(issuer, { redirectUri: p.redirectUri, state, nonce, codeChallenge: p.codeChallenge });
      const expiresAt = new Date(now.getTime() + BROWSER_FLOW_SECONDS * 1000).toISOString();
      await d.flows.insert({ id: hashSecret(flowId), kind: 'browser', purpose: p.purpose, issuer, device_code: null, nonce, state, code_challenge: p.codeChallenge, redirect_uri: p.redirectUri, interval_seconds: 1, next_poll_at: now.toISOString(), expires_at: expiresAt, created_at: now.toISOString(), remote: p.remote });
      return { flowId, authorizeUrl, state, expiresAt };
    },

    async finishBrowser(p: { flowId: string; code: string; state: string; codeVerifier: string }): Promise<AuthResult> {
      const flow = await liveFlow(p.flowId, 'browser');
      if (!sameText(p.state, flow.state ?? '')) throw new LatchkeyError('BAD_REQUEST', 'the state does not match this sign-in; start it again');
      if (!sameText(s256(p.codeVerifier), flow.code_challenge ?? '')) throw new LatchkeyError('BAD_REQUEST', 'the code verifier does not match the challenge this sign-in started with');
      if (!(await d.flows.take(flow.id))) throw new LatchkeyError('AUTH_EXPIRED', 'this sign-in was already used; start it again');
      const out = await d.client.exchangeCode(flow.issuer, { code: p.code, redirectUri: flow.redirect_uri!, codeVerifier: p.codeVerifier });
      return complete(flow, out);
    },
  };
}

