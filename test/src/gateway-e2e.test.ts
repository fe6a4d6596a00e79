/**
 * Real nginx and real HAProxy (Debian's), configured by `latchkey-server
 * gateway config … --out DIR`, in front of a small app that echoes the
 * headers it got. A device enrolled with openssl + curl gets 200 with its id
 * upstream; after `devices revoke` and `gateway sync --once` it is refused
 * (nginx: 400 "The SSL certificate error"; HAProxy: TLS alert), and a TLS
 * session saved before the revocation is not resumed. A device bound to a
 * user (issued here with the data dir's CA) gets X-Latchkey-User upstream.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { crlPublisher } from './support/crl-publisher.js';
import { issueDevice } from './support/data-dir-ca.js';
import { daemon, echoUpstream, gatewayConfig as writeGatewayConfig, startHaproxy, startNginx, until, wsgiUpstream } from './support/gateways.js';
import { SERVER_CLI, cli, freePort, initServer, mustRun, requireTools, run, startServer, tempDir, type Run } from './support/processes.js';

type Ctx = Parameters<typeof requireTools>[0];

interface World {
  dataDir: string;
  serverUrl: string;
  work: string;
  gw: string;
  deviceId: string;
  /** Upper-case hex, as gateways print it. */
  serial: string;
  upstream: Awaited<ReturnType<typeof echoUpstream>>;
  gatewayToken: string;
  sh: (cmd: string, args: string[]) => Promise<Run>;
}

/** A running latchkey-server, a device enrolled with openssl + curl, the echo app and a gateway token. */
async function world(t: Ctx): Promise<World> {
  const { dataDir, port } = await initServer(t);
  const server = await startServer(t, dataDir, port);
  const work = tempDir(t, 'latchkey-gw-');
  const sh = (cmd: string, args: string[]): Promise<Run> => mustRun(cmd, args, { cwd: work });
  const rootCa = join(dataDir, 'root.crt.pem');

  const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
  await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key', '-subj', '/CN=laptop-gw', '-outform', 'DER', '-out', 'device.csr']);
  writeFileSync(join(work, 'device.csr.b64'), readFileSync(join(work, 'device.csr')).toString('base64'));
  const p7 = await sh('curl', ['-sf', '--cacert', rootCa, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.csr.b64', `${server.url}/.well-known/est/simpleenroll`]);
  writeFileSync(join(work, 'device.p7'), Buffer.from(p7.stdout, 'base64'));
  await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'device.p7', '-print_certs', '-out', 'device.pem']);

  const list = JSON.parse((await cli(['devices', 'list', '--data-dir', dataDir, '--json'])).stdout) as { items: { id: string }[] };
  const deviceId = list.items[0]!.id;
  // The device id is in the subject as UID (what nginx and HAProxy read) and in the SAN URI.
  const subject = (await sh('openssl', ['x509', '-in', 'device.pem', '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout.trim();
  assert.equal(subject, `subject=UID=${deviceId},CN=laptop-gw,O=Example Corp`);
  const serial = (await sh('openssl', ['x509', '-in', 'device.pem', '-noout', '-serial'])).stdout.trim().replace(/^serial=/, '').toUpperCase();

  const gt = await cli(['gateway', 'token', 'create', '--name', 'e2e-gateway', '--data-dir', dataDir, '--json']);
  assert.equal(gt.code, 0, gt.stderr);
  const gatewayToken = (JSON.parse(gt.stdout) as { token: string }).token;
  return { dataDir, serverUrl: server.url, work, gw: join(work, 'gw'), deviceId, serial, upstream: await echoUpstream(t), gatewayToken, sh };
}

async function gatewayConfig(w: World, kind: 'nginx' | 'haproxy', listenPort: number): Promise<string> {
  const r = await writeGatewayConfig({ dataDir: w.dataDir, kind, listenPort, upstreamPort: w.upstream.port, out: w.gw });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /# gateway TLS certificate: issued for 127\.0\.0\.1 with a new key \(serverAuth/);
  return r.stdout;
}

/** `gateway sync --once`: fetches both CRLs into the gateway's CRL file and reloads it. */
async function syncOnce(w: World, how: string[]): Promise<void> {
  const r = await cli(['gateway', 'sync', '--once', '--server', w.serverUrl, '--token', w.gatewayToken, '--ca-file', join(w.gw, 'ca.pem'), '--crl-file', join(w.gw, 'crl.pem'), ...how]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

/** curl with the device certificate (or `as`: another one's files in w.work); the body, the HTTP status and curl's exit code and stderr. */
async function curlDevice(w: World, port: number, opts: { cert?: boolean; as?: string; headers?: string[] } = {}): Promise<{ code: number | null; status: string; body: string; stderr: string }> {
  const device = opts.as ?? 'device';
  const r = await run('curl', ['-s', '-S', '--max-time', '10', '-w', '\n%{http_code}', '--cacert', join(w.dataDir, 'root.crt.pem'), ...(opts.cert === false ? [] : ['--cert', `${device}.pem`, '--key', `${device}.key`]), ...(opts.headers ?? []).flatMap((h) => ['-H', h]), `https://127.0.0.1:${port}/hello`], { cwd: w.work });
  const i = r.stdout.lastIndexOf('\n');
  return { code: r.code, status: r.stdout.slice(i + 1), body: r.stdout.slice(0, Math.max(i, 0)), stderr: r.stderr };
}

/** One HTTP request over `openssl s_client`, saving (-sess_out) or offering (-sess_in) a TLS session. */
function sClient(w: World, port: number, version: '-tls1_2' | '-tls1_3', sess: { out?: string; in?: string }): Promise<Run> {
  return run(
    'timeout',
    ['15', 'openssl', 's_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', version, '-CAfile', join(w.dataDir, 'root.crt.pem'), '-cert', 'device.pem', '-key', 'device.key', '-ign_eof', ...(sess.out ? ['-sess_out', sess.out] : []), ...(sess.in ? ['-sess_in', sess.in] : [])],
    { cwd: w.work, input: 'GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' },
  );
}

const reused = (r: Run): boolean => /^Reused, /m.test(r.stdout);

/**
 * The gateway offered nothing a client could resume: no session id and no
 * ticket (TLS 1.2), no NewSessionTicket (TLS 1.3), so s_client saved nothing.
 */
function assertNothingToResume(r: Run, sessFile: string, what: string): void {
  assert.match(r.stdout, /^New, TLSv1\.[23]/m, `${what}: no full handshake\n${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stdout, /^Reused, /m, `${what}: resumed`);
  // (In TLS 1.3 the Session-ID line is the client's legacy_session_id echoed back, not a resumable session.)
  if (/^\s+Protocol\s+: TLSv1\.2$/m.test(r.stdout)) assert.match(r.stdout, /^\s+Session-ID: \n/m, `${what}: the server gave a session id`);
  assert.doesNotMatch(r.stdout, /TLS session ticket:|Post-Handshake New Session Ticket arrived/, `${what}: the server sent a session ticket`);
  assert.equal(existsSync(sessFile), false, `${what}: s_client saved a resumable session`);
}

/**
 * Control for the resumption checks: the same s_client calls against a TLS
 * server that does resume (node's defaults) save a session and report
 * "Reused", so "nothing saved, not reused" at the gateway is the gateway's
 * doing, not a blind probe. Returns those sessions (same client certificate,
 * same server name) for offering to the gateway after the revocation.
 */
async function resumingControl(t: Ctx, w: World): Promise<Record<'-tls1_2' | '-tls1_3', string>> {
  const s = createTlsServer({ cert: readFileSync(join(w.dataDir, 'server.crt.pem')), key: readFileSync(join(w.dataDir, 'server.key.pem')), requestCert: true, rejectUnauthorized: false }, (sock) => {
    sock.on('data', () => sock.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'));
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  const a = s.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  for (const v of ['-tls1_2', '-tls1_3'] as const) {
    const f = join(w.work, `control${v}.sess`);
    const first = await sClient(w, port, v, { out: f });
    assert.doesNotMatch(first.stdout, /^Reused, /m);
    const second = await sClient(w, port, v, { in: f });
    assert.ok(reused(second), `control ${v}: a resuming server must show "Reused"\n${second.stdout}\n${second.stderr}`);
  }
  return { '-tls1_2': join(w.work, 'control-tls1_2.sess'), '-tls1_3': join(w.work, 'control-tls1_3.sess') };
}

describe('mTLS gateways with the Latchkey CA and CRLs (real nginx and HAProxy on 127.0.0.1)', () => {
  test('nginx: device gets 200 with X-Latchkey-Device-Id upstream; after revoke + gateway sync (nginx -s reload) it gets 400, and no saved TLS session is resumed', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'nginx', 'timeout')) return;
    const w = await world(t);
    const port = await freePort();
    const printed = await gatewayConfig(w, 'nginx', port);
    assert.match(printed, /ssl_verify_client on;/);
    const nginx = await startNginx(t, w.gw, port);

    // An enrolled device: 200, and the app sees its id and serial, not what the client claims.
    const ok = await curlDevice(w, port, { headers: ['X-Latchkey-Device-Id: 00000000-0000-4000-8000-000000000000', 'X-Latchkey-Client-Serial: 01'] });
    assert.equal(ok.status, '200', ok.body + ok.stderr);
    const seen = JSON.parse(ok.body) as Record<string, string>;
    assert.equal(seen['x-latchkey-device-id'], w.deviceId);
    assert.equal(seen['x-latchkey-client-serial'], w.serial);
    // No client certificate: nginx's 400, and the app never sees the request.
    const before = w.upstream.seen.length;
    const anon = await curlDevice(w, port, { cert: false });
    assert.equal(anon.status, '400');
    assert.match(anon.body, /No required SSL certificate was sent/);
    assert.equal(w.upstream.seen.length, before);

    // No session resumption: nginx hands out neither session ids (TLS 1.2) nor tickets (TLS 1.3,
    // NumTickets 0), so a device has nothing saved that could skip the certificate check once revoked.
    const foreign = await resumingControl(t, w);
    for (const v of ['-tls1_2', '-tls1_3'] as const) {
      const f = join(w.work, `nginx${v}.sess`);
      const first = await sClient(w, port, v, { out: f });
      assert.match(first.stdout, /HTTP\/1.1 200 OK/, first.stderr);
      assertNothingToResume(first, f, `nginx ${v}`);
    }

    // The admin revokes the device; gateway sync fetches both CRLs and reloads nginx.
    const rv = await cli(['devices', 'revoke', w.deviceId, '--reason', 'keyCompromise', '--data-dir', w.dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    await syncOnce(w, ['--reload', nginx.reload]);
    // `nginx -s reload` only signals the master: until its new workers (with the new CRL) take over, an old
    // worker may still let the device through. From the first refusal on, nothing reaches the app.
    const deviceSeen = (): number => w.upstream.seen.filter((h) => h['x-latchkey-device-id'] === w.deviceId).length;
    const refused = await until('nginx to refuse the revoked device', async () => {
      const r = await curlDevice(w, port);
      return r.status === '400' ? r : undefined;
    }, 10_000);
    const seenAtRefusal = deviceSeen();
    assert.match(refused.body, /<title>400 The SSL certificate error<\/title>/);
    assert.match(readFileSync(nginx.errorLog, 'utf8'), /client SSL certificate verify error: \(23:certificate revoked\)/);

    // A session offered anyway (the best a client has: one from another server, same certificate and name)
    // is not resumed: full handshake, and the same 400.
    for (const v of ['-tls1_2', '-tls1_3'] as const) {
      const f = join(w.work, `nginx-after${v}.sess`);
      const r = await sClient(w, port, v, { in: foreign[v], out: f });
      assertNothingToResume(r, f, `nginx ${v} after revoke`);
      assert.match(r.stdout, /HTTP\/1.1 400 Bad Request[\s\S]*The SSL certificate error/, r.stdout + r.stderr);
    }
    for (let i = 0; i < 10; i++) assert.equal((await curlDevice(w, port)).status, '400');
    assert.equal(deviceSeen(), seenAtRefusal, 'nothing reached the app after the first refusal');
  });

  test('HAProxy: device gets 200 with X-Latchkey-Device-Id upstream; after revoke + gateway sync (runtime API set/commit ssl crl-file) the handshake fails with an alert, also when resuming', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'haproxy', 'timeout')) return;
    const w = await world(t);
    const port = await freePort();
    const printed = await gatewayConfig(w, 'haproxy', port);
    assert.match(printed, /verify required/);
    const haproxy = await startHaproxy(t, w.gw, port);

    const ok = await curlDevice(w, port, { headers: ['X-Latchkey-Device-Id: 00000000-0000-4000-8000-000000000000', 'X-Latchkey-Client-Serial: 01'] });
    assert.equal(ok.status, '200', ok.body + ok.stderr);
    const seen = JSON.parse(ok.body) as Record<string, string>;
    assert.equal(seen['x-latchkey-device-id'], w.deviceId);
    assert.equal(seen['x-latchkey-client-serial'], w.serial);
    const anon = await curlDevice(w, port, { cert: false });
    assert.notEqual(anon.code, 0, 'no client certificate, no connection');
    assert.match(anon.stderr, /alert certificate required|alert handshake failure/);

    // No session resumption. TLS 1.2: no session id, no ticket, nothing saved. TLS 1.3: OpenSSL still sends
    // a stateful ticket, so s_client saves a session, but with no session cache HAProxy never resumes it.
    const foreign = await resumingControl(t, w);
    const tls12 = join(w.work, 'haproxy-tls1_2.sess');
    const first12 = await sClient(w, port, '-tls1_2', { out: tls12 });
    assert.match(first12.stdout, /HTTP\/1.1 200 OK/, first12.stderr);
    assertNothingToResume(first12, tls12, 'HAProxy -tls1_2');
    const tls13 = join(w.work, 'haproxy-tls1_3.sess');
    const first13 = await sClient(w, port, '-tls1_3', { out: tls13 });
    assert.match(first13.stdout, /HTTP\/1.1 200 OK/, first13.stderr);
    assert.ok(existsSync(tls13), 'HAProxy sent a TLS 1.3 ticket and s_client saved the session');
    const again13 = await sClient(w, port, '-tls1_3', { in: tls13 });
    assert.match(again13.stdout, /^New, TLSv1\.3/m, again13.stdout + again13.stderr);
    assert.match(again13.stdout, /HTTP\/1.1 200 OK/);

    const rv = await cli(['devices', 'revoke', w.deviceId, '--reason', 'keyCompromise', '--data-dir', w.dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    await syncOnce(w, ['--haproxy-socket', haproxy.socket]);
    // The runtime API swaps the CRL in place: the very next handshake is checked against it.
    const refused = await curlDevice(w, port);
    assert.notEqual(refused.code, 0, `a revoked device got through: ${refused.status} ${refused.body}`);
    assert.match(refused.stderr, /alert certificate revoked/);

    // The TLS 1.3 session saved while the device was good, and one from elsewhere for TLS 1.2: not resumed.
    for (const [v, sess] of [['-tls1_3', tls13], ['-tls1_2', foreign['-tls1_2']]] as const) {
      const r = await sClient(w, port, v, { in: sess });
      assert.ok(!reused(r), `HAProxy resumed a ${v} session for a revoked device`);
      assert.match(r.stdout + r.stderr, /alert certificate revoked/);
      assert.doesNotMatch(r.stdout, /HTTP\/1.1 200/);
    }
    assert.equal(w.upstream.seen.filter((h) => h['x-latchkey-device-id'] === w.deviceId).length, 4, 'the app saw the device only while it was good');
  });

  test('nginx and HAProxy in front of a WSGI app (CGI header mapping): a client\'s X-Latchkey-* headers, in every spelling, never reach it; only the gateway\'s values do', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'nginx', 'haproxy', 'python3')) return;
    const w = await world(t);
    const appPort = await freePort();
    await wsgiUpstream(t, appPort);
    const spoof = '00000000-0000-4000-8000-000000000000';
    // Dash and underscore, any case, mixed: CGI maps all of them to the same HTTP_X_LATCHKEY_* variable.
    const ours = ['X-Latchkey-Device-Id', 'x-latchkey-device-id', 'X_Latchkey_Device_Id', 'x_LATCHKEY_device_ID', 'X-Latchkey_Device-Id', 'X-LATCHKEY-CLIENT-SERIAL', 'X_Latchkey_Client_Serial', 'x-latchkey-client_serial', 'X-Latchkey-User', 'x_latchkey_user', 'X-LATCHKEY_USER', 'X_Latchkey_Role'];
    for (const kind of ['nginx', 'haproxy'] as const) {
      const port = await freePort();
      const dir = join(w.work, `gw-${kind}`);
      const r = await writeGatewayConfig({ dataDir: w.dataDir, kind, listenPort: port, upstreamPort: appPort, out: dir });
      assert.equal(r.code, 0, r.stderr);
      if (kind === 'nginx') await startNginx(t, dir, port);
      else await startHaproxy(t, dir, port);
      // nginx cannot delete headers by pattern: it drops every underscore name and replaces the dash spellings
      // of the headers it sets; HAProxy deletes every X-Latchkey-* name, also ones it does not set.
      const names = kind === 'haproxy' ? [...ours, 'X-Latchkey-Role'] : ours;
      const ok = await curlDevice(w, port, { headers: names.map((n) => `${n}: ${spoof}`) });
      assert.equal(ok.status, '200', ok.body + ok.stderr);
      assert.deepEqual(JSON.parse(ok.body), { HTTP_X_LATCHKEY_DEVICE_ID: w.deviceId, HTTP_X_LATCHKEY_CLIENT_SERIAL: w.serial }, `${kind}: what the WSGI app saw`);
    }
  });

  test('issue 12: nginx and HAProxy pass the user of a user-bound device as X-Latchkey-User (subject emailAddress) and log it; none for a device without a user, nor from a CN posing as one; a client\'s own X-Latchkey-User never reaches the app', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'nginx', 'haproxy')) return;
    const w = await world(t);
    // Devices of this server's issuing CA: one bound to alice, one whose name (the CN) reads like a user.
    const alice = await issueDevice(w.dataDir, { name: 'alice-laptop', email: 'alice@corp.example' });
    const poser = await issueDevice(w.dataDir, { name: 'x,emailAddress=evil@x', });
    for (const [f, d] of [['alice', alice], ['poser', poser]] as const) {
      writeFileSync(join(w.work, `${f}.pem`), d.certPem);
      writeFileSync(join(w.work, `${f}.key`), d.keyPem);
    }
    const subject = async (f: string): Promise<string> => (await w.sh('openssl', ['x509', '-in', `${f}.pem`, '-noout', '-subject', '-nameopt', 'RFC2253'])).stdout.trim();
    assert.equal(await subject('alice'), `subject=emailAddress=alice@corp.example,UID=${alice.id},CN=alice-laptop,O=Example Corp`);
    assert.equal(await subject('poser'), `subject=UID=${poser.id},CN=x\\,emailAddress=evil@x,O=Example Corp`);
    const spoof = ['X-Latchkey-User: evil@x', 'X_Latchkey_User: evil@x', 'x-latchkey-user: evil2@x'];
    /** The X-Latchkey-* headers the app got (any spelling), for one request through the gateway. */
    const through = async (port: number, as: string): Promise<Record<string, string>> => {
      const r = await curlDevice(w, port, { as, headers: spoof });
      assert.equal(r.status, '200', `${as}: ${r.body}${r.stderr}`);
      return Object.fromEntries(Object.entries(JSON.parse(r.body) as Record<string, string>).filter(([k]) => /^x[-_]latchkey[-_]/.test(k)).map(([k, v]) => [k, v]));
    };
    for (const kind of ['nginx', 'haproxy'] as const) {
      const port = await freePort();
      const dir = join(w.work, `gw-${kind}`);
      const r = await writeGatewayConfig({ dataDir: w.dataDir, kind, listenPort: port, upstreamPort: w.upstream.port, out: dir });
      assert.equal(r.code, 0, r.stderr);
      const gw = kind === 'nginx' ? await startNginx(t, dir, port) : await startHaproxy(t, dir, port);
      const a = await through(port, 'alice');
      assert.equal(a['x-latchkey-user'], 'alice@corp.example', `${kind}: ${JSON.stringify(a)}`);
      assert.equal(a['x-latchkey-device-id'], alice.id);
      assert.deepEqual(Object.keys(a).sort(), ['x-latchkey-client-serial', 'x-latchkey-device-id', 'x-latchkey-user'], `${kind}: one of each, none of the client's`);
      for (const [as, id] of [['device', w.deviceId], ['poser', poser.id]] as const) {
        const h = await through(port, as);
        assert.deepEqual(Object.keys(h).sort(), ['x-latchkey-client-serial', 'x-latchkey-device-id'], `${kind}, ${as}: no user upstream`);
        assert.equal(h['x-latchkey-device-id'], id);
      }
      // The access log names the device and its user.
      const log = (): string => (kind === 'nginx' ? (existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '') : gw.log());
      await until(`${kind}'s access log`, async () => (log().includes(`device=${poser.id}`) ? true : undefined), 10_000);
      assert.match(log(), new RegExp(`device=${alice.id} user=alice@corp\\.example serial=`));
      assert.match(log(), new RegExp(`device=${poser.id} user=${kind === 'nginx' ? '' : '-'} serial=`));
      assert.doesNotMatch(log(), /evil/);
    }
  });

  test('HAProxy: a CRL bigger than tune.bufsize, which the runtime API cannot take, is an error (exit 1, error lines on every retry) without --reload, and is applied by reloading HAProxy with --reload', { timeout: 240_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'haproxy')) return;
    const w = await world(t);
    const port = await freePort();
    await gatewayConfig(w, 'haproxy', port);
    const haproxy = await startHaproxy(t, w.gw, port, { masterWorker: true });
    assert.equal((await curlDevice(w, port)).status, '200');

    // The device is revoked among 7,000 others: the issuing CRL (signed by this data dir's issuing CA) is
    // about 350 kB, more than the 256 kB tune.bufsize of the generated haproxy.cfg.
    assert.equal((await cli(['devices', 'revoke', w.deviceId, '--data-dir', w.dataDir])).code, 0);
    const publisher = await crlPublisher(t, w.dataDir, w.gatewayToken);
    const others = Array.from({ length: 7000 }, () => `4${crypto.randomBytes(15).toString('hex')}`);
    const big = await publisher.set('issuing', { crlNumber: 1000, serials: [w.serial.toLowerCase(), ...others] });
    await publisher.set('root', { crlNumber: 1000, serials: [] });
    assert.ok(big.length > 262_144, `the CRL is ${big.length} bytes`);
    const args = ['gateway', 'sync', '--server', publisher.url, '--ca-file', join(w.gw, 'ca.pem'), '--crl-file', join(w.gw, 'crl.pem'), '--haproxy-socket', haproxy.socket];

    // --once without a way to reload: exit 1, saying HAProxy is left on its previous CRL and what to do.
    const once = await cli([...args, '--once'], { env: { LATCHKEY_GATEWAY_TOKEN: w.gatewayToken } });
    assert.equal(once.code, 1, once.stderr);
    assert.match(once.stderr, /HAProxy did not take the new CRL over its runtime API \(.*\), so it still checks devices against its previous CRL; raise tune\.bufsize in haproxy\.cfg, or give gateway sync --reload "CMD"/);
    assert.equal((await curlDevice(w, port)).status, '200', 'HAProxy is indeed still on the old CRL');

    // Live: an error line on every retry, with backoff; it keeps running.
    const statusFile = join(w.work, 'sync-status.json');
    const live = daemon(t, process.execPath, [SERVER_CLI, ...args, '--status-file', statusFile], { ...process.env, LATCHKEY_GATEWAY_TOKEN: w.gatewayToken });
    const failures = (): number => live.log().match(/gateway sync: error: CRL sync failed \(HAProxy did not take the new CRL over its runtime API/g)?.length ?? 0;
    await until('two failed tries logged as errors', async () => (failures() >= 2 ? true : undefined), 60_000);
    assert.match(live.log(), /retrying in 0\.[4-6] s[\s\S]*retrying in (0\.[89]|1\.[0-2]) s/, "backoff (±20% jitter)");
    assert.equal(live.proc.exitCode, null);
    // What a monitoring check reads: failing, on the CRL applied before, and why.
    const status = JSON.parse(readFileSync(statusFile, 'utf8')) as { state: string; applied: Record<string, string>; error: string; failingSince: string };
    assert.equal(status.state, 'failing');
    assert.deepEqual(status.applied, {});
    assert.match(status.error, /HAProxy did not take the new CRL over its runtime API/);
    live.proc.kill('SIGTERM');

    // With --reload: the file is written, HAProxy reloaded, and what it then holds is checked.
    const reloaded = await cli([...args, '--once', '--reload', haproxy.reload], { env: { LATCHKEY_GATEWAY_TOKEN: w.gatewayToken } });
    assert.equal(reloaded.code, 0, reloaded.stderr);
    assert.match(reloaded.stderr, /warn: HAProxy's runtime API did not take the new CRL \(.*\); reloading HAProxy/);
    assert.match(reloaded.stderr, /synced CRLs \(issuing #1000, root #1000; 7001 revoked serial\(s\)\)/);
    const refused = await until('HAProxy to refuse the revoked device', async () => {
      const r = await curlDevice(w, port);
      return r.code !== 0 ? r : undefined;
    }, 30_000);
    assert.match(refused.stderr, /alert certificate revoked/);
  });
});
