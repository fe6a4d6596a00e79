/**
 * Browsers on Linux: the real agent keeps the device certificate in the
 * user's NSS database ($HOME/.pki/nssdb), and Debian's Chromium, headless,
 * with the managed policy AutoSelectCertificateForUrls, uses it to load a
 * page behind nginx mTLS (configured by `latchkey-server gateway config
 * nginx`): 200 with the device id and the serial, the renewed certificate
 * after `latchkey renew --force` (and only it in the database), refused after
 * `devices revoke` + `gateway sync --once`, and the agent removes the
 * certificate when it learns of the revocation. A second test goes through
 * enable / status / disable / unenroll and a store failure during a renewal.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gatewayConfig, sleep, startNginx, until } from './support/gateways.js';
import { AGENT_CLI, cli, freePort, initServer, mustRun, requireTools, run, startServer, tempDir, type Run } from './support/processes.js';

type Ctx = Parameters<typeof requireTools>[0];

const POLICY_DIR = '/etc/chromium/policies/managed';

/** The enrolled agent, with HOME pointing at a temp dir (its NSS database is $HOME/.pki/nssdb). */
async function enrolledAgent(t: Ctx): Promise<{ dataDir: string; serverUrl: string; home: string; nssDb: string; agent: (args: string[]) => Promise<Run>; deviceId: string; serial: string; work: string; fingerprint: string }> {
  const { dataDir, port, fingerprint } = await initServer(t);
  const server = await startServer(t, dataDir, port);
  const work = tempDir(t, 'latchkey-browser-e2e-');
  const home = join(work, 'home');
  mkdirSync(home);
  const stateDir = join(work, 'agent');
  const env = { HOME: home, LATCHKEY_STATE_DIR: '', DBUS_SESSION_BUS_ADDRESS: '' };
  const agent = (args: string[]): Promise<Run> => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env });
  const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
  const e = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(!e.stdout.includes(token) && !e.stderr.includes(token));
  const st = JSON.parse((await agent(['status', '--json'])).stdout) as { deviceId: string; serial: string };
  return { dataDir, serverUrl: server.url, home, nssDb: join(home, '.pki', 'nssdb'), agent, deviceId: st.deviceId, serial: st.serial, work, fingerprint };
}

const nickname = (deviceId: string): string => `Latchkey device ${deviceId}`;

/** Serials (lower-case hex) of the certificates named `nick` in the NSS database; [] when there is none. */
async function nssSerials(db: string, nick: string): Promise<string[]> {
  const r = await run('certutil', ['-L', '-d', `sql:${db}`, '-n', nick, '-a']);
  if (r.code !== 0) {
    assert.match(r.stderr, /Could not find cert/, r.stderr);
    return [];
  }
  return [...r.stdout.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]).serialNumber.toLowerCase().replace(/^(00)+/, ''));
}

/** `certutil -K` nicknames of the private keys in the database. */
async function nssKeys(db: string, work: string): Promise<string[]> {
  writeFileSync(join(work, 'empty.pw'), '');
  const r = await run('certutil', ['-K', '-d', `sql:${db}`, '-f', join(work, 'empty.pw')]);
  return (r.stdout + r.stderr)
    .split('\n')
    .filter((l) => /^<\s*\d+>/.test(l))
    .map((l) => l.replace(/^<\s*\d+>\s+\S+\s+[0-9a-f]{40}\s+/, ''));
}

/** The app behind nginx: an HTML page with the device id and serial nginx passed on. */
async function htmlEcho(t: Ctx): Promise<number> {
  const s = createServer((req, res) => {
    const esc = (v: unknown): string => String(v ?? '').replace(/[<>&"]/g, '');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><html><head><title>echo</title></head><body><p id="device">device=${esc(req.headers['x-latchkey-device-id'])}</p><p id="serial">serial=${esc(req.headers['x-latchkey-client-serial'])}</p></body></html>`);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  const a = s.address();
  return typeof a === 'object' && a ? a.port : 0;
}

/**
 * Debian's Chromium, headless, fresh profile, HOME = `home` (so its NSS database is the agent's):
 * the DOM of `url` after load. Own process group, killed (all of it) after 60 s and after it exits.
 */
async function chromium(t: Ctx, home: string, url: string): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'latchkey-chromium-'));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-breakpad', '--disable-crash-reporter', `--user-data-dir=${profile}`, '--dump-dom', url];
  const p = spawn('/usr/bin/chromium', args, { env: { ...process.env, HOME: home }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const killGroup = (): void => {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(killGroup, 60_000);
  const code = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  clearTimeout(timer);
  killGroup();
  if (code !== 0 && !out) throw new Error(`chromium exited ${code}:\n${err.slice(-3000)}`);
  return out;
}

describe('browsers: the device certificate in the NSS database, used by headless Chromium through nginx mTLS', () => {
  test('Chromium gets the page with the device id; after renew --force the new certificate (alone in the NSS db); after revoke + gateway sync it is refused, and the agent removes its certificate', { timeout: 300_000 }, async (t) => {
    if (!requireTools(t, 'nginx', 'chromium', 'certutil', 'pk12util', 'openssl')) return;
    const a = await enrolledAgent(t);
    const nick = nickname(a.deviceId);

    const en = await a.agent(['browser', 'enable']);
    assert.equal(en.code, 0, en.stderr);
    assert.match(en.stdout, new RegExp(`certificate ${a.serial} of device ${a.deviceId} is in ${a.nssDb.replace(/[.]/g, '\\.')} as "${nick}"`));
    assert.deepEqual(await nssSerials(a.nssDb, nick), [a.serial]);
    assert.deepEqual(await nssKeys(a.nssDb, a.work), [nick]);
    const bs = await a.agent(['browser', 'status', '--json']);
    assert.equal(bs.code, 0, bs.stderr);
    assert.deepEqual((JSON.parse(bs.stdout) as { enabled: boolean; current: boolean }).enabled, true);
    assert.equal((JSON.parse(bs.stdout) as { current: boolean }).current, true);

    // nginx in front of the HTML echo app; Chromium trusts the server's root (in the same NSS db) and picks
    // the device certificate by policy, without asking.
    const upstream = await htmlEcho(t);
    const port = await freePort();
    const gw = join(a.work, 'gw');
    const cfg = await gatewayConfig({ dataDir: a.dataDir, kind: 'nginx', listenPort: port, upstreamPort: upstream, out: gw });
    assert.equal(cfg.code, 0, cfg.stderr);
    const nginx = await startNginx(t, gw, port);
    await mustRun('certutil', ['-A', '-d', `sql:${a.nssDb}`, '-n', 'Latchkey e2e root', '-t', 'C,,', '-i', join(a.dataDir, 'root.crt.pem')]);
    mkdirSync(POLICY_DIR, { recursive: true });
    const policy = join(POLICY_DIR, `latchkey-test-${randomBytes(6).toString('hex')}.json`);
    t.after(() => rmSync(policy, { force: true }));
    const origin = `https://127.0.0.1:${port}`;
    writeFileSync(policy, JSON.stringify({ AutoSelectCertificateForUrls: [JSON.stringify({ pattern: origin, filter: {} })] }));
    const page = `${origin}/hello`;

    const first = await chromium(t, a.home, page);
    assert.match(first, new RegExp(`<p id="device">device=${a.deviceId}</p>`), first);
    assert.match(first, new RegExp(`<p id="serial">serial=${a.serial}</p>`, 'i'));

    // Renewal: the agent replaces the certificate and key in the NSS db; Chromium presents the new one.
    const rn = await a.agent(['renew', '--force', '--json']);
    assert.equal(rn.code, 0, rn.stderr);
    const renewed = JSON.parse(rn.stdout) as { renewed: boolean; previousSerial: string; serial: string };
    assert.equal(renewed.previousSerial, a.serial);
    assert.notEqual(renewed.serial, a.serial);
    assert.deepEqual(await nssSerials(a.nssDb, nick), [renewed.serial], 'the NSS db holds the new certificate and not the old');
    assert.deepEqual(await nssKeys(a.nssDb, a.work), [nick], 'one key: the old one went with its certificate');
    const second = await chromium(t, a.home, page);
    assert.match(second, new RegExp(`<p id="device">device=${a.deviceId}</p>`), second);
    assert.match(second, new RegExp(`<p id="serial">serial=${renewed.serial}</p>`, 'i'));

    // A copy of the NSS db as it is now (the renewed certificate and key), for a browser that still has it
    // after the revocation: in another HOME.
    const home2 = join(a.work, 'home2');
    mkdirSync(join(home2, '.pki', 'nssdb'), { recursive: true });
    for (const f of ['cert9.db', 'key4.db', 'pkcs11.txt']) copyFileSync(join(a.nssDb, f), join(home2, '.pki', 'nssdb', f));

    // The running agent learns of the revocation over its control channel and removes the certificate from
    // the NSS db along with its key and identity.
    const daemon = spawn(process.execPath, [AGENT_CLI, '--state-dir', join(a.work, 'agent'), 'run'], { env: { ...process.env, HOME: a.home, DBUS_SESSION_BUS_ADDRESS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => daemon.on('exit', (c) => r(c)));
    t.after(() => {
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    });
    await until('the control channel', async () => (/control channel connected/.test(log) ? true : daemon.exitCode !== null ? assert.fail(log) : undefined), 30_000);
    const rv = await cli(['devices', 'revoke', a.deviceId, '--reason', 'keyCompromise', '--data-dir', a.dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    const exit = await Promise.race([exited, sleep(30_000).then(() => 'timeout' as const)]);
    assert.equal(exit, 3, `latchkey run: ${log}`);
    assert.match(log, /THIS DEVICE HAS BEEN REVOKED/);
    assert.doesNotMatch(log, /warning/);
    assert.deepEqual(await nssSerials(a.nssDb, nick), []);
    assert.deepEqual(await nssKeys(a.nssDb, a.work), []);
    assert.match((await run('certutil', ['-L', '-d', `sql:${a.nssDb}`])).stdout, /Latchkey e2e root/, 'the rest of the db is untouched');

    // The gateway's CRL (gateway sync --once, nginx reload) refuses the certificate the other browser still has.
    const gt = await cli(['gateway', 'token', 'create', '--name', 'browser-e2e', '--data-dir', a.dataDir, '--json']);
    assert.equal(gt.code, 0, gt.stderr);
    const gatewayToken = (JSON.parse(gt.stdout) as { token: string }).token;
    const sync = await cli(['gateway', 'sync', '--once', '--server', a.serverUrl, '--token', gatewayToken, '--ca-file', join(gw, 'ca.pem'), '--crl-file', join(gw, 'crl.pem'), '--reload', nginx.reload]);
    assert.equal(sync.code, 0, sync.stdout + sync.stderr);
    // `nginx -s reload` only signals the master; its new workers load the new CRL a moment later.
    const refused = await until('nginx to refuse the revoked certificate', async () => {
      const dom = await chromium(t, home2, page);
      return /400 The SSL certificate error/.test(dom) ? dom : undefined;
    }, 60_000);
    assert.doesNotMatch(refused, new RegExp(a.deviceId));
    assert.match(readFileSync(nginx.errorLog, 'utf8'), /client SSL certificate verify error: \(23:certificate revoked\)/);
    // The agent's own browser has nothing left to present: nginx asks for a certificate and gets none.
    const none = await chromium(t, a.home, page);
    assert.match(none, /No required SSL certificate was sent/, none);
    assert.doesNotMatch(none, new RegExp(a.deviceId));
  });

  test('enable / status / disable, unenroll removes the certificate, and a store that cannot be updated never fails a renewal', { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'certutil', 'pk12util')) return;
    const a = await enrolledAgent(t);
    const nick = nickname(a.deviceId);
    const status = async (): Promise<{ enabled: boolean; entries: { serialHex: string }[]; current: boolean; lastError?: { message: string } }> => {
      const r = await a.agent(['browser', 'status', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Awaited<ReturnType<typeof status>>;
    };
    assert.equal((await status()).enabled, false);
    assert.equal((await a.agent(['browser', 'frobnicate'])).code, 2);

    assert.equal((await a.agent(['browser', 'enable'])).code, 0);
    assert.deepEqual((await status()).entries.map((e) => e.serialHex), [a.serial]);
    const dis = await a.agent(['browser', 'disable']);
    assert.equal(dis.code, 0, dis.stderr);
    assert.match(dis.stdout, /1 entry of this device removed/);
    assert.deepEqual(await nssSerials(a.nssDb, nick), []);
    const off = await status();
    assert.equal(off.enabled, false);
    // Disabled: a renewal leaves the NSS db alone.
    assert.equal((await a.agent(['renew', '--force'])).code, 0);
    assert.deepEqual(await nssSerials(a.nssDb, nick), []);

    // A store the agent cannot write: the renewal still succeeds; the failure is a warning and is recorded.
    assert.equal((await a.agent(['browser', 'enable'])).code, 0);
    const settingFile = join(a.work, 'agent', 'browser.json');
    const setting = JSON.parse(readFileSync(settingFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(join(a.work, 'not-a-dir'), '');
    writeFileSync(settingFile, JSON.stringify({ ...setting, nssDb: join(a.work, 'not-a-dir', 'nssdb') }));
    const rn = await a.agent(['renew', '--force', '--json']);
    assert.equal(rn.code, 0, rn.stderr);
    assert.equal((JSON.parse(rn.stdout) as { renewed: boolean }).renewed, true);
    assert.match(rn.stderr, /latchkey: warning: the browser certificate store was not updated after the renewal: .*ENOTDIR/);
    assert.match((await status()).lastError?.message ?? '', /not updated after the renewal/);
    // Back to the real db: the next renewal puts the current certificate there and clears the error.
    writeFileSync(settingFile, JSON.stringify(setting));
    const rn2 = await a.agent(['renew', '--force', '--json']);
    assert.equal(rn2.code, 0, rn2.stderr);
    const serial2 = (JSON.parse(rn2.stdout) as { serial: string }).serial;
    const on = await status();
    assert.deepEqual(on.entries.map((e) => e.serialHex), [serial2]);
    assert.equal(on.current, true);
    assert.equal(on.lastError, undefined);
    const human = await a.agent(['browser', 'status']);
    assert.match(human.stdout, new RegExp(`in the store: "${nick}" serial ${serial2} \\(current\\)`));

    // unenroll: key, identity, and the browser's copy.
    const un = await a.agent(['unenroll']);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(await nssSerials(a.nssDb, nick), []);
    assert.deepEqual(await nssKeys(a.nssDb, a.work), []);
    // The setting stays: enrolling again puts the new identity in the store.
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', a.dataDir, '--json'])).stdout) as { token: string }).token;
    const again = await a.agent(['enroll', '--server', a.serverUrl, '--token', token, '--ca-fingerprint', a.fingerprint, '--keystore', 'file']);
    assert.equal(again.code, 0, again.stderr);
    const st2 = JSON.parse((await a.agent(['status', '--json'])).stdout) as { deviceId: string; serial: string };
    assert.deepEqual(await nssSerials(a.nssDb, nickname(st2.deviceId)), [st2.serial], 'the re-enrolled identity is in the store');
    assert.equal((await a.agent(['unenroll'])).code, 0);
    const ne = await a.agent(['browser', 'enable']);
    assert.equal(ne.code, 1);
    assert.match(ne.stderr, /not enrolled/);
  });
});
