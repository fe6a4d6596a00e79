/**
 * Issue 12: a person's admin session. The audit log names the person; the
 * session ends on time (SESSION_EXPIRED says to sign in again); refresh
 * tokens are one-use with rotation and reuse detection (RFC 6749 §10.4,
 * OAuth 2.0 Security BCP §4.14.2); logout ends it; sessions per person are
 * bounded and dead rows pruned; no secret reaches the audit log or the log.
 * Sessions are issued here through the service, as the sign-in flows do.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { AUTH_PATHS, type AdminRole, type AdminSession, type AdminTokenInfo, type WhoAmI } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import { serverLoggerOptions } from '../logger.js';
import { ENGINES, adminCall, harness, type Harness } from '../testing/harness.js';
import { transactor } from '../storage/transaction.js';
import { createAdminSessions, MAX_ENDED_SESSIONS_PER_USER, MAX_SESSIONS_PER_USER, type Reauthorize } from './admin-sessions.js';
import { adminTokensRepo } from './admin-tokens-repo.js';
import { SESSION_REQUESTS_PER_MINUTE } from './session-routes.js';

type Err = { error: { code: string; message: string } };
const T0 = new Date('2026-12-01T10:00:00Z');

/** The person's role as the IdP would answer it now; `null`: no longer allowed. */
function idp(): { roles: Map<string, AdminRole | null>; asked: string[]; reauthorize: Reauthorize } {
  const roles = new Map<string, AdminRole | null>();
  const asked: string[] = [];
  return {
    roles,
    asked,
    reauthorize: async (userId) => {
      asked.push(userId);
      const r = roles.get(userId);
      if (!r) throw new LatchkeyError('USER_NOT_ALLOWED', 'you are no longer in an admin group at the identity provider');
      return r;
    },
  };
}

async function setup(t: Parameters<typeof harness>[0], engine: (typeof ENGINES)[number], opts: Parameters<typeof harness>[2] = {}) {
  const fake = idp();
  const h = await harness(t, engine, { now: T0, reauthorize: fake.reauthorize, ...opts });
  if (!h) return undefined;
  const sessions = createAdminSessions({ adminTokens: adminTokensRepo(h.db.kysely), tx: transactor(h.db), clock: () => h.clock.now, sessionSeconds: 3600, refreshSeconds: 43_200 });
  const person = async (email: string, role: AdminRole = 'admin') => {
    const id = randomUUID();
    await h.db.kysely.insertInto('users').values({ id, issuer: 'https://idp.example.com', subject: `sub-${email}`, email, groups: '[]', status: 'active', idp_refresh_token: null, last_sign_in_at: null, last_synced_at: null, created_at: T0.toISOString() }).execute();
    fake.roles.set(id, role);
    const signIn = () => sessions.issue(undefined, { userId: id, email, role, actor: `user:${email}` });
    return { id, email, signIn };
  };
  return { h, fake, sessions, person };
}

const refresh = (h: Harness, refreshToken: string, remoteAddress = '127.0.0.1') =>
  h.app.inject({ method: 'POST', url: AUTH_PATHS.refresh, payload: { refreshToken }, remoteAddress }).then((r) => ({ status: r.statusCode, json: JSON.parse(r.body) as AdminSession & Err }));
const logout = (h: Harness, token: string) => h.app.inject({ method: 'POST', url: AUTH_PATHS.logout, headers: { authorization: `Bearer ${token}` } });
const whoami = (h: Harness, token: string) => adminCall<WhoAmI & Err>(h, 'GET', '/v1/admin/whoami', undefined, token);
const auditOf = async (h: Harness) => (await adminCall<{ items: { actor: string; action: string; target: string; details: Record<string, unknown> }[] }>(h, 'GET', '/v1/admin/audit?limit=1000')).json.items;

for (const engine of ENGINES) {
  describe(`admin sessions on ${engine}`, () => {
    test('a session is the person: whoami, and every admin action is audited as user:<email>; it ends on time with SESSION_EXPIRED', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h } = s;
      const ada = await s.person('ada@example.com', 'operator');
      const ses = await ada.signIn();
      assert.match(ses.token, /^lk_ses_[A-Za-z0-9_-]{43}$/);
      assert.match(ses.refreshToken, /^lk_ref_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual({ expiresAt: ses.expiresAt, refreshExpiresAt: ses.refreshExpiresAt, role: ses.role }, { expiresAt: '2026-12-01T11:00:00.000Z', refreshExpiresAt: '2026-12-01T22:00:00.000Z', role: 'operator' });
      assert.deepEqual((await whoami(h, ses.token)).json, { actor: 'user:ada@example.com', role: 'operator', kind: 'session', user: 'ada@example.com', expiresAt: '2026-12-01T11:00:00.000Z' });
      assert.equal((await adminCall(h, 'POST', '/v1/admin/tokens', {}, ses.token)).status, 201);
      const made = (await auditOf(h)).find((e) => e.action === 'token.create')!;
      assert.equal(made.actor, 'user:ada@example.com');
      const created = (await auditOf(h)).find((e) => e.action === 'session.create')!;
      assert.equal(created.actor, 'user:ada@example.com');
      assert.deepEqual(created.details, { user: 'ada@example.com', role: 'operator', expiresAt: '2026-12-01T11:00:00.000Z', refreshExpiresAt: '2026-12-01T22:00:00.000Z' });
      const forbidden = await adminCall<Err>(h, 'GET', '/v1/admin/admin-tokens', undefined, ses.token);
      assert.equal(forbidden.status, 403);
      assert.match(forbidden.json.error.message, /needs the admin role; your session \(ada@example.com\) is operator/);
      h.clock.now = new Date('2026-12-01T11:00:00Z');
      const late = await whoami(h, ses.token);
      assert.equal(late.status, 401);
      assert.equal(late.json.error.code, 'SESSION_EXPIRED');
      assert.equal(late.json.error.message, 'your admin session expired at 2026-12-01T11:00:00.000Z; sign in again with `latchkey-server login`');
    });

    test('refresh rotates: a new session and refresh token, the old ones dead, the role asked again; a refresh token used twice ends every session of the person', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h, fake } = s;
      const ada = await s.person('ada@example.com', 'admin');
      const first = await ada.signIn();
      const elsewhere = await ada.signIn();
      h.clock.now = new Date('2026-12-01T10:50:00Z');
      fake.roles.set(ada.id, 'viewer');
      const r = await refresh(h, first.refreshToken);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(fake.asked, [ada.id], 'the IdP was asked');
      assert.equal(r.json.role, 'viewer', 'with the role it answers now');
      assert.equal(r.json.expiresAt, '2026-12-01T11:50:00.000Z');
      assert.notEqual(r.json.token, first.token);
      assert.notEqual(r.json.refreshToken, first.refreshToken);
      assert.equal((await whoami(h, first.token)).json.error.code, 'SESSION_EXPIRED', 'the old session is over');
      assert.equal((await whoami(h, r.json.token)).status, 200);
      // Replay of the used refresh token: the thief or the client, we cannot tell; every session ends.
      const replay = await refresh(h, first.refreshToken);
      assert.equal(replay.status, 401);
      assert.equal(replay.json.error.code, 'SESSION_EXPIRED');
      assert.match(replay.json.error.message, /already used, so every session of yours was ended/);
      assert.equal((await whoami(h, r.json.token)).json.error.code, 'SESSION_EXPIRED', 'the new session too');
      assert.equal((await whoami(h, elsewhere.token)).json.error.code, 'SESSION_EXPIRED', 'and the other one');
      assert.equal((await refresh(h, r.json.refreshToken)).status, 401, 'its refresh token is dead as well');
      assert.equal(fake.asked.length, 1, 'a replay never reaches the IdP');
      const reuse = (await auditOf(h)).filter((e) => e.action === 'session.reuse');
      assert.equal(reuse.length, 1);
      assert.deepEqual(reuse[0]!.details, { user: 'ada@example.com', endedSessions: 2 });
      // Replaying again changes nothing more and writes nothing more.
      assert.equal((await refresh(h, first.refreshToken)).status, 401);
      assert.equal((await auditOf(h)).filter((e) => e.action === 'session.reuse').length, 1);
    });

    test('refresh refused: past the refresh end, unknown, or the IdP says no (its error, the session untouched)', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h, fake } = s;
      const ada = await s.person('ada@example.com');
      const a = await ada.signIn();
      fake.roles.set(ada.id, null);
      const no = await refresh(h, a.refreshToken);
      assert.equal(no.status, 403);
      assert.equal(no.json.error.code, 'USER_NOT_ALLOWED');
      fake.roles.set(ada.id, 'admin');
      h.clock.now = new Date('2026-12-01T22:00:00Z');
      const old = await refresh(h, a.refreshToken);
      assert.equal(old.status, 401);
      assert.equal(old.json.error.message, 'this session could be refreshed until 2026-12-01T22:00:00.000Z; sign in again with `latchkey-server login`');
      const unknown = await refresh(h, 'lk_ref_' + 'A'.repeat(43));
      assert.equal(unknown.json.error.code, 'SESSION_EXPIRED');
      const malformed = await refresh(h, 'short');
      assert.equal(malformed.status, 400);
    });

    test('logout ends the session and its refresh token; again is harmless; an API token is not a session', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h } = s;
      const ada = await s.person('ada@example.com');
      const a = await ada.signIn();
      assert.equal((await logout(h, a.token)).statusCode, 204);
      assert.equal((await whoami(h, a.token)).json.error.message, 'your admin session was ended; sign in again with `latchkey-server login`');
      const r = await refresh(h, a.refreshToken);
      assert.equal(r.json.error.code, 'SESSION_EXPIRED');
      assert.doesNotMatch(r.json.error.message, /already used/, 'a logged-out refresh token is not a replay');
      assert.equal((await logout(h, a.token)).statusCode, 204);
      assert.equal((await logout(h, 'lk_ses_unknown')).statusCode, 204);
      assert.equal((await h.app.inject({ method: 'POST', url: AUTH_PATHS.logout })).statusCode, 401);
      const api = await logout(h, h.adminToken);
      assert.equal(api.statusCode, 400);
      assert.match(api.body, /is an admin API token: revoke it with `latchkey-server admin-token revoke /);
      assert.equal((await whoami(h, h.adminToken)).status, 200);
      const ends = (await auditOf(h)).filter((e) => e.action === 'session.end');
      assert.deepEqual(ends.map((e) => e.actor), ['user:ada@example.com']);
    });

    test('admins list live sessions and end one; at most 20 live sessions per person; dead rows are pruned', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h } = s;
      const ada = await s.person('ada@example.com');
      const bob = await s.person('bob@example.com', 'viewer');
      const first = await ada.signIn();
      for (let i = 1; i < MAX_SESSIONS_PER_USER + 5; i++) {
        h.clock.now = new Date(T0.getTime() + i * 1000);
        await ada.signIn();
      }
      const b = await bob.signIn();
      const live = (await adminCall<{ items: AdminTokenInfo[] }>(h, 'GET', '/v1/admin/admin-tokens?sessions=true')).json.items.filter((x) => x.kind === 'session');
      assert.equal(live.filter((x) => x.user === 'ada@example.com').length, MAX_SESSIONS_PER_USER);
      assert.equal((await whoami(h, first.token)).status, 401, 'the oldest was ended');
      assert.equal((await adminCall<{ items: AdminTokenInfo[] }>(h, 'GET', '/v1/admin/admin-tokens')).json.items.some((x) => x.kind === 'session'), false, 'sessions only with ?sessions=true');
      const bobs = live.find((x) => x.user === 'bob@example.com')!;
      const ended = await adminCall<AdminTokenInfo>(h, 'DELETE', `/v1/admin/admin-tokens/${bobs.id}`);
      assert.equal(ended.status, 200);
      assert.equal((await whoami(h, b.token)).json.error.code, 'SESSION_EXPIRED');
      assert.equal((await auditOf(h)).find((e) => e.action === 'admin-token.revoke')!.details.user, 'bob@example.com');
      // A day later every one of those rows is dead; each sign-in deletes a bounded batch of them (here 5).
      const repo = adminTokensRepo(h.db.kysely);
      const small = createAdminSessions({ adminTokens: repo, tx: transactor(h.db), clock: () => h.clock.now, sessionSeconds: 3600, refreshSeconds: 43_200, pruneBatch: 5 });
      const sessionRows = async () => (await repo.count()) - 1;
      assert.equal(await sessionRows(), MAX_SESSIONS_PER_USER + 1, 'ada 20 (the evicted ones are deleted), bob 1 (ended)');
      h.clock.now = new Date('2026-12-02T23:00:00Z');
      const again = () => small.issue(undefined, { userId: ada.id, email: ada.email, role: 'admin', actor: `user:${ada.email}` });
      await again();
      assert.equal(await sessionRows(), MAX_SESSIONS_PER_USER + 1 - 5 + 1, 'five pruned, one issued');
      for (let i = 0; i < 5; i++) await again();
      assert.equal(await sessionRows(), 6, 'all dead rows gone, the six new ones live');
    });

    test('a person who refreshes in a loop keeps at most 80 rotated session rows; the newest still catch a replay', async (t) => {
      const s = await setup(t, engine);
      if (!s) return;
      const { h } = s;
      const ada = await s.person('ada@example.com');
      let cur = await ada.signIn();
      const rotated: string[] = [];
      for (let i = 0; i < 130; i++) {
        h.clock.now = new Date(T0.getTime() + (i + 1) * 1000);
        const r = await refresh(h, cur.refreshToken, `10.2.${i >> 8}.${i & 255}`);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        rotated.push(cur.refreshToken);
        cur = r.json;
      }
      const repo = adminTokensRepo(h.db.kysely);
      assert.equal((await repo.endedSessionsBeyond(ada.id, 0)).length, MAX_ENDED_SESSIONS_PER_USER);
      assert.equal(await repo.count(), 1 + MAX_ENDED_SESSIONS_PER_USER + 1, 'the bootstrap token, the rotated rows, the live session');
      assert.equal((await refresh(h, rotated[0]!, '10.3.0.2')).json.error.message, 'this refresh token is not known (the session was ended, or expired long ago); sign in again with `latchkey-server login`', 'the oldest are gone');
      assert.equal((await whoami(h, cur.token)).status, 200);
      const replay = await refresh(h, rotated.at(-5)!, '10.3.0.1');
      assert.match(replay.json.error.message, /already used/);
      assert.equal((await whoami(h, cur.token)).status, 401, 'the replay ended the live session');
    });

    test('secrets never reach the audit log, error bodies or the log (production logger, debug level)', async (t) => {
      const s = await setup(t, engine, { logger: serverLoggerOptions('debug') });
      if (!s) return;
      const { h } = s;
      const ada = await s.person('ada@example.com');
      const a = await ada.signIn();
      const r = await refresh(h, a.refreshToken);
      const replay = await refresh(h, a.refreshToken);
      const made = await adminCall<{ token: string }>(h, 'POST', '/v1/admin/admin-tokens', { name: 'ci', role: 'viewer' });
      await whoami(h, a.token);
      await logout(h, r.json.token);
      await adminCall(h, 'GET', '/v1/admin/whoami', undefined, made.json.token);
      const secrets = [a.token, a.refreshToken, r.json.token, r.json.refreshToken, made.json.token, h.adminToken];
      const everything = [JSON.stringify(await auditOf(h)), JSON.stringify(replay.json), h.logs.join('\n')].join('\n');
      for (const secret of secrets) assert.ok(!everything.includes(secret), `a secret (${secret.slice(0, 8)}…) leaked`);
      assert.doesNotMatch(everything, /lk_(ses|ref|adm)_[A-Za-z0-9_-]{20}/);
      assert.ok(h.logs.length > 5, 'the log was captured');
    });
  });
}

describe('refresh under load and concurrency', () => {
  test('10,000 failed refreshes from one address: 429 past the limit, nothing written; replays from many addresses audit once', async (t) => {
    const s = await setup(t, 'sqlite');
    if (!s) return;
    const { h } = s;
    const ada = await s.person('ada@example.com');
    const a = await ada.signIn();
    await refresh(h, a.refreshToken, '10.9.9.9');
    const repo = adminTokensRepo(h.db.kysely);
    const rows = await repo.count();
    const audits = (await auditOf(h)).length;
    const statuses = new Map<number, number>();
    const started = Date.now();
    for (let i = 0; i < 10_000; i++) {
      const r = await h.app.inject({ method: 'POST', url: AUTH_PATHS.refresh, payload: { refreshToken: `lk_ref_guess${String(i).padStart(32, '0')}` }, remoteAddress: '10.0.0.1' });
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    }
    // One-minute windows: a slow machine may cross into a second one.
    const windows = 1 + Math.floor((Date.now() - started) / 60_000);
    assert.equal((statuses.get(401) ?? 0) + (statuses.get(429) ?? 0), 10_000, JSON.stringify(Object.fromEntries(statuses)));
    assert.ok(statuses.get(401)! >= SESSION_REQUESTS_PER_MINUTE && statuses.get(401)! <= SESSION_REQUESTS_PER_MINUTE * windows, JSON.stringify(Object.fromEntries(statuses)));
    for (let i = 0; i < 500; i++) assert.equal((await refresh(h, a.refreshToken, `10.1.${i >> 8}.${i & 255}`)).status, 401);
    assert.equal(await repo.count(), rows, 'no row added');
    assert.equal((await auditOf(h)).length, audits + 1, 'one session.reuse entry, not 500');
  });

  test('two refreshes of one token at once on postgres: one new session, the other is a replay', async (t) => {
    const s = await setup(t, 'postgres');
    if (!s) return;
    const { h } = s;
    const ada = await s.person('ada@example.com');
    for (let round = 0; round < 5; round++) {
      const a = await ada.signIn();
      const [x, y] = await Promise.all([refresh(h, a.refreshToken, '10.0.0.1'), refresh(h, a.refreshToken, '10.0.0.2')]);
      assert.deepEqual([x.status, y.status].sort(), [200, 401], `round ${round}`);
      const winner = x.status === 200 ? x : y;
      // The loser's reuse detection ran after the winner committed: the new session is ended too.
      assert.equal((await whoami(h, winner.json.token)).json.error?.code, 'SESSION_EXPIRED', `round ${round}`);
    }
  });
});
