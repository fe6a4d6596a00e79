/**
 * A stored admin session used by admin commands: refreshed only when due
 * (or refused by the server), never twice for the same refresh token — also
 * by two processes at once — and a dead session removed with what to do.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AdminSession } from '@latchkey/protocol';
import { ApiError } from '../cli-errors.js';
import { REFRESH_MARGIN_MS, sessionToken } from './admin-session.js';
import { entry } from '../testing/session-fixtures.js';
import { sessionStore } from './session-store.js';

const ORIGIN = 'https://latchkey.example.com:8443';
const T0 = new Date('2026-12-01T10:00:00.000Z');

function setup(t: { after(fn: () => unknown): void }, over: Partial<AdminSession> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-adm-session-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = sessionStore(dir);
  const calls: string[] = [];
  let next: (rt: string) => Promise<AdminSession> = async () => ({ ...entry(ORIGIN, 9).session, token: `lk_ses_${'n'.repeat(43)}`, refreshToken: `lk_ref_${'n'.repeat(43)}`, expiresAt: '2026-12-01T12:00:00.000Z', role: 'admin' });
  const deps = (now: Date) => ({
    store,
    origin: ORIGIN,
    clock: () => now,
    refresh: (rt: string) => {
      calls.push(rt);
      return next(rt);
    },
  });
  return {
    dir,
    store,
    calls,
    deps,
    setRefresh: (f: typeof next) => void (next = f),
    seed: () => store.locked(() => store.put(entry(ORIGIN, 1, { expiresAt: '2026-12-01T11:00:00.000Z', ...over }))),
  };
}

describe('admin session of the CLI', () => {
  test('used as is until 60 s before its end; then refreshed once and the new one stored', async (t) => {
    const s = setup(t);
    await s.seed();
    const old = entry(ORIGIN, 1).session;
    assert.equal(await sessionToken(s.deps(T0)), old.token);
    assert.equal(await sessionToken(s.deps(new Date(Date.parse('2026-12-01T11:00:00.000Z') - REFRESH_MARGIN_MS - 1))), old.token);
    assert.deepEqual(s.calls, []);
    const due = new Date(Date.parse('2026-12-01T11:00:00.000Z') - REFRESH_MARGIN_MS);
    const fresh = await sessionToken(s.deps(due));
    assert.equal(fresh, `lk_ses_${'n'.repeat(43)}`);
    assert.deepEqual(s.calls, [old.refreshToken]);
    const stored = await s.store.get(ORIGIN);
    assert.equal(stored?.session.refreshToken, `lk_ref_${'n'.repeat(43)}`);
    assert.equal(stored?.session.role, 'admin', 'the role the server gives now');
    assert.equal(stored?.user.email, 'ada@example.com');
    assert.equal(stored?.caPem, entry(ORIGIN).caPem, 'the trusted root stays with it');
    assert.equal(await sessionToken(s.deps(due)), fresh, 'the refreshed session is used, not refreshed again');
    assert.equal(s.calls.length, 1);
    assert.equal(await sessionToken({ ...s.deps(T0), origin: 'https://other.example.com' }), undefined, 'no session for another server');
  });

  test('a token the server refused (401) is refreshed even if it looks fresh, unless another process already did', async (t) => {
    const s = setup(t);
    await s.seed();
    assert.equal(await sessionToken(s.deps(T0), `lk_ses_${'z'.repeat(43)}`), entry(ORIGIN, 1).session.token, 'refused token is not the stored one: another process refreshed; use the stored one');
    assert.deepEqual(s.calls, []);
    assert.equal(await sessionToken(s.deps(T0), entry(ORIGIN, 1).session.token), `lk_ses_${'n'.repeat(43)}`);
    assert.equal(s.calls.length, 1);
  });

  test('a dead session (refresh refused, or past its refresh end) is removed and the message says to sign in again', async (t) => {
    const s = setup(t);
    await s.seed();
    s.setRefresh(() => Promise.reject(new ApiError(401, 'SESSION_EXPIRED', 'the refresh token has been used already')));
    await assert.rejects(sessionToken(s.deps(new Date('2026-12-01T11:30:00.000Z'))), (e: Error) => {
      assert.ok(e instanceof ApiError && e.code === 'SESSION_EXPIRED');
      assert.equal(e.message, `your admin session at ${ORIGIN} has ended (the refresh token has been used already); sign in again: latchkey-server login --server ${ORIGIN}`);
      return true;
    });
    assert.equal(await s.store.get(ORIGIN), undefined);
    await s.seed();
    await assert.rejects(sessionToken(s.deps(new Date('2026-12-01T22:00:00.000Z'))), /could be renewed until 2026-12-01T22:00:00\.000Z and has ended; sign in again: latchkey-server login --server/);
    assert.equal(await s.store.get(ORIGIN), undefined);
    assert.equal(s.calls.length, 1, 'past its refresh end nothing is sent');
  });

  test('the IdP unreachable at refresh: the current session serves while it lasts, then the error; no longer allowed: says so', async (t) => {
    const s = setup(t);
    await s.seed();
    s.setRefresh(() => Promise.reject(new ApiError(503, 'IDP_UNAVAILABLE', 'the identity provider did not answer')));
    assert.equal(await sessionToken(s.deps(new Date('2026-12-01T10:59:30.000Z'))), entry(ORIGIN, 1).session.token);
    await assert.rejects(sessionToken(s.deps(new Date('2026-12-01T11:00:00.000Z'))), /the identity provider did not answer/);
    assert.ok(await s.store.get(ORIGIN), 'kept: a later refresh may work');
    s.setRefresh(() => Promise.reject(new ApiError(403, 'USER_NOT_ALLOWED', 'ada@example.com is in none of the admin groups')));
    await assert.rejects(sessionToken(s.deps(new Date('2026-12-01T11:00:00.000Z'))), /the identity provider no longer lets ada@example\.com administer https:\/\/latchkey\.example\.com:8443: ada@example\.com is in none of the admin groups/);
  });

  test('two processes due at once: one refresh, both get the new session, the refresh token is never spent twice', async (t) => {
    const s = setup(t, { expiresAt: new Date(Date.now() + 30_000).toISOString(), refreshExpiresAt: new Date(Date.now() + 3600_000).toISOString() });
    await s.seed();
    const spent = join(s.dir, '..', `spent-${process.pid}-${Date.now()}`);
    mkdirSync(spent);
    t.after(() => rmSync(spent, { recursive: true, force: true }));
    const go = join(spent, '..', `go-${process.pid}-${Date.now()}`);
    t.after(() => rmSync(go, { force: true }));
    const child = fileURLToPath(new URL('../testing/session-refresh-child.js', import.meta.url));
    const run = () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [child, s.dir, ORIGIN, spent, go], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('exit', (code) => resolve({ code, out, err }));
      });
    const runs = [run(), run(), run()];
    await new Promise((r) => setTimeout(r, 500));
    writeFileSync(go, '');
    const done = await Promise.all(runs);
    assert.deepEqual(done.map((d) => [d.code, d.err]), done.map(() => [0, '']));
    const tokens = new Set(done.map((d) => d.out.trim()));
    assert.equal(tokens.size, 1, `all use the one new session: ${[...tokens].join(', ')}`);
    assert.deepEqual(readdirSync(spent), [entry(ORIGIN, 1).session.refreshToken], 'the old refresh token was spent once');
    assert.equal((await s.store.get(ORIGIN))?.session.token, [...tokens][0]);
  });
});
