/**
 * Issue 12: admin API tokens for automation — named, with a role no higher
 * than their creator's, an expiry and a last-used time written at most once
 * a minute; the bootstrap token keeps working until revoked, and the last
 * admin credential cannot be revoked while nobody could sign in instead.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import type { AdminTokenCreateResponse, AdminTokenInfo, WhoAmI } from '@latchkey/protocol';
import { OidcConfigSchema, type ServerConfig } from '../config/config-schema.js';
import { ENGINES, adminCall, harness, type Harness } from '../testing/harness.js';
import { transactor } from '../storage/transaction.js';
import { adminTokensRepo } from './admin-tokens-repo.js';
import { createAdminTokensService } from './admin-tokens-service.js';

type Err = { error: { code: string; message: string } };

const create = (h: Harness, body: Record<string, unknown>, token = h.adminToken) => adminCall<AdminTokenCreateResponse & Err>(h, 'POST', '/v1/admin/admin-tokens', body, token);
const list = async (h: Harness, q = ''): Promise<AdminTokenInfo[]> => (await adminCall<{ items: AdminTokenInfo[] }>(h, 'GET', `/v1/admin/admin-tokens${q}`)).json.items;
const audit = async (h: Harness, action: string) => (await adminCall<{ items: { actor: string; target: string; details: Record<string, unknown> }[] }>(h, 'GET', `/v1/admin/audit?action=${action}`)).json.items;
const row = (h: Harness, id: string) => adminTokensRepo(h.db.kysely).findById(id);

/** Waits (bounded) for a credential's last use to be written: it is written after the answer. */
async function lastUsedBecomes(h: Harness, id: string, want: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const got = (await row(h, id))?.last_used_at;
    if (got === want) return;
    assert.ok(Date.now() < deadline, `last_used_at of ${id} is ${got}, want ${want}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const engine of ENGINES) {
  describe(`admin API tokens on ${engine}`, () => {
    test('create: secret lk_adm_ shown once, 90 days by default, names the creator; the token works with its role and the audit log names it', async (t) => {
      const h = await harness(t, engine, { now: new Date('2026-12-01T10:00:00Z') });
      if (!h) return;
      const r = await create(h, { name: 'ci-deploy', role: 'operator' });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.match(r.json.token, /^lk_adm_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual({ ...r.json.info, id: 'x' }, { id: 'x', name: 'ci-deploy', role: 'operator', kind: 'token', user: null, createdAt: '2026-12-01T10:00:00.000Z', createdBy: 'admin:initial-admin', expiresAt: '2027-03-01T10:00:00.000Z', lastUsedAt: null, revokedAt: null });
      const who = await adminCall<WhoAmI>(h, 'GET', '/v1/admin/whoami', undefined, r.json.token);
      assert.deepEqual(who.json, { actor: 'admin:ci-deploy', role: 'operator', kind: 'token', user: null, expiresAt: '2027-03-01T10:00:00.000Z' });
      // An operator action is audited under the token's name.
      const tok = await adminCall<{ info: { id: string } }>(h, 'POST', '/v1/admin/tokens', {}, r.json.token);
      assert.equal(tok.status, 201);
      assert.equal((await audit(h, 'token.create'))[0]!.actor, 'admin:ci-deploy');
      const created = (await audit(h, 'admin-token.create'))[0]!;
      assert.equal(created.actor, 'admin:initial-admin');
      assert.deepEqual(created.details, { name: 'ci-deploy', role: 'operator', expiresAt: '2027-03-01T10:00:00.000Z' });
      // Listing never shows a secret or its hash.
      const listed = await adminCall(h, 'GET', '/v1/admin/admin-tokens');
      assert.doesNotMatch(JSON.stringify(listed.json), /lk_adm_|secret|hash/);
      const kinds = (await list(h)).map((x) => `${x.name}/${x.kind}`).sort();
      assert.deepEqual(kinds, ['ci-deploy/token', 'initial-admin/bootstrap']);
    });

    test('role ceiling and roles: viewer and operator tokens may not manage admin tokens; nobody makes a token above their own role', async (t) => {
      const h = await harness(t, engine);
      if (!h) return;
      const viewer = (await create(h, { name: 'dash', role: 'viewer' })).json.token;
      const operator = (await create(h, { name: 'ops', role: 'operator' })).json.token;
      for (const tok of [viewer, operator]) {
        const r = await create(h, { name: 'escalate', role: 'admin' }, tok);
        assert.equal(r.status, 403);
        assert.match(r.json.error.message, /this action needs the admin role; the token "(dash|ops)" is (viewer|operator)/);
        assert.equal((await adminCall(h, 'GET', '/v1/admin/admin-tokens', undefined, tok)).status, 403);
      }
      assert.equal((await adminCall<WhoAmI>(h, 'GET', '/v1/admin/whoami', undefined, viewer)).json.role, 'viewer', 'whoami takes any role');
      // An admin API token administers, but mints no further tokens: a leaked one could otherwise make itself permanent.
      const auto = (await create(h, { name: 'auto', role: 'admin' })).json.token;
      const minted = await create(h, { name: 'persist', role: 'viewer' }, auto);
      assert.equal(minted.status, 403);
      assert.match(minted.json.error.message, /an admin API token cannot make admin tokens: sign in with `latchkey-server login`, or use the bootstrap token/);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/admin-tokens', undefined, auto)).status, 200);
      // The service's own ceiling, for any future route with a lower minimum role.
      const svc = createAdminTokensService({ adminTokens: adminTokensRepo(h.db.kysely), tx: transactor(h.db), clock: () => h.clock.now, rowLocks: engine === 'postgres', idpConfigured: false });
      await assert.rejects(svc.create({ name: 'up', role: 'admin' }, { role: 'operator', kind: 'session', actor: 'user:ops@example.com' }), (e: Error & { code?: string }) => e.code === 'FORBIDDEN' && /you are operator and cannot make a token with more rights \(admin\)/.test(e.message));
      assert.equal((await svc.create({ name: 'same', role: 'operator' }, { role: 'operator', kind: 'session', actor: 'user:ops@example.com' })).info.role, 'operator');
      assert.equal((await list(h)).some((x) => x.name === 'up'), false, 'the refused one was not made');
    });

    test('name unique among live tokens (409); ttl bounds; a revoked name is free again', async (t) => {
      const h = await harness(t, engine, { now: new Date('2026-12-01T10:00:00Z') });
      if (!h) return;
      assert.equal((await create(h, { name: 'ci', role: 'viewer' })).status, 201);
      const dup = await create(h, { name: 'ci', role: 'admin' });
      assert.equal(dup.status, 409);
      assert.match(dup.json.error.message, /an admin token named "ci" exists and is live; choose another name, or revoke it first/);
      assert.equal((await create(h, { name: 'initial-admin', role: 'viewer' })).status, 409, 'the bootstrap token name is taken too');
      const tooLong = await create(h, { name: 'year', role: 'viewer', ttl: '366d' });
      assert.equal(tooLong.status, 400);
      assert.match(tooLong.json.error.message, /between 1 minute and 365 days/);
      assert.equal((await create(h, { name: 'year', role: 'viewer', ttl: 365 * 86400 + 1 })).status, 400);
      const year = await create(h, { name: 'year', role: 'viewer', ttl: '365d' });
      assert.equal(year.json.info.expiresAt, '2027-12-01T10:00:00.000Z');
      assert.equal((await create(h, { name: 'Bad Name', role: 'viewer' })).status, 400);
      const ci = (await list(h)).find((x) => x.name === 'ci')!;
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${ci.id}`)).status, 200);
      assert.equal((await create(h, { name: 'ci', role: 'viewer' })).status, 201, 'a revoked token no longer holds its name');
    });

    test('expiry and revocation: an expired token is refused saying how to make a new one; a revoked one says so', async (t) => {
      const h = await harness(t, engine, { now: new Date('2026-12-01T10:00:00Z') });
      if (!h) return;
      const r = await create(h, { name: 'short', role: 'viewer', ttl: '1h' });
      assert.equal((await adminCall(h, 'GET', '/v1/admin/whoami', undefined, r.json.token)).status, 200);
      h.clock.now = new Date('2026-12-01T11:00:00Z');
      const late = await adminCall<Err>(h, 'GET', '/v1/admin/whoami', undefined, r.json.token);
      assert.equal(late.status, 401);
      assert.equal(late.json.error.code, 'UNAUTHORIZED');
      assert.equal(late.json.error.message, 'the admin token "short" expired at 2026-12-01T11:00:00.000Z; an admin makes a new one with `latchkey-server admin-token create --name short --role viewer`');
      const other = await create(h, { name: 'other', role: 'viewer' });
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${other.json.info.id}`)).status, 200);
      const revoked = await adminCall<Err>(h, 'GET', '/v1/admin/whoami', undefined, other.json.token);
      assert.equal(revoked.status, 401);
      assert.match(revoked.json.error.message, /the admin token "other" was revoked at 2026-12-01T11:00:00.000Z/);
      const again = await adminCall<Err>(h, 'DELETE', `/v1/admin/admin-tokens/${other.json.info.id}`);
      assert.equal(again.status, 409);
      assert.equal((await adminCall<Err>(h, 'DELETE', '/v1/admin/admin-tokens/nope')).status, 404);
      const rev = await audit(h, 'admin-token.revoke');
      assert.equal(rev.length, 1);
      assert.deepEqual(rev[0]!.details, { name: 'other', kind: 'token', role: 'viewer' });
    });

    test('last used is written at most once a minute per token, and not on the request path', async (t) => {
      const h = await harness(t, engine, { now: new Date('2026-12-01T10:00:00Z') });
      if (!h) return;
      const r = await create(h, { name: 'busy', role: 'viewer' });
      const id = r.json.info.id;
      const call = () => adminCall(h, 'GET', '/v1/admin/whoami', undefined, r.json.token);
      await call();
      await lastUsedBecomes(h, id, '2026-12-01T10:00:00.000Z');
      h.clock.now = new Date('2026-12-01T10:00:30Z');
      for (let i = 0; i < 20; i++) await call();
      // Had any of those written (10:00:30), the use at 10:01:01 would be within a minute of it and not written.
      h.clock.now = new Date('2026-12-01T10:01:01Z');
      await call();
      await lastUsedBecomes(h, id, '2026-12-01T10:01:01.000Z');
      assert.equal((await list(h)).find((x) => x.id === id)!.lastUsedAt, '2026-12-01T10:01:01.000Z');
    });

    test('the last live admin credential cannot be revoked without an identity provider; the bootstrap token can once another admin exists', async (t) => {
      const h = await harness(t, engine, { now: new Date('2026-12-01T10:00:00Z') });
      if (!h) return;
      const boot = (await list(h)).find((x) => x.kind === 'bootstrap')!;
      const refused = await adminCall<Err>(h, 'DELETE', `/v1/admin/admin-tokens/${boot.id}`);
      assert.equal(refused.status, 409);
      assert.match(refused.json.error.message, /"initial-admin" is the last live credential with the admin role and no identity provider is configured: revoking it would leave nobody able to administer this server/);
      assert.match(refused.json.error.message, /latchkey-server admin-token create --name NAME --role admin/);
      // Viewers and expired admins do not count.
      await create(h, { name: 'viewer', role: 'viewer' });
      const shortAdmin = await create(h, { name: 'brief', role: 'admin', ttl: '1m' });
      h.clock.now = new Date('2026-12-01T10:01:00Z');
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${boot.id}`)).status, 409);
      assert.equal((await adminCall(h, 'GET', '/v1/admin/whoami', undefined, shortAdmin.json.token)).status, 401);
      const next = await create(h, { name: 'next-admin', role: 'admin' });
      const ok = await adminCall<AdminTokenInfo>(h, 'DELETE', `/v1/admin/admin-tokens/${boot.id}`);
      assert.equal(ok.status, 200);
      assert.equal(ok.json.kind, 'bootstrap');
      assert.equal((await adminCall(h, 'GET', '/v1/admin/whoami')).status, 401, 'the bootstrap token is switched off');
      const self = await adminCall<Err>(h, 'DELETE', `/v1/admin/admin-tokens/${next.json.info.id}`, undefined, next.json.token);
      assert.equal(self.status, 409, 'and now next-admin is the last one');
    });

    test('with an identity provider configured, the last admin token can be revoked (people sign in instead)', async (t) => {
      // As config-load fills in an oidc section's defaults.
      const oidc = Value.Default(OidcConfigSchema, { issuers: [{ issuer: 'https://idp.example.com', clientId: 'latchkey' }], adminGroups: { admin: ['admins'] }, syncIntervalSeconds: 0 }) as NonNullable<ServerConfig['oidc']>;
      const h = await harness(t, engine, { config: { oidc } });
      if (!h) return;
      const boot = (await list(h)).find((x) => x.kind === 'bootstrap')!;
      assert.equal((await adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${boot.id}`)).status, 200);
    });
  });
}

describe('admin token changes under concurrency on postgres', () => {
  test('two admins revoking the last two admin tokens at once: one is refused; two creates of one name: one 409', async (t) => {
    const h = await harness(t, 'postgres');
    if (!h) return;
    const a = await create(h, { name: 'a', role: 'admin' });
    const boot = (await list(h)).find((x) => x.kind === 'bootstrap')!;
    for (let round = 0; round < 5; round++) {
      const both: number[] = (await Promise.all([adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${boot.id}`, undefined, a.json.token), adminCall(h, 'DELETE', `/v1/admin/admin-tokens/${a.json.info.id}`)])).map((r) => r.status);
      assert.deepEqual(both.sort(), [200, 409], `round ${round}`);
      const live: number = (await adminTokensRepo(h.db.kysely).liveAdminIds(h.clock.now.toISOString())).length;
      assert.equal(live, 1, 'one admin credential is left');
      // Put back the other one for the next round (directly: the survivor may be either).
      await h.db.kysely.updateTable('admin_tokens').set({ revoked_at: null }).where('id', 'in', [boot.id, a.json.info.id]).execute();
    }
    const made = await Promise.all(Array.from({ length: 8 }, () => create(h, { name: 'race', role: 'viewer' })));
    assert.deepEqual(made.map((m) => m.status).sort(), [201, 409, 409, 409, 409, 409, 409, 409]);
  });
});
