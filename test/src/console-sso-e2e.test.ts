/**
 * Issue 13, the web console's sign-in through the company's identity
 * provider: headless Chromium opens the console's sign-in link on a real
 * latchkey-server, signs in at a real IdP process (authorization code +
 * PKCE, the server as the OAuth client) and lands back on the page it asked
 * for, holding an HttpOnly, Secure, SameSite=Strict `__Host-` cookie that no
 * script can read. The IdP's groups decide the role; a person outside the
 * admin groups is sent back to the sign-in page with the reason; a viewer's
 * change is refused by the API.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, chromiumOrSkip } from './support/idp/idp-login.js';
import { PAGE } from './support/idp/idp-types.js';
import { startSsoServer, type SsoServer } from './support/idp/sso-server.js';

const ADMIN_GROUPS = { adminGroups: { viewer: ['latchkey-viewers'], operator: [], admin: ['latchkey-admins'] }, syncIntervalSeconds: 0 };

async function launch(t: { after: (fn: () => unknown) => void }): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'], timeout: 30_000 });
  t.after(() => browser.close());
  return browser;
}

/** Opens the console's IdP sign-in for `next` and signs in at the IdP as `name`; resolves on the console page it ends on. */
async function signInAs(browser: Browser, sso: SsoServer, name: string, next: string): Promise<Page> {
  // The server's certificate chains to its own root, which this browser does not know.
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(`${sso.server.url}/v1/console/sign-in/sso?next=${encodeURIComponent(next)}`);
  await page.locator(`#${PAGE.loginForm}`).waitFor();
  await page.fill(`#${PAGE.loginField}`, `${name}@example.com`);
  await page.fill(`#${PAGE.passwordField}`, `${name}-password`);
  await page.click(`#${PAGE.loginSubmit}`);
  await page.locator(`#${PAGE.consentForm}`).waitFor();
  const back = page.waitForURL((u) => u.origin === sso.server.url, { waitUntil: 'commit' });
  await page.click(`#${PAGE.allowButton}`);
  await back;
  await page.waitForLoadState('domcontentloaded');
  return page;
}

const inPage = <T>(page: Page, fn: () => Promise<T>): Promise<T> => page.evaluate(fn);

describe('issue 13: console sign-in through the identity provider (authorization code + PKCE)', () => {
  test('an admin lands on the page asked for with a cookie no script can read; a viewer is refused changes; someone outside the groups is told why', async (t) => {
    if (!chromiumOrSkip(t)) return;
    const sso = await startSsoServer(t, ADMIN_GROUPS);
    const browser = await launch(t);

    const alice = await signInAs(browser, sso, 'alice', '/devices');
    assert.equal(new URL(alice.url()).pathname, '/devices');
    const cookies = await alice.context().cookies(sso.server.url);
    const c = cookies.find((x) => x.name === '__Host-latchkey_console');
    assert.ok(c, `the session cookie is set (have: ${cookies.map((x) => x.name).join(', ')})`);
    assert.deepEqual({ httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path }, { httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    assert.equal(cookies.some((x) => x.name === '__Host-latchkey_signin'), false, 'the sign-in cookie is gone once used');
    assert.equal(await alice.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie.includes('latchkey')), false, 'no script sees the session');
    const me = await inPage(alice, async () => (await fetch('/v1/console/session')).json() as Promise<{ actor: string; role: string; csrfToken: string }>);
    assert.equal(me.actor, 'user:alice@example.com');
    assert.equal(me.role, 'admin');
    // An admin change from the console: the audit log names the person.
    const made = await alice.evaluate(async (csrf) => (await fetch('/v1/admin/tokens', { method: 'POST', headers: { 'content-type': 'application/json', 'x-latchkey-csrf': csrf }, body: JSON.stringify({ group: 'default' }) })).status, me.csrfToken);
    assert.equal(made, 201);
    const audit = await inPage(alice, async () => (await fetch('/v1/admin/audit?action=token.create')).json() as Promise<{ items: { actor: string }[] }>);
    assert.equal(audit.items[0]?.actor, 'user:alice@example.com');

    const carol = await signInAs(browser, sso, 'carol', '/');
    const carolMe = await inPage(carol, async () => (await fetch('/v1/console/session')).json() as Promise<{ role: string; csrfToken: string }>);
    assert.equal(carolMe.role, 'viewer');
    const refused = await carol.evaluate(async (csrf) => {
      const r = await fetch('/v1/admin/tokens', { method: 'POST', headers: { 'content-type': 'application/json', 'x-latchkey-csrf': csrf }, body: JSON.stringify({ group: 'default' }) });
      return { status: r.status, body: (await r.json()) as { error: { code: string; message: string } } };
    }, carolMe.csrfToken);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'FORBIDDEN');
    assert.match(refused.body.error.message, /needs the operator role; your session \(carol@example\.com\) is viewer/);

    const bob = await signInAs(browser, sso, 'bob', '/devices');
    const u = new URL(bob.url());
    assert.equal(u.pathname, '/sign-in');
    assert.match(u.searchParams.get('error') ?? '', /bob@example\.com is in none of the identity provider groups that administer Latchkey/);
    assert.equal(u.searchParams.get('next'), '/devices');
    assert.equal((await bob.context().cookies(sso.server.url)).some((x) => x.name === '__Host-latchkey_console'), false);
  });
});
