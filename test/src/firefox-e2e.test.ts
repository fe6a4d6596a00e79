/**
 * Firefox on Linux: it keeps its own NSS database in each profile and never
 * reads ~/.pki/nssdb. The real agent (file keystore, HOME in a temp dir)
 * finds the profiles in $HOME/.mozilla/firefox/profiles.ini, puts the device
 * certificate and key in each, and merges the automatic-selection policy into
 * Firefox's policies.json. Debian's firefox-esr, headless, loads a page behind
 * nginx mTLS (`latchkey-server gateway config nginx`) with no prompt, and the
 * upstream sees the device id and serial; after `renew --force` the new
 * serial; after `browser disable` no certificate at all (nginx: "client sent
 * no required SSL certificate") and the policies.json is exactly as it was;
 * `unenroll` empties the profiles. Without the policy, Firefox waits at its
 * certificate prompt and sends nothing (the control).
 *
 * policies.json: Firefox reads /etc/firefox/policies/policies.json if it
 * exists, else <app dir>/distribution/policies.json. The test leaves /etc
 * alone: it runs firefox-esr from a private app dir (its own copy of the small
 * launcher, symlinks to everything else in /usr/lib/firefox-esr, its own
 * distribution/), so the policy file is one of the test's.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { echoUpstream, gatewayConfig, startNginx } from './support/gateways.js';
import { AGENT_CLI, cli, freePort, initServer, mustRun, requireTools, run, startServer, tempDir, type Run } from './support/processes.js';

type Ctx = Parameters<typeof requireTools>[0];

const FIREFOX_DIR = '/usr/lib/firefox-esr';
const SYSTEM_POLICY = '/etc/firefox/policies/policies.json';

/** Prefs that keep Firefox off the network (this machine has none) and away from first-run pages. */
const OFFLINE_PREFS: Record<string, string | number | boolean> = {
  'app.normandy.enabled': false,
  'app.update.auto': false,
  'browser.aboutwelcome.enabled': false,
  'browser.newtabpage.enabled': false,
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.search.update': false,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.update.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.trr.mode': 5,
  'security.OCSP.enabled': 0,
  'security.remote_settings.crlite_filters.enabled': false,
  'security.remote_settings.intermediates.enabled': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.server': '',
};

/** A Firefox app dir of the test's own: the launcher copied (Firefox finds its dirs from the executable's real path), the rest linked. */
function privateFirefox(work: string): { exe: string; policy: string } {
  const app = join(work, 'firefox-app');
  mkdirSync(join(app, 'distribution'), { recursive: true });
  for (const f of readdirSync(FIREFOX_DIR)) {
    if (f === 'distribution' || f === 'firefox-esr') continue;
    symlinkSync(join(FIREFOX_DIR, f), join(app, f));
  }
  copyFileSync(join(FIREFOX_DIR, 'firefox-esr'), join(app, 'firefox-esr'));
  return { exe: join(app, 'firefox-esr'), policy: join(app, 'distribution', 'policies.json') };
}

/** A profile directory with the offline prefs in user.js. */
function makeProfile(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'user.js'), Object.entries(OFFLINE_PREFS).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});\n`).join(''));
  return dir;
}

/**
 * firefox-esr --headless with `profile` takes a screenshot of `url` (so it loads it) and exits. A certificate
 * prompt keeps it waiting: it is killed (its whole process group) after `waitMs`, which fails the test unless
 * `prompt` says that is expected.
 */
async function firefox(t: Ctx, exe: string, home: string, profile: string, url: string, o: { prompt?: boolean; waitMs?: number } = {}): Promise<void> {
  const shot = join(profile, '..', `shot-${Date.now()}.png`);
  const p = spawn(exe, ['--headless', '--no-remote', '--profile', profile, '--screenshot', shot, url], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, MOZ_CRASHREPORTER_DISABLE: '1', MOZ_DISABLE_AUTO_SAFE_MODE: '1' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  p.stdout.on('data', (d: Buffer) => (err += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const killGroup = (): void => {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  t.after(killGroup);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, o.waitMs ?? 90_000);
  const code = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  clearTimeout(timer);
  killGroup();
  if (o.prompt) {
    assert.ok(timedOut, `firefox finished loading ${url}, where it should have been waiting at the certificate prompt:\n${err.slice(-3000)}`);
    return;
  }
  assert.ok(!timedOut, `firefox did not finish loading ${url} in ${(o.waitMs ?? 90_000) / 1000} s (a certificate prompt?):\n${err.slice(-3000)}`);
  assert.equal(code, 0, `firefox exited ${code}:\n${err.slice(-3000)}`);
  assert.ok(existsSync(shot), `firefox took no screenshot of ${url}:\n${err.slice(-3000)}`);
}

/** Serials (lower-case hex, no leading zeros) of the certificates named `nick` in the NSS database `db`. */
async function nssSerials(db: string, nick: string): Promise<string[]> {
  const r = await run('certutil', ['-L', '-d', `sql:${db}`, '-n', nick, '-a']);
  if (r.code !== 0) {
    assert.match(r.stderr, /Could not find cert/, r.stderr);
    return [];
  }
  return [...r.stdout.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).serialNumber.toLowerCase().replace(/^(00)+/, ''));
}

const header = (h: Record<string, unknown> | undefined, k: string): string => String(h?.[k] ?? '').toLowerCase();

describe('browsers: Firefox (its own NSS database per profile, its enterprise policy), headless firefox-esr through nginx mTLS', () => {
  test('enable finds the profiles in profiles.ini and merges the policy; Firefox sends the device certificate without a prompt, the renewed one after renew --force, none after disable, and policies.json is back as it was', { timeout: 420_000 }, async (t) => {
    if (!requireTools(t, 'firefox-esr', 'nginx', 'certutil', 'pk12util')) return;
    assert.ok(!existsSync(SYSTEM_POLICY), `${SYSTEM_POLICY} exists: Firefox would read it instead of the test's own policies.json; move it away while this test runs`);
    const { dataDir, port: serverPort, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, serverPort);
    const work = tempDir(t, 'latchkey-firefox-e2e-');
    const home = join(work, 'home');
    const stateDir = join(work, 'agent');
    const env = { HOME: home, LATCHKEY_STATE_DIR: '', DBUS_SESSION_BUS_ADDRESS: '' };
    const agent = (args: string[]): Promise<Run> => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env });

    // Two profiles in profiles.ini (one relative, one absolute), and one that names a directory that is not there.
    const root = join(home, '.mozilla', 'firefox');
    const main = makeProfile(join(root, 'e2e.default-esr'));
    const other = makeProfile(join(work, 'elsewhere', 'work-profile'));
    writeFileSync(
      join(root, 'profiles.ini'),
      ['[General]', 'StartWithLastProfile=1', 'Version=2', '', '[Profile0]', 'Name=default-esr', 'IsRelative=1', 'Path=e2e.default-esr', 'Default=1', '', '[Profile1]', 'Name=work', 'IsRelative=0', `Path=${other}`, '', '[Profile2]', 'Name=gone', 'IsRelative=1', 'Path=gone.profile', '', '[Install3B6073811A6ABF12]', 'Default=e2e.default-esr', 'Locked=1', ''].join('\r\n'),
    );

    const ff = privateFirefox(work);
    // A policies.json with the administrator's own policies, including another preference: they must survive.
    const adminPolicy = { policies: { DisableAppUpdate: true, DisableTelemetry: true, Preferences: { 'browser.tabs.warnOnClose': { Value: false, Status: 'locked' } } } };
    writeFileSync(ff.policy, `${JSON.stringify(adminPolicy, null, 2)}\n`);

    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const e = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
    assert.equal(e.code, 0, e.stderr);
    const { deviceId, serial } = JSON.parse((await agent(['status', '--json'])).stdout) as { deviceId: string; serial: string };
    const nick = `Latchkey device ${deviceId}`;

    // Without the policy the certificate is in the profiles but Firefox asks which one to send (checked
    // below, once the gateway is up); the enable says so.
    const typo = await agent(['browser', 'enable', '--firefox-profile', join(work, 'no-such-profile')]);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /--firefox-profile .*no-such-profile is not a directory; give a Firefox profile directory/);
    assert.equal(existsSync(join(work, 'no-such-profile')), false);
    const plain = await agent(['browser', 'enable']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /Firefox asks which certificate to send until its policy sets security.default_personal_cert to "Select Automatically": `latchkey browser enable --firefox-policy` merges it/);
    assert.deepEqual(JSON.parse(readFileSync(ff.policy, 'utf8')), adminPolicy, 'no policy without --firefox-policy');

    const en = await agent(['browser', 'enable', '--firefox-policy', ff.policy]);
    assert.equal(en.code, 0, en.stderr);
    assert.match(en.stdout, new RegExp(`Firefox profile ${main.replace(/[.]/g, '\\.')}`));
    assert.match(en.stdout, /Firefox selects it without asking/);
    assert.doesNotMatch(en.stdout, /gone\.profile/);
    assert.deepEqual(await nssSerials(main, nick), [serial]);
    assert.deepEqual(await nssSerials(other, nick), [serial]);
    assert.deepEqual(await nssSerials(join(home, '.pki', 'nssdb'), nick), [serial], 'the Chromium database too');
    const merged = JSON.parse(readFileSync(ff.policy, 'utf8')) as { policies: Record<string, unknown> };
    assert.deepEqual(merged, {
      policies: { ...adminPolicy.policies, Preferences: { ...adminPolicy.policies.Preferences, 'security.default_personal_cert': { Value: 'Select Automatically', Status: 'locked' } } },
    });
    const st = JSON.parse((await agent(['browser', 'status', '--json'])).stdout) as { current: boolean; firefox: { profile: string; current: boolean }[]; firefoxPolicy: string };
    assert.equal(st.current, true);
    assert.deepEqual(
      st.firefox.map((f) => [f.profile, f.current]),
      [
        [main, true],
        [other, true],
      ],
    );
    assert.equal(st.firefoxPolicy, ff.policy);

    // The gateway: nginx mTLS in front of an echo app. Firefox trusts the Latchkey root in its profile
    // (as an administrator would through ImportEnterpriseRoots or Certificates.Install).
    const upstream = await echoUpstream(t);
    const port = await freePort();
    const gw = join(work, 'gw');
    const cfg = await gatewayConfig({ dataDir, kind: 'nginx', listenPort: port, upstreamPort: upstream.port, out: gw });
    assert.equal(cfg.code, 0, cfg.stderr);
    const nginx = await startNginx(t, gw, port);
    await mustRun('certutil', ['-A', '-d', `sql:${main}`, '-n', 'Latchkey e2e root', '-t', 'C,,', '-i', join(dataDir, 'root.crt.pem')]);
    const url = `https://127.0.0.1:${port}/hello`;

    // The control: the same profile and certificate without the policy. Firefox stops at its certificate
    // prompt (nobody answers it headless) and nothing reaches the app. The policy is taken out of the file
    // for this one run and put back.
    const withPolicy = readFileSync(ff.policy, 'utf8');
    writeFileSync(ff.policy, `${JSON.stringify(adminPolicy, null, 2)}\n`);
    await firefox(t, ff.exe, home, main, url, { prompt: true, waitMs: 25_000 });
    assert.equal(upstream.seen.length, 0, 'without the policy Firefox sent nothing while it waited');
    writeFileSync(ff.policy, withPolicy);

    await firefox(t, ff.exe, home, main, url);
    assert.equal(upstream.seen.length, 1, 'one request reached the app');
    assert.equal(header(upstream.seen[0], 'x-latchkey-device-id'), deviceId);
    assert.equal(header(upstream.seen[0], 'x-latchkey-client-serial'), serial);

    // Renewal: the agent replaces the certificate in every profile; Firefox presents the new serial.
    const rn = await agent(['renew', '--force', '--json']);
    assert.equal(rn.code, 0, rn.stderr);
    const renewed = (JSON.parse(rn.stdout) as { serial: string }).serial;
    assert.notEqual(renewed, serial);
    assert.deepEqual(await nssSerials(main, nick), [renewed]);
    assert.deepEqual(await nssSerials(other, nick), [renewed]);
    await firefox(t, ff.exe, home, main, url);
    assert.equal(upstream.seen.length, 2);
    assert.equal(header(upstream.seen[1], 'x-latchkey-device-id'), deviceId);
    assert.equal(header(upstream.seen[1], 'x-latchkey-client-serial'), renewed);

    // disable: the certificate leaves every profile, the policy file is the administrator's again,
    // and Firefox has nothing to send: nginx refuses, the app sees nothing.
    const dis = await agent(['browser', 'disable']);
    assert.equal(dis.code, 0, dis.stderr);
    assert.match(dis.stdout, /3 entries of this device removed/);
    assert.match(dis.stdout, /1 Firefox policy latchkey had set removed/);
    assert.deepEqual(await nssSerials(main, nick), []);
    assert.deepEqual(await nssSerials(other, nick), []);
    assert.deepEqual(JSON.parse(readFileSync(ff.policy, 'utf8')), adminPolicy);
    assert.match((await run('certutil', ['-L', '-d', `sql:${main}`])).stdout, /Latchkey e2e root/, 'the rest of the profile database is untouched');
    await firefox(t, ff.exe, home, main, url);
    assert.equal(upstream.seen.length, 2, 'no request without a certificate reached the app');
    assert.match(readFileSync(nginx.errorLog, 'utf8'), /client sent no required SSL certificate/);

    // unenroll (as revocation) takes the device out of every profile too.
    assert.equal((await agent(['browser', 'enable'])).code, 0);
    assert.deepEqual(await nssSerials(other, nick), [renewed]);
    const un = await agent(['unenroll']);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(await nssSerials(main, nick), []);
    assert.deepEqual(await nssSerials(other, nick), []);
  });
});
