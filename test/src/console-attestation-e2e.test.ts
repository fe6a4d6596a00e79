/**
 * Issue 14 in the admin console (real headless Chromium, real server, a real
 * agent): a device's key assurance is a badge in the devices list and on the
 * device page ("Software key" for a file-keystore device, with no TPM facts),
 * and the groups page shows each group's attestation policy and sets it.
 * (An attested device's page is shown the admin API's real answer with the issue-14
 * fields added, until the server on this branch records attestation results.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DeviceDetail } from '@latchkey/protocol';
import { chromiumOrSkip } from './support/idp/idp-login.js';
import { newAgent } from './support/console/agents.js';
import { launchBrowser, newPage, settled, signInWithToken } from './support/console/console-browser.js';
import { enrollmentToken, serverCli, serverJson, startConsoleServer } from './support/console/console-server.js';

describe('issue 14: the console shows key assurance and attestation policy', () => {
  test('a file-keystore device shows "Software key" in the list and on its page, with no TPM facts; an attested one "TPM-attested" with its EK hash, EK trust, manufacturer and time; groups show none / TPM required (registered EK required), and the form sets TPM attestation', { timeout: 180_000 }, async (t) => {
    if (!chromiumOrSkip(t)) return;
    const s = await startConsoleServer(t);
    const agent = newAgent(t);
    const { token } = await enrollmentToken(s);
    const enrolled = await agent.cli(['enroll', '--server', s.url, '--token', token, '--ca-fingerprint', s.fingerprint, '--keystore', 'file']);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const { deviceId } = await agent.status();
    await serverCli(s, ['groups', 'set', 'kiosks', '--lifetime', '24h', '--attestation', 'tpm', '--require-registered-ek']);
    await serverCli(s, ['groups', 'set', 'servers', '--lifetime', '24h', '--attestation', 'tpm']);

    const browser = await launchBrowser(t);
    const page = await newPage(browser);
    await signInWithToken(page, s.url, s.adminToken, '/devices');
    const row = page.locator(`tr[data-device-id="${deviceId}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td[data-label="Key"]').innerText(), 'Software key');

    await page.goto(`${s.url}/devices/${deviceId}`);
    await settled(page);
    const facts = page.getByRole('region', { name: 'Facts' });
    await facts.waitFor();
    const text = await facts.innerText();
    assert.match(text, /Key\s+Software key/);
    assert.doesNotMatch(text, /TPM-attested|EK hash|TPM manufacturer/);

    // An attested device's page, until this server records attestation results (branch h-srv): the real
    // answer of the admin API for this device with the issue-14 fields added, typed by the protocol's
    // DeviceDetail, so the page is shown what such a server sends.
    const tpm: NonNullable<DeviceDetail['tpm']> = { ekHash: 'ab'.repeat(32), ekTrust: 'certificate', manufacturer: 'id:53544D20', attestedAt: '2026-12-03T10:00:00.000Z' };
    await page.route(`**/v1/admin/devices/${deviceId}`, async (route) => {
      const real = await route.fetch();
      const body: DeviceDetail = { ...((await real.json()) as DeviceDetail), assurance: 'tpm-attested', tpm };
      await route.fulfill({ response: real, json: body });
    });
    await page.goto(`${s.url}/devices/${deviceId}`);
    await settled(page);
    await page.getByRole('region', { name: 'Facts' }).getByText('TPM-attested', { exact: true }).waitFor();
    const attested = await page.getByRole('region', { name: 'Facts' }).innerText();
    assert.match(attested, /Key\s+TPM-attested/);
    assert.match(attested, new RegExp(`EK hash \\(SHA-256\\)\\s+${tpm.ekHash}`));
    assert.match(attested, /EK trusted by\s+its EK certificate, which chains to a trusted TPM manufacturer root/);
    assert.match(attested, /TPM manufacturer\s+id:53544D20/);
    assert.match(attested, /Attested\s+\S/);
    await page.unroute(`**/v1/admin/devices/${deviceId}`);

    await page.goto(`${s.url}/groups`);
    await settled(page);
    const cell = (g: string) => page.getByRole('row').filter({ has: page.getByRole('cell', { name: g, exact: true }) }).locator('td[data-label="Attestation"]');
    await cell('kiosks').waitFor();
    assert.equal(await cell('default').innerText(), 'none');
    assert.equal(await cell('kiosks').innerText(), 'TPM required, registered EK required');
    assert.equal(await cell('servers').innerText(), 'TPM required, any trusted TPM');

    // The form: edit default, require TPM attestation, save; the API has it and the table follows.
    await page.getByRole('button', { name: 'Edit default' }).click();
    assert.equal(await page.getByLabel('Attestation', { exact: true }).inputValue(), 'none');
    await page.getByLabel('Attestation', { exact: true }).selectOption('tpm');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Policy of default saved').waitFor();
    const groups = await serverJson<{ items: { name: string; attestation: string; requireRegisteredEk: boolean }[] }>(s, ['groups', 'list']);
    const def = groups.items.find((g) => g.name === 'default');
    assert.equal(def?.attestation, 'tpm');
    assert.equal(def?.requireRegisteredEk, false);
    await page.getByRole('button', { name: 'Edit kiosks' }).click();
    assert.equal(await page.getByLabel('Attestation', { exact: true }).inputValue(), 'tpm');
    assert.equal(await page.getByLabel("With TPM attestation: the device's EK must be registered first").isChecked(), true);
    await until(async () => (await cell('default').innerText()) === 'TPM required, any trusted TPM');
  });
});

async function until(f: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
