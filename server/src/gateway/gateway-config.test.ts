import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PEM, certificateToPem, createDeviceProfile, createIssuer, encodeName, nodeSigner, pemDecodeAll, randomSerial, signCertificate, type NameAttribute } from '@latchkey/pki';
import { PATHS, TPM_ATTESTED_OU, TPM_ATTESTED_POLICY_OID } from '@latchkey/protocol';
import { loadCaKeys } from '../ca/ca-context.js';
import { UsageError } from '../admin-client.js';
import { FILES } from '../ca/ca-files.js';
import { sanitizeDeviceName } from '../est/est-fns.js';
import { type Harness, harness } from '../testing/harness.js';
import { GATEWAY_FILES, type GatewayConfigOptions, NOT_ATTESTED_BODY, attestedDnPattern, crlBundle, gatewayConfigCommand, nginxStreamModule, parseListen, parseUpstream, renderHaproxy, renderNginxMain, renderNginxSite, rfc2253Value } from './gateway-config.js';

const OPTS: GatewayConfigOptions = {
  listen: { host: '127.0.0.1', port: 8443 },
  upstream: { stream: false, tls: false, host: '127.0.0.1', port: 9000 },
  serverName: 'apps.example.com',
  dir: '/etc/latchkey-gateway',
  certSource: 'test',
  caSubjects: ['CN=Issuing', 'CN=Root'],
  generatedAt: new Date('2025-01-01T00:00:00Z'),
};

const ID = '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90';

/** The regexes of the nginx maps $latchkey_device_id and $latchkey_user (PCRE; these are JS-compatible, named groups too). */
function nginxMaps(conf: string): [RegExp, RegExp] {
  const re = (v: string): RegExp => {
    const m = new RegExp(`\nmap \\$ssl_client_s_dn \\$${v} \\{\n {4}default "";\n {4}"~([^"]+)" \\$\\w+;\n\\}`).exec(conf);
    assert.ok(m, `the map of $${v}`);
    return new RegExp(m[1]!);
  };
  return [re('latchkey_device_id'), re('latchkey_user')];
}

const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

/** The running server as `gateway config` reaches it: HTTPS with the data dir's TLS certificate, in front of the app. */
async function serve(t: { after(fn: () => unknown): void }, h: Harness, opts: { noRootCrl?: boolean } = {}): Promise<string> {
  const s = createServer({ cert: readFileSync(join(h.dataDir, FILES.tlsCert)), key: readFileSync(join(h.dataDir, FILES.tlsKey)) }, (req, res) => {
    if (opts.noRootCrl && req.url === PATHS.rootCrlPem) {
      res.writeHead(404).end();
      return;
    }
    void h.app.inject({ method: 'GET', url: req.url ?? '/' }).then((r) => res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type'] ?? '') }).end(r.rawPayload));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  return `https://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function command(argv: string[], dataDir: string): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await gatewayConfigCommand(argv, dataDir, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

describe('gateway config: rendering', () => {
  test('nginx: mTLS against the CA bundle and both CRLs, no session resumption, device id and serial upstream', () => {
    const c = renderNginxSite(OPTS);
    for (const line of [
      '    listen 127.0.0.1:8443 ssl;',
      '    server_name apps.example.com;',
      '    ssl_certificate     /etc/latchkey-gateway/gateway.crt.pem;',
      '    ssl_certificate_key /etc/latchkey-gateway/gateway.key.pem;',
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_verify_client on;',
      '    ssl_verify_depth 2;',
      '    ssl_client_certificate /etc/latchkey-gateway/ca.pem;',
      '    ssl_crl /etc/latchkey-gateway/crl.pem;',
      '    ssl_session_cache off;',
      '    ssl_session_tickets off;',
      '    ssl_conf_command NumTickets 0;',
      '    underscores_in_headers off;',
      '    ignore_invalid_headers on;',
      '        proxy_set_header X-Latchkey-Device-Id $latchkey_device_id;',
      '        proxy_set_header X-Latchkey-Client-Serial $ssl_client_serial;',
      '        proxy_set_header X-Latchkey-User $latchkey_user;',
      '    server 127.0.0.1:9000;',
      '        proxy_pass http://latchkey_app;',
    ]) {
      assert.ok(c.split('\n').includes(line), `missing: ${line}`);
    }
    assert.match(c, /A resumed session \(session id or ticket\) skips certificate verification,\n\s+# so a device revoked after its first handshake could keep reconnecting/);
    assert.doesNotMatch(c, /proxy_ssl_verify/);
    const https = renderNginxSite({ ...OPTS, upstream: { stream: false, tls: true, host: 'app.internal', port: 443 } });
    assert.match(https, /proxy_pass https:\/\/latchkey_app;\n\s+proxy_ssl_verify on;[\s\S]*proxy_ssl_name app.internal;/);
    assert.match(renderNginxSite({ ...OPTS, listen: { host: undefined, port: 443 } }), /\n {4}listen 443 ssl;\n/);
    assert.match(renderNginxMain(OPTS), /\n {4}include \/etc\/latchkey-gateway\/latchkey-gateway.conf;\n {4}access_log access.log latchkey_gateway;\n/);
  });

  test('RFC 4519 UID: the nginx map takes the device id only from the leading UID of $ssl_client_s_dn (RFC 2253), after the user if there is one', () => {
    const [id] = nginxMaps(renderNginxSite(OPTS));
    const uid = (dn: string): string | undefined => id.exec(dn)?.groups?.['latchkey_uid'];
    assert.equal(uid(`UID=${ID},CN=laptop-7,O=Example Corp`), ID);
    assert.equal(uid(`UID=${ID}`), ID);
    assert.equal(uid(`emailAddress=alice@corp.example,UID=${ID},CN=laptop-7,O=Example Corp`), ID);
    // A CN or O cannot smuggle one in (OpenSSL escapes ',' but not '='), nor can a longer value pass.
    assert.equal(uid(`CN=x\\,UID=${ID},O=Example Corp`), undefined);
    assert.equal(uid(`UID=${ID}0,CN=x`), undefined);
    assert.equal(uid(`CN=laptop-7,O=Example Corp`), undefined);
    assert.equal(uid(`emailAddress=a\\,b@x,UID=${ID},CN=x`), undefined, 'an email the CA would never issue');
  });

  test('PKCS#9 emailAddress: the nginx map takes the user only from a leading emailAddress right before the UID; a CN cannot forge one', () => {
    const [, user] = nginxMaps(renderNginxSite(OPTS));
    const who = (dn: string): string | undefined => user.exec(dn)?.groups?.['latchkey_email'];
    assert.equal(who(`emailAddress=alice@corp.example,UID=${ID},CN=laptop-7,O=Example Corp`), 'alice@corp.example');
    assert.equal(who(`emailAddress=Alice.Smith_2%x@corp-eu.example.com,UID=${ID}`), 'Alice.Smith_2%x@corp-eu.example.com');
    assert.equal(who(`UID=${ID},CN=laptop-7,O=Example Corp`), undefined, 'no user');
    // The device name is the CN: sanitizeDeviceName leaves no ',' or '=' in it, and were one there, OpenSSL would
    // print it escaped ("\\,"), and anyway not first: the last RDN (UID, or the user's emailAddress) leads.
    assert.equal(sanitizeDeviceName('x,emailAddress=evil@x'), 'x-emailAddress-evil-x');
    assert.equal(who(`UID=${ID},CN=x\\,emailAddress=evil@x,O=Example Corp`), undefined);
    assert.equal(who(`UID=${ID},CN=x,emailAddress=evil@x`), undefined);
    assert.equal(who(`UID=${ID},O=x\\,emailAddress=evil@x`), undefined);
    assert.equal(who('emailAddress=evil@x,CN=not-a-device'), undefined, 'not followed by a device id');
    // What RFC 2253 escapes is no plain address (the CA refuses it): no half-read value.
    assert.equal(who(`emailAddress=bob\\+tag@corp.example,UID=${ID}`), undefined);
    assert.equal(who(`emailAddress=a@x\\,UID=${ID},UID=${ID}`), undefined);
    // The same maps in the stream gateway, where the user is logged.
    const stream = renderNginxSite({ ...OPTS, upstream: parseUpstream('tcp://10.0.0.5:22') });
    assert.deepEqual(nginxMaps(stream).map(String), nginxMaps(renderNginxSite(OPTS)).map(String));
    assert.match(stream, /\nlog_format latchkey_stream '[^']* device=\$latchkey_device_id user=\$latchkey_user serial=\$ssl_client_serial /);
    assert.match(renderNginxSite(OPTS), /\nlog_format latchkey_gateway '[^']* device=\$latchkey_device_id user=\$latchkey_user serial=\$ssl_client_serial /);
  });

  test('HAProxy: verify required with CA and CRL files, bigger buffers, no tickets nor session cache, admin socket, headers', () => {
    const c = renderHaproxy(OPTS);
    for (const line of [
      '    tune.bufsize 262144',
      '    tune.ssl.cachesize 0',
      '    stats socket /etc/latchkey-gateway/haproxy.sock mode 600 level admin',
      '    bind 127.0.0.1:8443 ssl crt /etc/latchkey-gateway/gateway.pem ca-file /etc/latchkey-gateway/ca.pem crl-file /etc/latchkey-gateway/crl.pem verify required ssl-min-ver TLSv1.2 no-tls-tickets alpn http/1.1',
      '    http-request del-header ^x[-_]latchkey[-_] -m reg',
      "    http-request deny deny_status 403 unless { ssl_c_s_dn(UID) -m reg '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' }",
      '    http-request set-header X-Latchkey-Device-Id %[ssl_c_s_dn(UID)]',
      '    http-request set-header X-Latchkey-Client-Serial %[ssl_c_serial,hex]',
      "    http-request set-header X-Latchkey-User %[ssl_c_s_dn(emailAddress)] if { ssl_c_s_dn(emailAddress) -m reg '^[A-Za-z0-9._%-]{1,64}@[A-Za-z0-9.-]{1,253}$' }",
      '    log stdout format raw local0 info',
      '    log global',
      '    log-format "%ci:%cp [%tr] %ft %b/%s %ST %B %{+Q}r device=%[ssl_c_s_dn(UID)] user=%[ssl_c_s_dn(emailAddress)] serial=%[ssl_c_serial,hex] verify=%[ssl_c_verify]"',
      '    server app 127.0.0.1:9000',
    ]) {
      assert.ok(c.split('\n').includes(line), `missing: ${line}`);
    }
    assert.ok(c.indexOf('del-header ^x[-_]latchkey[-_]') < c.indexOf('set-header X-Latchkey-Device-Id'), 'deleted before set');
    assert.ok(c.indexOf('del-header ^x[-_]latchkey[-_]') < c.indexOf('set-header X-Latchkey-User'), 'deleted before set');
    assert.match(renderHaproxy({ ...OPTS, listen: { host: '[::1]', port: 8443 } }), /\n {4}bind ::1:8443 ssl /);
  });

  test('tcp:// upstream, nginx: a stream server with the same mTLS, absolute paths, proxy_pass only for a device id; the main file loads the module', () => {
    const o = { ...OPTS, upstream: parseUpstream('tcp://10.0.0.5:22') };
    const c = renderNginxSite(o);
    assert.match(c, /Include this file inside stream \{ \}/);
    assert.match(c, /\n {4}listen 127\.0\.0\.1:8443 ssl;\n/);
    for (const line of ['ssl_verify_client on;', 'ssl_verify_depth 2;', 'ssl_client_certificate /etc/latchkey-gateway/ca.pem;', 'ssl_crl /etc/latchkey-gateway/crl.pem;', 'ssl_certificate     /etc/latchkey-gateway/gateway.crt.pem;', 'ssl_session_cache off;', 'ssl_session_tickets off;', 'ssl_conf_command NumTickets 0;', 'proxy_pass $latchkey_upstream;']) {
      assert.ok(c.includes(`\n    ${line}\n`), line);
    }
    assert.match(c, /\nupstream latchkey_app \{\n {4}server 10\.0\.0\.5:22;\n\}/);
    assert.match(c, /\nmap \$latchkey_device_id \$latchkey_upstream \{\n {4}"" latchkey_refused;\n {4}default latchkey_app;\n\}/);
    assert.match(c, /\nupstream latchkey_refused \{\n {4}server 127\.0\.0\.1:9 down;\n\}/);
    assert.doesNotMatch(c, /proxy_set_header|http \{|location/);
    const main = renderNginxMain(o, '/usr/lib/nginx/modules/ngx_stream_module.so');
    assert.match(main, /^load_module \/usr\/lib\/nginx\/modules\/ngx_stream_module\.so;$/m);
    assert.ok(main.indexOf('load_module') < main.indexOf('events {'), 'load_module comes first, in the main context');
    assert.match(main, /\nstream \{\n {4}include \/etc\/latchkey-gateway\/latchkey-gateway-stream\.conf;\n {4}access_log \/etc\/latchkey-gateway\/access\.log latchkey_stream;\n\}/);
    assert.doesNotMatch(renderNginxMain(o, null), /^load_module/m);
    assert.throws(() => renderNginxMain(o, 'modules/x.so'), /absolute path/);
  });

  test("nginx -V decides where the stream module comes from: dynamic (load it from the modules path), built in, or Debian's path", () => {
    const debian = 'nginx version: nginx/1.22.1\nconfigure arguments: --with-cc-opt=-g --prefix=/usr/share/nginx --modules-path=/usr/lib/nginx/modules --with-stream=dynamic --with-stream_ssl_module';
    assert.equal(nginxStreamModule(debian), '/usr/lib/nginx/modules/ngx_stream_module.so');
    assert.equal(nginxStreamModule('configure arguments: --prefix=/etc/nginx --with-stream --with-stream_ssl_module'), null);
    assert.equal(nginxStreamModule('configure arguments: --prefix=/opt/nginx/ --with-stream=dynamic'), '/opt/nginx/modules/ngx_stream_module.so');
    assert.equal(nginxStreamModule(undefined), '/usr/lib/nginx/modules/ngx_stream_module.so');
  });

  test('tcp:// upstream, HAProxy: mode tcp, verify required with CA and CRL files, no tickets, a device id or no session', () => {
    const c = renderHaproxy({ ...OPTS, upstream: parseUpstream('tcp://10.0.0.5:22') });
    assert.match(c, /\ndefaults\n {4}mode tcp\n/);
    assert.match(c, /\n {4}bind 127\.0\.0\.1:8443 ssl crt \/etc\/latchkey-gateway\/gateway\.pem ca-file \/etc\/latchkey-gateway\/ca\.pem crl-file \/etc\/latchkey-gateway\/crl\.pem verify required ssl-min-ver TLSv1\.2 no-tls-tickets\n/);
    assert.match(c, /\n {4}tcp-request session reject unless \{ ssl_c_s_dn\(UID\) -m reg '\^\[0-9a-f\]\{8\}-/);
    assert.match(c, /\n {4}tune\.ssl\.cachesize 0\n/);
    assert.match(c, /\nbackend latchkey_app\n {4}server app 10\.0\.0\.5:22\n/);
    assert.match(c, /\n {4}log global\n {4}log-format "%ci:%cp \[%t\] %ft %b\/%s %Tw\/%Tc\/%Tt %B %ts device=%\[ssl_c_s_dn\(UID\)\] user=%\[ssl_c_s_dn\(emailAddress\)\] serial=/);
    assert.doesNotMatch(c, /mode http|http-request|alpn/);
  });

  test('options: listen and upstream forms; nothing that could break out of a directive', () => {
    assert.deepEqual(parseListen('8443'), { host: undefined, port: 8443 });
    assert.deepEqual(parseListen('0.0.0.0:443'), { host: '0.0.0.0', port: 443 });
    assert.deepEqual(parseListen('[::]:443'), { host: '[::]', port: 443 });
    for (const bad of ['0', '70000', 'host:', 'a b:1', '1.2.3.4:1;x']) assert.throws(() => parseListen(bad), UsageError, bad);
    assert.deepEqual(parseUpstream('http://127.0.0.1:9000'), { stream: false, tls: false, host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseUpstream('https://app.internal/'), { stream: false, tls: true, host: 'app.internal', port: 443 });
    assert.deepEqual(parseUpstream('tcp://10.0.0.5:22'), { stream: true, tls: false, host: '10.0.0.5', port: 22 });
    assert.deepEqual(parseUpstream('tcp://[fd00::5]:5432'), { stream: true, tls: false, host: '[fd00::5]', port: 5432 });
    for (const bad of ['tcp://10.0.0.5', 'tcp://10.0.0.5:22/x', 'tcp://u@h:22']) assert.throws(() => parseUpstream(bad), /tcp:\/\/ needs HOST:PORT/, bad);
    for (const bad of ['ftp://x', 'http://x/app', 'http://u:p@x', 'not a url', 'udp://x:53']) assert.throws(() => parseUpstream(bad), UsageError, bad);
    assert.throws(() => renderNginxSite({ ...OPTS, serverName: 'x; include /etc/passwd' }), /--server-name/);
    assert.throws(() => renderHaproxy({ ...OPTS, dir: '/tmp/a b' }), /absolute path/);
    assert.throws(() => renderNginxSite({ ...OPTS, dir: 'relative' }), /absolute path/);
  });
});

describe('gateway config: the command', () => {
  test('nginx --out: CA bundle, both CRLs (PEM "X509 CRL"), certificate and key; nginx -t accepts it', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h);
    const out = join(h.dataDir, 'gw');
    const r = await command(['nginx', '--listen', '127.0.0.1:18443', '--upstream', 'http://127.0.0.1:9000', '--out', out, '--server', server], h.dataDir);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`ssl_crl ${out}/crl.pem;`));
    assert.match(r.out, /# gateway TLS certificate: issued for 127\.0\.0\.1 with a new key \(serverAuth, serial [0-9a-f]+, by O=Example Corp, CN=Example Corp Latchkey Device CA, until /);
    assert.equal(readFileSync(join(out, GATEWAY_FILES.nginxSite), 'utf8') + '\n', r.out.slice(0, r.out.indexOf('# wrote')));
    const crl = pemDecodeAll(readFileSync(join(out, GATEWAY_FILES.crl), 'utf8'));
    assert.deepEqual(crl.map((b) => b.label), [PEM.CRL, PEM.CRL]);
    assert.deepEqual(crl[0]!.der, (await h.crl.get('issuing'))!.der);
    assert.deepEqual(crl[1]!.der, (await h.crl.get('root'))!.der);
    const ca = pemDecodeAll(readFileSync(join(out, GATEWAY_FILES.caBundle), 'utf8'));
    assert.deepEqual(ca.map((b) => b.der), [h.issuing.der, h.root.der]);
    assert.equal(statSync(join(out, GATEWAY_FILES.key)).mode & 0o777, 0o600);
    // Its own key, never the server's.
    assert.notEqual(readFileSync(join(out, GATEWAY_FILES.key), 'utf8'), readFileSync(join(h.dataDir, FILES.tlsKey), 'utf8'));
    assert.ok(!readFileSync(join(out, GATEWAY_FILES.cert), 'utf8').includes(readFileSync(join(h.dataDir, FILES.tlsCert), 'utf8').split('-----END CERTIFICATE-----')[0]!), 'not the server certificate');
    if (has('openssl') || process.env.LATCHKEY_REQUIRE_ALL === '1') {
      // The CRL file as OpenSSL reads it: one CRL per CA.
      const v = spawnSync('openssl', ['verify', '-crl_check_all', '-CAfile', join(out, GATEWAY_FILES.caBundle), '-CRLfile', join(out, GATEWAY_FILES.crl), join(out, GATEWAY_FILES.cert)], { encoding: 'utf8' });
      assert.match(v.stdout + v.stderr, /gateway.crt.pem: OK/);
    }
    if (!has('nginx')) {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail('nginx is required (LATCHKEY_REQUIRE_ALL=1)');
      return t.skip('nginx is not installed (apt-get install nginx)');
    }
    const nt = spawnSync('nginx', ['-t', '-p', out, '-c', join(out, GATEWAY_FILES.nginxMain), '-g', `pid ${out}/nginx.pid; error_log stderr;`], { encoding: 'utf8' });
    assert.equal(nt.status, 0, nt.stderr);
    assert.match(nt.stderr, /syntax is ok/);
  });

  test('RFC 5280 §4.2.1.6/§4.2.1.12: the gateway gets its own key and a serverAuth certificate for its --name(s), chained to the root (checked by openssl)', async (t) => {
    if (!has('openssl')) {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail('openssl is required (LATCHKEY_REQUIRE_ALL=1)');
      return t.skip('openssl is not installed');
    }
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h);
    const out = join(h.dataDir, 'gw');
    const r = await command(['nginx', '--name', 'apps.example.com', '--name', 'GW.example.com', '--name', '10.1.2.3', '--out', out, '--server', server], h.dataDir);
    assert.equal(r.code, 0);
    const certFile = join(out, GATEWAY_FILES.cert);
    const keyFile = join(out, GATEWAY_FILES.key);
    const ossl = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
    const v = ossl(['verify', '-purpose', 'sslserver', '-CAfile', join(out, GATEWAY_FILES.caBundle), certFile]);
    assert.match(v.stdout, /gateway.crt.pem: OK/, v.stderr);
    for (const host of ['apps.example.com', 'gw.example.com']) assert.match(ossl(['verify', '-verify_hostname', host, '-CAfile', join(out, GATEWAY_FILES.caBundle), certFile]).stdout, /OK/);
    assert.match(ossl(['verify', '-verify_ip', '10.1.2.3', '-CAfile', join(out, GATEWAY_FILES.caBundle), certFile]).stdout, /OK/);
    assert.doesNotMatch(ossl(['verify', '-verify_hostname', 'latchkey.example.com', '-CAfile', join(out, GATEWAY_FILES.caBundle), certFile]).stdout, /OK/, 'not valid for the server\'s name');
    const text = ossl(['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName,extendedKeyUsage,basicConstraints']).stdout;
    assert.match(text, /DNS:apps\.example\.com, DNS:gw\.example\.com, IP Address:10\.1\.2\.3/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.doesNotMatch(text, /Client Authentication/);
    assert.match(text, /CA:FALSE/);
    // The key is the certificate's, and not the server's.
    const pub = (args: string[]) => ossl(args).stdout;
    assert.equal(pub(['pkey', '-in', keyFile, '-pubout']), pub(['x509', '-in', certFile, '-noout', '-pubkey']));
    assert.notEqual(pub(['pkey', '-in', keyFile, '-pubout']), pub(['pkey', '-in', join(h.dataDir, FILES.tlsKey), '-pubout']));
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    // Two runs, two keys.
    const again = join(h.dataDir, 'gw2');
    assert.equal((await command(['nginx', '--name', 'apps.example.com', '--out', again, '--server', server], h.dataDir)).code, 0);
    assert.notEqual(readFileSync(join(again, GATEWAY_FILES.key), 'utf8'), readFileSync(keyFile, 'utf8'));
    // A name is needed, and must be one.
    await assert.rejects(command(['nginx', '--out', join(h.dataDir, 'gw3'), '--server', server], h.dataDir), /needs a name: give --name HOST/);
    await assert.rejects(command(['nginx', '--name', 'a b', '--out', join(h.dataDir, 'gw3'), '--server', server], h.dataDir), /--name "a b" is not a host name/);
  });

  test('haproxy --out: one PEM with certificate, chain and key; haproxy -c accepts it', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h);
    const out = join(h.dataDir, 'gw');
    const r = await command(['haproxy', '--listen', '127.0.0.1:18443', '--upstream', 'http://127.0.0.1:9000', '--out', out, '--server', server], h.dataDir);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`crl-file ${out}/crl.pem verify required`));
    const pem = pemDecodeAll(readFileSync(join(out, GATEWAY_FILES.haproxyPem), 'utf8'));
    assert.deepEqual(pem.map((b) => b.label), ['CERTIFICATE', 'CERTIFICATE', 'PRIVATE KEY']);
    assert.notEqual(Buffer.from(pem[2]!.der).toString('base64'), pemDecodeAll(readFileSync(join(h.dataDir, FILES.tlsKey), 'utf8'))[0]!.der.toString('base64'), 'not the server\'s key');
    assert.equal(statSync(join(out, GATEWAY_FILES.haproxyPem)).mode & 0o777, 0o600);
    if (!has('haproxy')) {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail('haproxy is required (LATCHKEY_REQUIRE_ALL=1)');
      return t.skip('haproxy is not installed (apt-get install haproxy)');
    }
    const hc = spawnSync('haproxy', ['-c', '-f', join(out, GATEWAY_FILES.haproxy)], { encoding: 'utf8' });
    assert.equal(hc.status, 0, hc.stdout + hc.stderr);
  });

  test('--upstream tcp://: nginx --out writes the stream site and an nginx.conf that loads the module; nginx -t and haproxy -c accept them', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h);
    const out = join(h.dataDir, 'gw');
    const r = await command(['nginx', '--listen', '127.0.0.1:18443', '--upstream', 'tcp://127.0.0.1:22', '--out', out, '--server', server], h.dataDir);
    assert.equal(r.code, 0);
    assert.equal(readFileSync(join(out, GATEWAY_FILES.nginxStreamSite), 'utf8') + '\n', r.out.slice(0, r.out.indexOf('# wrote')));
    assert.match(readFileSync(join(out, GATEWAY_FILES.nginxMain), 'utf8'), new RegExp(`\n {4}include ${out}/${GATEWAY_FILES.nginxStreamSite};\n`));
    const ha = join(h.dataDir, 'gw-ha');
    assert.equal((await command(['haproxy', '--listen', '127.0.0.1:18443', '--upstream', 'tcp://127.0.0.1:22', '--out', ha, '--server', server], h.dataDir)).code, 0);
    for (const tool of ['nginx', 'haproxy']) {
      if (!has(tool)) {
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${tool} is required (LATCHKEY_REQUIRE_ALL=1)`);
        return t.skip(`${tool} is not installed`);
      }
    }
    const nt = spawnSync('nginx', ['-t', '-p', out, '-c', join(out, GATEWAY_FILES.nginxMain), '-g', `pid ${out}/nginx.pid; error_log stderr;`], { encoding: 'utf8' });
    assert.equal(nt.status, 0, nt.stderr);
    assert.match(nt.stderr, /syntax is ok/);
    const hc = spawnSync('haproxy', ['-c', '-f', join(ha, GATEWAY_FILES.haproxy)], { encoding: 'utf8' });
    assert.equal(hc.status, 0, hc.stdout + hc.stderr);
  });

  test('without --out it prints the config for /etc/latchkey-gateway and needs no server', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const r = await command(['haproxy'], h.dataDir);
    assert.equal(r.code, 0);
    assert.match(r.out, /\n {4}bind :8443 ssl crt \/etc\/latchkey-gateway\/gateway.pem /);
    assert.match(r.out, /\n {4}server app 127.0.0.1:8080\n/);
    assert.match(r.out, /run again with --out \/etc\/latchkey-gateway to write them/);
  });

  test('no root CRL (imported CA): refused with what to do; usage errors', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h, { noRootCrl: true });
    await assert.rejects(command(['nginx', '--name', 'gw.example.com', '--out', join(h.dataDir, 'gw'), '--server', server], h.dataDir), /publishes no root CRL[\s\S]*--root-crl FILE/);
    await assert.rejects(command(['apache'], h.dataDir), UsageError);
    await assert.rejects(command(['nginx', '--bogus'], h.dataDir), UsageError);
    await assert.rejects(command(['nginx', '--cert', 'x'], h.dataDir), /--cert and --key go together/);
    await assert.rejects(command(['nginx'], join(h.dataDir, 'nowhere')), /no config.json/);
    await assert.rejects(command(['nginx', '--name', 'gw.example.com', '--out', join(h.dataDir, 'gw'), '--server', 'https://127.0.0.1:1'], h.dataDir), /cannot fetch the issuing CA's CRL from https:\/\/127.0.0.1:1\/crl.pem .*start the server/);
  });

  test('RFC 5280 §5: the CRL bundle takes only CRLs signed by their own CA', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const issuing = (await h.crl.get('issuing'))!.pem;
    const root = (await h.crl.get('root'))!.pem;
    const now = h.clock.now;
    assert.equal(crlBundle([{ pem: issuing, ca: h.issuing, what: 'i' }, { pem: root, ca: h.root, what: 'r' }], now).pem, issuing + root);
    assert.throws(() => crlBundle([{ pem: root, ca: h.issuing, what: 'issuing CA\'s CRL' }], now), /issuing CA's CRL is not signed by/);
    assert.throws(() => crlBundle([{ pem: readFileSync(join(h.dataDir, FILES.rootCert), 'utf8'), ca: h.root, what: 'root CRL' }], now), /not one PEM "X509 CRL" block/);
    const late = crlBundle([{ pem: issuing, ca: h.issuing, what: 'issuing CA\'s CRL' }], new Date(now.getTime() + 30 * 86_400_000));
    assert.match(late.warnings[0]!, /expired at .*: the gateway will refuse every device/);
  });
});

/** Orgs a config may hold: RFC 2253 specials, a leading '#', a trailing space, UTF-8, regex and nginx/HAProxy quoting characters. */
const ORGS = ['Example Corp', 'Ünïcødé, "Acme" + Co; <R&D> $1 (x|y) \\ \'q\' {2} ', '#1 Lead.er*?[a]'];

/** `openssl x509 -subject -nameopt RFC2253`: what nginx's $ssl_client_s_dn and HAProxy's ssl_c_s_dn(,0,rfc2253) print (both call X509_NAME_print_ex with XN_FLAG_RFC2253). */
function opensslDn(der: Buffer): string {
  const r = spawnSync('openssl', ['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], { input: certificateToPem(der), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/^subject=/, '').replace(/\n$/, '');
}

describe('gateway config --require-attested: only TPM-attested devices (issue 14)', () => {
  test('RFC 2253 §2.4 as OpenSSL prints it: the attested DN pattern matches attested certificates and nothing a CN, another OU or another O can make (cross-checked with openssl)', async (t) => {
    if (!has('openssl')) {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail('openssl is required (LATCHKEY_REQUIRE_ALL=1)');
      return t.skip('openssl is not installed');
    }
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const keys = loadCaKeys(h.dataDir, readFileSync(join(h.dataDir, FILES.passphrase), 'utf8').trim());
    const issuer = createIssuer(readFileSync(join(h.dataDir, FILES.issuingCert), 'utf8'), nodeSigner(keys.issuing));
    const spki = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const attested = { ou: TPM_ATTESTED_OU, policyOid: TPM_ATTESTED_POLICY_OID };
    const now = new Date();
    const raw = (subject: NameAttribute[]): Promise<Buffer> =>
      signCertificate({ serial: randomSerial(crypto.randomBytes), issuerDer: issuer.cert.subjectDer, subjectDer: encodeName(subject), spki, notBefore: now, notAfter: new Date(now.getTime() + 60_000), extensions: [] }, issuer.signer);
    for (const org of ORGS) {
      const p = createDeviceProfile({ issuer, org, trustDomain: 'example.com', crlUrls: ['http://x/crl'], ocspUrls: ['http://x/ocsp'], caIssuersUrls: ['http://x/ca'] });
      const base = { spki, deviceId: ID, serial: randomSerial(crypto.randomBytes), now, lifetimeSeconds: 3600 };
      const re = new RegExp(attestedDnPattern(org));
      const yes = [await p.issue({ ...base, deviceName: 'laptop-7', attested }), await p.issue({ ...base, deviceName: 'laptop-7', email: 'alice@corp.example', attested })];
      for (const der of yes) {
        const dn = opensslDn(der);
        assert.ok(dn.endsWith(`,OU=${TPM_ATTESTED_OU},O=${rfc2253Value(org)}`), `${org}: ${dn}`);
        assert.match(dn, re, `${org}: attested`);
      }
      const no: [string, Buffer][] = [
        ['software key', await p.issue({ ...base, deviceName: 'laptop-7' })],
        ['software, user', await p.issue({ ...base, deviceName: 'laptop-7', email: 'alice@corp.example' })],
        ['CN posing as the OU', await p.issue({ ...base, deviceName: `x,OU=${TPM_ATTESTED_OU}` })],
        ['OU after CN', await raw([{ type: 'O', value: org }, { type: 'CN', value: 'x' }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'UID', value: ID }])],
        ['OU before O', await raw([{ type: 'OU', value: TPM_ATTESTED_OU }, { type: 'O', value: org }, { type: 'CN', value: 'x' }, { type: 'UID', value: ID }])],
        ['another OU value', await raw([{ type: 'O', value: org }, { type: 'OU', value: `${TPM_ATTESTED_OU}s` }, { type: 'CN', value: 'x' }, { type: 'UID', value: ID }])],
        ['OU prefix', await raw([{ type: 'O', value: org }, { type: 'OU', value: 'Latchkey TPM-attested' }, { type: 'CN', value: 'x' }, { type: 'UID', value: ID }])],
        ['another org', await raw([{ type: 'O', value: `${org}x` }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'CN', value: 'x' }, { type: 'UID', value: ID }])],
        ['two OUs', await raw([{ type: 'O', value: org }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'CN', value: 'x' }, { type: 'UID', value: ID }])],
        ['no UID', await raw([{ type: 'O', value: org }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'CN', value: 'x' }])],
      ];
      if (`x,OU=${TPM_ATTESTED_OU},O=${org}`.length <= 64) no.push(['CN posing as OU and O', await p.issue({ ...base, deviceName: `x,OU=${TPM_ATTESTED_OU},O=${org}` })]);
      for (const [what, der] of no) assert.doesNotMatch(opensslDn(der), re, `${org}: ${what}`);
    }
    // Only characters that pass through nginx "…" and HAProxy '…' strings unchanged: no quote, no nginx escape (\\ \" \t \r \n), no $ but the anchor.
    for (const org of ORGS) {
      const pat = attestedDnPattern(org);
      assert.doesNotMatch(pat, /["'\n]|\\[\\"'trn]|\$(?!$)/, pat);
    }
  });

  test('nginx (http, stream) and HAProxy (http, tcp): the check, the 403 with why; without the flag none of it', () => {
    const o = { ...OPTS, requireAttested: { org: 'Example Corp' } };
    const pat = attestedDnPattern('Example Corp');
    const nginx = renderNginxSite(o);
    assert.ok(nginx.includes(`map $ssl_client_s_dn $latchkey_attested {\n    default 0;\n    "~${pat}" 1;\n}`), nginx);
    assert.ok(nginx.includes(`    default_type text/plain;\n    if ($latchkey_attested != 1) {\n        return 403 "${NOT_ATTESTED_BODY}\\n";\n    }`), nginx);
    assert.ok(nginx.indexOf('$latchkey_attested != 1') < nginx.indexOf('location /'), 'before anything is proxied');
    const stream = renderNginxSite({ ...o, upstream: parseUpstream('tcp://10.0.0.5:22') });
    assert.ok(stream.includes('map $latchkey_attested $latchkey_upstream {\n    1 latchkey_app;\n    default latchkey_refused;\n}'), stream);
    const hp = renderHaproxy(o);
    assert.ok(hp.includes(`    acl latchkey_attested_ou ssl_c_s_dn(OU) -m str '${TPM_ATTESTED_OU}'\n    acl latchkey_attested_dn ssl_c_s_dn(,0,rfc2253) -m reg '${pat}'`), hp);
    assert.ok(hp.includes(`    http-request return status 403 content-type text/plain string "${NOT_ATTESTED_BODY}" unless latchkey_attested_ou latchkey_attested_dn`), hp);
    assert.ok(hp.indexOf('http-request return status 403') < hp.indexOf('set-header X-Latchkey-Device-Id'));
    const tcp = renderHaproxy({ ...o, upstream: parseUpstream('tcp://10.0.0.5:22') });
    assert.ok(tcp.includes('    tcp-request session reject unless latchkey_attested_ou latchkey_attested_dn'), tcp);
    for (const plain of [renderNginxSite(OPTS), renderHaproxy(OPTS), renderNginxSite({ ...OPTS, upstream: parseUpstream('tcp://10.0.0.5:22') }), renderHaproxy({ ...OPTS, upstream: parseUpstream('tcp://10.0.0.5:22') })]) {
      assert.doesNotMatch(plain, /latchkey_attested|TPM-attested|default_type/);
    }
  });

  test('--out with an org full of special characters: nginx -t and haproxy -c accept what --require-attested writes', async (t) => {
    const h = await harness(t, 'sqlite');
    if (!h) return;
    const server = await serve(t, h);
    const cfg = join(h.dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...(JSON.parse(readFileSync(cfg, 'utf8')) as object), org: ORGS[1] }));
    for (const [kind, tool, args] of [['nginx', 'nginx', (d: string) => ['-t', '-p', d, '-c', join(d, GATEWAY_FILES.nginxMain), '-g', `pid ${d}/nginx.pid; error_log ${d}/error.log;`]], ['haproxy', 'haproxy', (d: string) => ['-c', '-f', join(d, GATEWAY_FILES.haproxy)]]] as const) {
      for (const upstream of ['http://127.0.0.1:9000', 'tcp://127.0.0.1:22']) {
        const out = join(h.dataDir, `gw-${kind}-${upstream.slice(0, 3)}`);
        const r = await command([kind, '--listen', '127.0.0.1:18443', '--upstream', upstream, '--out', out, '--server', server, '--require-attested'], h.dataDir);
        assert.equal(r.code, 0);
        assert.ok(r.out.includes(attestedDnPattern(ORGS[1]!)), r.out);
        if (!has(tool)) {
          if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${tool} is required (LATCHKEY_REQUIRE_ALL=1)`);
          t.diagnostic(`${tool} is not installed: config not checked`);
          continue;
        }
        const c = spawnSync(tool, args(out), { encoding: 'utf8' });
        assert.equal(c.status, 0, `${kind} ${upstream}: ${c.stdout}${c.stderr}`);
      }
    }
  });
});
