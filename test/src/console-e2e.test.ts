/**
 * Issue 13, the admin web console in a real browser (headless Chromium)
 * against a real latchkey-server, real agents and a real nginx:
 * - an admin signs in with a token; a waiting `latchkey enroll` is approved
 *   from the approvals queue and completes; the device's running agent is
 *   revoked from its page (a dialog naming it, a reason), is told at once,
 *   and nginx, kept current by `gateway sync`, refuses its certificate;
 * - a revocation made with the CLI shows in an open devices page and device
 *   page without a reload;
 * - a token made with the CLI is listed; one made in the console is shown
 *   once with the `latchkey enroll` command, and that command enrolls.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { chromiumOrSkip } from './support/idp/idp-login.js';
import { requireTools, tempDir } from './support/processes.js';
import { until } from './support/gateways.js';
import { copyCredentials, newAgent } from './support/console/agents.js';
import { launchBrowser, newPage, settled, signInWithToken } from './support/console/console-browser.js';
import { nginxGateway } from './support/console/console-gateway.js';
import { enrollmentToken, serverCli, serverJson, startConsoleServer } from './support/console/console-server.js';

interface DeviceRow {
  id: string;
  name: string;
  status: string;
}

describe('issue 13: the admin console in a real browser', () => {
  test('sign in; approve a waiting enrollment from the queue; revoke the running device from its page: its agent is told and nginx refuses it', { timeout: 180_000 }, async (t) => {
    if (!chromiumOrSkip(t) || !requireTools(t, 'nginx', 'curl', 'openssl')) return;
    const s = await startConsoleServer(t);
    await serverCli(s, ['groups', 'set', 'default', '--require-approval']);
    const gw = await nginxGateway(t, s);
    const browser = await launchBrowser(t);

    // The agent enrolls and waits for an administrator.
    const agent = newAgent(t);
    const { token } = await enrollmentToken(s);
    const enroll = agent.start(['enroll', '--server', s.url, '--token', token, '--ca-fingerprint', s.fingerprint, '--keystore', 'file']);
    await enroll.waitFor(/waiting for an administrator to approve this device/, 'the wait for approval');
    const pending = (await serverJson<{ items: DeviceRow[] }>(s, ['devices', 'list', '--status', 'pending'])).items;
    assert.equal(pending.length, 1);
    const device = pending[0]!;

    // The admin signs in, asking for the approvals queue, and approves it in one click.
    const page = await newPage(browser);
    await signInWithToken(page, s.url, s.adminToken, '/approvals');
    const row = page.locator(`tr[data-device-id="${device.id}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(device.name));
    await row.getByRole('button', { name: `Approve ${device.name}` }).click();
    assert.equal(await enroll.exit, 0, enroll.log());
    assert.equal((await agent.status()).deviceId, device.id);
    await row.waitFor({ state: 'detached' });
    await page.getByText('No device is waiting for approval.').waitFor();

    // The agent runs; nginx lets the device through.
    const run = agent.start(['run']);
    await run.waitFor(/control channel connected/, 'the control channel');
    const cred = await copyCredentials(agent, tempDir(t, 'latchkey-cred-'));
    const ok = await gw.curl(cred);
    assert.equal(ok.status, '200', ok.body + ok.stderr);
    assert.equal((JSON.parse(ok.body) as Record<string, string>)['x-latchkey-device-id'], device.id);

    // Devices → the device's page (in-app navigation), where it shows online.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
    await page.locator(`tr[data-device-id="${device.id}"]`).getByRole('link', { name: device.name }).click();
    await page.waitForURL((u) => u.pathname === `/devices/${device.id}`);
    await page.getByRole('heading', { level: 1, name: device.name }).waitFor();
    await page.locator(`[data-testid="online-${device.id}"][data-online="true"]`).waitFor();

    // Revoke: the dialog names the device (name and id) and takes a reason.
    await page.getByRole('group', { name: 'Actions' }).getByRole('button', { name: 'Revoke' }).click();
    const dialog = page.getByRole('dialog', { name: `Revoke ${device.name}?` });
    await dialog.waitFor();
    assert.match(await dialog.innerText(), new RegExp(`${device.name}[\\s\\S]*${device.id}`));
    await dialog.getByLabel('Reason').selectOption('keyCompromise');
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('.facts .badge', { hasText: 'revoked' }).waitFor();
    assert.match(await page.locator('.facts').innerText(), /revoked \(keyCompromise\)/);

    // Its running agent is told at once: it says so, deletes its key and exits 3.
    assert.equal(await run.exit, 3, run.log());
    assert.match(run.log(), /THIS DEVICE HAS BEEN REVOKED \(keyCompromise/);
    assert.equal((await agent.status()).state, 'revoked');

    // gateway sync rewrote the CRL and reloaded nginx, which now refuses the device.
    const refused = await until('nginx to refuse the revoked device', async () => {
      const r = await gw.curl(cred);
      return r.status === '400' ? r : undefined;
    }, 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\n--- gateway sync:\n${gw.sync.log()}`);
    });
    assert.match(refused.body, /400 The SSL certificate error/);
    assert.match(readFileSync(gw.errorLog, 'utf8'), /client SSL certificate verify error: \(23:certificate revoked\)/);

    // The audit log names who approved and revoked it: the admin signed in with the bootstrap token.
    const audit = await page.evaluate(async (id) => (await fetch(`/v1/admin/audit?target=${id}`)).json() as Promise<{ items: { action: string; actor: string }[] }>, device.id);
    const byAction = new Map(audit.items.map((e) => [e.action, e.actor]));
    assert.ok(byAction.get('device.approve') && byAction.get('device.revoke'), JSON.stringify(audit.items));
    assert.equal(byAction.get('device.revoke'), byAction.get('device.approve'));
  });

  test('a token made with the CLI is listed; one made in the console is shown once with the enroll command, which enrolls; a CLI revocation shows in an open devices page and device page without a reload', { timeout: 180_000 }, async (t) => {
    if (!chromiumOrSkip(t)) return;
    const s = await startConsoleServer(t);
    const browser = await launchBrowser(t);
    const page = await newPage(browser);
    await signInWithToken(page, s.url, s.adminToken, '/tokens');

    // A token made with the CLI appears in the open tokens page (live, from the audit stream).
    const fromCli = await enrollmentToken(s);
    await page.locator('table code', { hasText: fromCli.id }).waitFor();

    // Made in the console: the secret is shown once, with the command to paste on the device.
    await page.getByLabel('Uses').fill('1');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = page.getByRole('region', { name: 'Token created' });
    await secret.waitFor();
    const token = await secret.getByLabel('Token', { exact: true }).inputValue();
    const command = await secret.getByLabel('Enroll command').inputValue();
    assert.match(token, /^lk_enr_/);
    assert.equal(command, `latchkey enroll --server ${s.url} --ca-fingerprint ${s.fingerprint} --token ${token}`);
    assert.ok(await secret.getByRole('button', { name: 'Copy enroll command' }).isVisible());
    await page.reload();
    await settled(page);
    assert.equal(await page.getByRole('region', { name: 'Token created' }).count(), 0, 'shown once: not after a reload');
    assert.equal(await page.getByText(token).count(), 0);
    assert.equal(await page.locator(`input[value="${token}"]`).count(), 0);

    // The command, as pasted (plus where this test keeps the agent's state and key), enrolls a device.
    const [bin, sub, ...args] = command.split(' ');
    assert.deepEqual([bin, sub], ['latchkey', 'enroll']);
    const agent = newAgent(t);
    const enrolled = await agent.cli(['enroll', ...args, '--keystore', 'file']);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const { deviceId } = await agent.status();

    // The devices page and the device's page stay open; the CLI revokes; both show it without a reload.
    const list = page;
    await list.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Devices' }).click();
    const row = list.locator(`tr[data-device-id="${deviceId}"]`);
    await row.locator('.badge', { hasText: 'active' }).waitFor();
    const detail = await list.context().newPage();
    await detail.goto(`${s.url}/devices/${deviceId}`);
    await settled(detail);
    await detail.locator('.facts .badge', { hasText: 'active' }).waitFor();
    const mark = (p: typeof page) => p.evaluate(() => ((globalThis as unknown as { loadedOnce: boolean }).loadedOnce = true));
    const marked = (p: typeof page) => p.evaluate(() => (globalThis as unknown as { loadedOnce?: boolean }).loadedOnce === true);
    await mark(list);
    await mark(detail);

    await serverCli(s, ['devices', 'revoke', deviceId, '--reason', 'cessationOfOperation']);
    await row.locator('.badge', { hasText: 'revoked' }).waitFor();
    await detail.locator('.facts .badge', { hasText: 'revoked' }).waitFor();
    assert.match(await detail.locator('.facts').innerText(), /revoked \(cessationOfOperation\)/);
    assert.equal(await marked(list), true, 'the devices page was not reloaded');
    assert.equal(await marked(detail), true, 'the device page was not reloaded');
    // The device page's own audit trail has the CLI's revocation too.
    await detail.getByRole('region', { name: 'Audit trail' }).getByText('device.revoke').waitFor();
  });
});
