/**
 * Issue 13, the console's guards in a real browser (headless Chromium)
 * against a real latchkey-server: a viewer is shown no action and the API
 * refuses the action anyway; a change without the CSRF header is refused;
 * a session whose token was revoked, or that was signed out in another tab,
 * is sent to sign-in with the page to come back to, and comes back there.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chromiumOrSkip } from './support/idp/idp-login.js';
import { enrollDevice } from './support/devices.js';
import { callFromPage, consoleSession, launchBrowser, newPage, settled, signInWithToken } from './support/console/console-browser.js';
import { adminApiToken, serverCli, serverJson, startConsoleServer } from './support/console/console-server.js';

describe('issue 13: roles, CSRF and expired sessions in the console', () => {
  test('a viewer sees no action and the API refuses it anyway; no CSRF header → 403 CSRF; a revoked or signed-out session goes to /sign-in?next= and back', { timeout: 180_000 }, async (t) => {
    if (!chromiumOrSkip(t)) return;
    const s = await startConsoleServer(t);
    const browser = await launchBrowser(t);
    const device = await enrollDevice(s.server, 'laptop-roles');
    const revokePath = `/v1/admin/devices/${device.id}/revoke`;
    const deviceStatus = async () => (await serverJson<{ status: string }>(s, ['devices', 'show', device.id])).status;

    // A viewer: the device's page shows no action, the navigation no Admins, the tokens page no form.
    const viewerToken = await adminApiToken(s, 'v', 'viewer');
    const viewer = await newPage(browser);
    await signInWithToken(viewer, s.url, viewerToken.token, `/devices/${device.id}`);
    await viewer.locator('.facts .badge', { hasText: 'active' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'Revoke' }).count(), 0, 'no Revoke button for a viewer');
    assert.equal(await viewer.getByRole('button', { name: 'Renew now' }).count(), 0);
    assert.equal(await viewer.getByRole('group', { name: 'Actions' }).count(), 0);
    assert.equal(await viewer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admins' }).count(), 0);
    await viewer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens' }).click();
    await settled(viewer);
    assert.equal(await viewer.getByRole('button', { name: 'Create token' }).count(), 0);
    // ... and the API refuses the action anyway, with the right CSRF token.
    const me = await consoleSession(viewer);
    assert.equal(me.role, 'viewer');
    const refused = await callFromPage(viewer, 'POST', revokePath, me.csrfToken, { reason: 'keyCompromise' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error?.code, 'FORBIDDEN');
    assert.match(refused.body.error?.message ?? '', /needs the operator role/);
    assert.equal(await deviceStatus(), 'active');

    // An admin's change without the CSRF header, or with another value, is refused.
    const ops = await adminApiToken(s, 'ops', 'admin');
    const admin = await newPage(browser);
    await signInWithToken(admin, s.url, ops.token, `/devices/${device.id}`);
    await admin.getByRole('group', { name: 'Actions' }).getByRole('button', { name: 'Revoke' }).waitFor();
    for (const csrf of [null, 'not-the-token']) {
      const r = await callFromPage(admin, 'POST', revokePath, csrf, { reason: 'keyCompromise' });
      assert.equal(r.status, 403, `CSRF header ${csrf ?? '(none)'}`);
      assert.equal(r.body.error?.code, 'CSRF');
      assert.match(r.body.error?.message ?? '', /x-latchkey-csrf/);
    }
    assert.equal(await deviceStatus(), 'active', 'nothing was revoked');

    // The token the admin signed in with is revoked: the session is over; the next action lands on sign-in.
    await serverCli(s, ['admin-token', 'revoke', ops.id]);
    await admin.getByRole('button', { name: 'Renew now' }).click();
    await admin.waitForURL((u) => u.pathname === '/sign-in');
    assert.equal(new URL(admin.url()).searchParams.get('next'), `/devices/${device.id}`);
    assert.equal(await deviceStatus(), 'active');
    // Signing in again comes back to that page.
    const again = await adminApiToken(s, 'ops2', 'admin');
    await admin.getByLabel('Admin token').fill(again.token);
    await admin.getByRole('button', { name: 'Sign in with token' }).click();
    await admin.waitForURL((u) => u.pathname === `/devices/${device.id}`);
    await admin.getByRole('group', { name: 'Actions' }).getByRole('button', { name: 'Revoke' }).waitFor();

    // Signed out in another tab of the same browser: this tab's next action lands on sign-in too.
    const other = await admin.context().newPage();
    await other.goto(`${s.url}/`);
    await settled(other);
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.waitForURL((u) => u.pathname === '/sign-in');
    await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
    await admin.waitForURL((u) => u.pathname === '/sign-in');
    assert.equal(new URL(admin.url()).searchParams.get('next'), '/audit');
    assert.equal((await callFromPage(admin, 'GET', '/v1/console/session', null)).status, 401);
  });
});
