/**
 * latchkey-server as a real process on 127.0.0.1, driven as a third party
 * would: `openssl req` + `curl` for EST, `openssl pkcs7/verify/ocsp` to check
 * what comes back, the CLI for admin work. On SQLite and on PostgreSQL.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { createCsr, nodeSigner } from '@latchkey/pki';
import { FACTS_ATTRIBUTE_OID } from '@latchkey/protocol';
import pg from 'pg';
import { SERVER_CLI, cli, freePort, freshPgDatabase, initServer, mustRun, requireTools, run, startServer, tempDir } from './support/processes.js';

const ENGINES = ['sqlite', 'postgres'] as const;

for (const engine of ENGINES) {
  describe(`latchkey-server end to end with openssl and curl (${engine})`, () => {
    test('enroll with a token, verify, re-enroll over mTLS, revoke, CRL and OCSP say revoked', { timeout: 120_000 }, async (t) => {
      if (!requireTools(t, 'openssl', 'curl')) return;
      const databaseUrl = engine === 'postgres' ? await freshPgDatabase(t) : undefined;
      if (engine === 'postgres' && !databaseUrl) return;
      const { dataDir, port, fingerprint } = await initServer(t, databaseUrl ? { databaseUrl } : {});
      const server = await startServer(t, dataDir, port);
      const work = tempDir(t);
      const base = server.url;
      const rootCa = join(dataDir, 'root.crt.pem');
      const sh = (cmd: string, args: string[]) => mustRun(cmd, args, { cwd: work });

      // The admin creates a one-use enrollment token.
      const tok = await cli(['token', 'create', '--data-dir', dataDir, '--json']);
      assert.equal(tok.code, 0, tok.stderr);
      const token = (JSON.parse(tok.stdout) as { token: string }).token;

      // RFC 7030 §4.1: cacerts; the root's fingerprint matches what init printed.
      await sh('curl', ['-sf', '--cacert', rootCa, '-o', 'cacerts.b64', `${base}/.well-known/est/cacerts`]);
      writeFileSync(join(work, 'cacerts.der'), Buffer.from(readFileSync(join(work, 'cacerts.b64'), 'utf8'), 'base64'));
      const chain = await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'cacerts.der', '-print_certs', '-out', 'chain.pem']);
      assert.equal(chain.code, 0);
      await sh('openssl', ['x509', '-in', 'chain.pem', '-out', 'issuing.pem']);
      const fp = await sh('openssl', ['x509', '-in', rootCa, '-noout', '-fingerprint', '-sha256']);
      assert.equal(fp.stdout.trim().split('=')[1]!.replace(/:/g, '').toLowerCase(), fingerprint);

      // RFC 7030 §4.2.1: simpleenroll with openssl req + curl.
      await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key', '-subj', '/CN=laptop-e2e', '-outform', 'DER', '-out', 'device.csr']);
      writeFileSync(join(work, 'device.csr.b64'), readFileSync(join(work, 'device.csr')).toString('base64'));
      const enrollRes = await run('curl', ['-s', '-w', '\n%{http_code}', '--cacert', rootCa, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.csr.b64', `${base}/.well-known/est/simpleenroll`], { cwd: work });
      const [enrollBody, enrollStatus] = [enrollRes.stdout.slice(0, enrollRes.stdout.lastIndexOf('\n')), enrollRes.stdout.slice(enrollRes.stdout.lastIndexOf('\n') + 1)];
      assert.equal(enrollStatus, '200', enrollRes.stdout);
      writeFileSync(join(work, 'device.p7'), Buffer.from(enrollBody, 'base64'));
      const printed = await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'device.p7', '-print_certs', '-out', 'device.pem']);
      assert.equal(printed.code, 0);
      const verify = await sh('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', rootCa, '-untrusted', 'issuing.pem', 'device.pem']);
      assert.match(verify.stdout, /device.pem: OK/);
      const text = (await sh('openssl', ['x509', '-in', 'device.pem', '-noout', '-text'])).stdout;
      assert.match(text, /URI:spiffe:\/\/latchkey.internal\/device\/[0-9a-f-]{36}/);
      assert.match(text, /TLS Web Client Authentication/);

      // The same request again (its answer lost) gets the same certificate (issue 10 §4).
      const same = await sh('curl', ['-sf', '--cacert', rootCa, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.csr.b64', `${base}/.well-known/est/simpleenroll`]);
      assert.equal(same.stdout.replace(/\s/g, ''), enrollBody.replace(/\s/g, ''));
      // A second use of the one-use token, for another key, is refused with what to do.
      await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'other.key', '-subj', '/CN=other', '-outform', 'DER', '-out', 'other.csr']);
      writeFileSync(join(work, 'other.csr.b64'), readFileSync(join(work, 'other.csr')).toString('base64'));
      const again = await run('curl', ['-s', '-w', '\n%{http_code}', '--cacert', rootCa, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@other.csr.b64', `${base}/.well-known/est/simpleenroll`], { cwd: work });
      assert.match(again.stdout, /TOKEN_EXHAUSTED[\s\S]*\n403$/);

      // RFC 7030 §4.2.2: simplereenroll authenticated by the device certificate (curl --cert), fresh key.
      await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device2.key', '-subj', '/CN=laptop-e2e', '-outform', 'DER', '-out', 'device2.csr']);
      writeFileSync(join(work, 'device2.csr.b64'), readFileSync(join(work, 'device2.csr')).toString('base64'));
      const re = await sh('curl', ['-sf', '--cacert', rootCa, '--cert', 'device.pem', '--key', 'device.key', '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device2.csr.b64', `${base}/.well-known/est/simplereenroll`]);
      writeFileSync(join(work, 'device2.p7'), Buffer.from(re.stdout, 'base64'));
      await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'device2.p7', '-print_certs', '-out', 'device2.pem']);
      const s1 = (await sh('openssl', ['x509', '-in', 'device.pem', '-noout', '-serial'])).stdout;
      const s2 = (await sh('openssl', ['x509', '-in', 'device2.pem', '-noout', '-serial'])).stdout;
      assert.notEqual(s1, s2);
      // Without a client certificate the same request is refused.
      const noCert = await run('curl', ['-s', '-w', '\n%{http_code}', '--cacert', rootCa, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device2.csr.b64', `${base}/.well-known/est/simplereenroll`], { cwd: work });
      assert.match(noCert.stdout, /CLIENT_CERT_REQUIRED[\s\S]*\n401$/);

      // The admin revokes the device with the CLI.
      const list = await cli(['devices', 'list', '--data-dir', dataDir, '--json']);
      const deviceId = (JSON.parse(list.stdout) as { items: { id: string }[] }).items[0]!.id;
      const human = await cli(['devices', 'list', '--data-dir', dataDir]);
      assert.match(human.stdout, new RegExp(`^ID\\s+NAME\\s+STATUS[\\s\\S]*${deviceId}\\s+laptop-e2e\\s+active`, 'm'));
      const rv = await cli(['devices', 'revoke', deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
      assert.equal(rv.code, 0, rv.stderr);
      assert.match(rv.stdout, /revoked \(keyCompromise\); 2 certificate\(s\) revoked/);

      // openssl verify -crl_check_all with the served CRLs (issuing CA and root): revoked.
      await sh('curl', ['-sf', '--cacert', rootCa, '-o', 'issuing.crl.pem', `${base}/crl.pem`]);
      await sh('curl', ['-sf', '--cacert', rootCa, '-o', 'root.crl.pem', `${base}/crl/root.pem`]);
      for (const cert of ['device.pem', 'device2.pem']) {
        const v = await run('openssl', ['verify', '-crl_check_all', '-CAfile', rootCa, '-untrusted', 'issuing.pem', '-CRLfile', 'issuing.crl.pem', '-CRLfile', 'root.crl.pem', cert], { cwd: work });
        assert.notEqual(v.code, 0);
        assert.match(v.stdout + v.stderr, /error 23 at 0 depth lookup: certificate revoked/);
      }
      // …and OCSP at /ocsp says revoked, with the reason.
      const ocsp = await run('openssl', ['ocsp', '-issuer', 'issuing.pem', '-cert', 'device2.pem', '-url', `${base}/ocsp`, '-CAfile', 'chain.pem', '-resp_text'], { cwd: work });
      assert.match(ocsp.stdout + ocsp.stderr, /Response verify OK/);
      assert.match(ocsp.stdout, /device2.pem: revoked/);
      assert.match(ocsp.stdout, /Reason: keyCompromise/);

      // Renewal is refused from now on.
      const after = await run('curl', ['-s', '-w', '\n%{http_code}', '--cacert', rootCa, '--cert', 'device2.pem', '--key', 'device2.key', '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.csr.b64', `${base}/.well-known/est/simplereenroll`], { cwd: work });
      assert.match(after.stdout, /DEVICE_REVOKED[\s\S]*\n403$/);

      // The audit log has it all; SIGTERM shuts down cleanly.
      const audit = await cli(['audit', 'list', '--data-dir', dataDir, '--json']);
      const actions = (JSON.parse(audit.stdout) as { items: { action: string }[] }).items.map((e) => e.action);
      assert.deepEqual(actions, ['device.revoke', 'certificate.renew', 'certificate.enroll', 'token.create']);
      assert.equal(await server.stop('SIGTERM'), 0);
      assert.doesNotMatch(server.log(), /PRIVATE KEY|lk_enr_|lk_adm_/);
    });
  });
}

describe('latchkey-server command line', () => {
  test('a bad config gives one clear message and exit 2; an unknown command exits 2', async (t) => {
    const { dataDir } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    const good = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfg, JSON.stringify({ ...good, crlValiditySeconds: 5 }));
    const r = await cli(['start', '--data-dir', dataDir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^latchkey-server: invalid configuration \(.*config.json\): crlValiditySeconds: Expected integer to be greater or equal to 60 \(got 5\)\n$/);
    writeFileSync(cfg, '{ not json');
    assert.match((await cli(['start', '--data-dir', dataDir])).stderr, /config.json is not valid JSON/);
    writeFileSync(cfg, JSON.stringify(good));
    const wrongPass = await cli(['start', '--data-dir', dataDir], { env: { LATCHKEY_CA_PASSPHRASE: 'wrong' } });
    assert.equal(wrongPass.code, 2);
    assert.match(wrongPass.stderr, /cannot decrypt .*root.key.pem: wrong CA passphrase/);
    assert.equal((await cli(['frobnicate'])).code, 2);
    assert.equal((await cli(['init', '--data-dir', dataDir, '--org', 'X', '--url', 'https://x:1'])).code, 1);
    const missing = await cli(['init', '--data-dir', join(dataDir, 'other')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--org is required/);
  });
});

describe('latchkey-server data dir permissions', () => {
  const modeOf = (p: string): string => (statSync(p).mode & 0o777).toString(8);

  test('init makes the data dir 0700 and every key, token and the database 0600 even under umask 000; start refuses what others can read or write and names the chmod', { timeout: 120_000 }, async (t) => {
    const dataDir = join(tempDir(t), 'data');
    // An operator's `mkdir` with a careless umask: init still closes it.
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o777);
    const port = await freePort();
    // umask 000: every mode comes from the code, none from the environment.
    const init = await run('sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, SERVER_CLI, 'init', '--data-dir', dataDir, '--org', 'Example Corp', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(modeOf(dataDir), '700');
    for (const f of ['root.key.pem', 'issuing.key.pem', 'ocsp.key.pem', 'server.key.pem', 'ca-passphrase', 'admin-token', 'config.json', 'latchkey.db']) {
      assert.equal(modeOf(join(dataDir, f)), '600', f);
    }
    // The server under umask 000 too: the -wal and -shm it creates are private.
    const proc = spawn('sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, SERVER_CLI, 'start', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    t.after(() => proc.kill('SIGKILL'));
    let log = '';
    proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
    // Signal handlers are in place once it has printed how to enroll a first device.
    for (const deadline = Date.now() + 60_000; !/Enroll a first device/.test(log); ) {
      assert.ok(Date.now() < deadline && proc.exitCode === null, `latchkey-server did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(modeOf(join(dataDir, 'latchkey.db-wal')), '600');
    assert.equal(modeOf(join(dataDir, 'latchkey.db-shm')), '600');
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);

    const cases: [string, number, string][] = [
      [dataDir, 0o755, `chmod 700 ${dataDir}`],
      [join(dataDir, 'issuing.key.pem'), 0o640, `chmod 600 ${join(dataDir, 'issuing.key.pem')}`],
      [join(dataDir, 'server.key.pem'), 0o604, `chmod 600 ${join(dataDir, 'server.key.pem')}`],
      [join(dataDir, 'admin-token'), 0o620, `chmod 600 ${join(dataDir, 'admin-token')}`],
      [join(dataDir, 'latchkey.db'), 0o644, `chmod 600 ${join(dataDir, 'latchkey.db')}`],
    ];
    for (const [path, mode, fix] of cases) {
      chmodSync(path, mode);
      const r = await cli(['start', '--data-dir', dataDir]);
      assert.equal(r.code, 2, `${path} ${mode.toString(8)}: ${r.stderr}`);
      assert.match(r.stderr, /refusing to start: others can read or write/);
      assert.ok(r.stderr.includes(`${path} has mode 0${mode.toString(8)}; fix: ${fix}`), r.stderr);
      assert.doesNotMatch(r.stderr, /listening/);
      chmodSync(path, path === dataDir ? 0o700 : 0o600);
    }
    // Fixed as told: it starts again.
    const again = await startServer(t, dataDir, port);
    assert.match(again.log(), /listening on/);
  });
});

describe('latchkey-server command line output', () => {
  // Anything a terminal acts on instead of printing: ESC/CSI sequences, C1 controls, bidi overrides and isolates.
  const TERMINAL_CONTROL = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u;
  const withoutNewlines = (s: string): string => s.replace(/\n/g, '');

  test('device facts and names with ESC[2J, CSI (U+009B) and U+202E are shown visibly in devices list/show, audit list and gateway token list; --json stays exact', { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'curl')) return;
    const databaseUrl = await freshPgDatabase(t);
    if (!databaseUrl) return;
    const { dataDir, port } = await initServer(t, { databaseUrl });
    const server = await startServer(t, dataDir, port);
    const work = tempDir(t);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;

    // What the facts schema lets through today: C1 CSI and a right-to-left override.
    const facts = { hostname: 'evil\u202eexe.txt', os: { platform: 'linux', release: '6.1\u009b2J', version: 'Debian' }, arch: 'x64', hardwareId: 'hw-1', agentVersion: '0.1.0' };
    const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const csr = await createCsr({ subject: [{ type: 'CN', value: 'laptop-1' }], signer: nodeSigner(key), stringAttributes: [{ oid: FACTS_ATTRIBUTE_OID, value: JSON.stringify(facts) }] });
    writeFileSync(join(work, 'csr.b64'), csr.toString('base64'));
    const enrolled = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(dataDir, 'root.crt.pem'), '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@csr.b64', `${server.url}/.well-known/est/simpleenroll`], { cwd: work });
    assert.equal(enrolled.stdout, '200');

    // And what a record may hold from elsewhere (an older server, a restore): ESC[2J in a fact and in the name.
    const stored = { ...facts, os: { ...facts.os, version: 'Debian\x1b[2J\x1b]8;;https://evil.example\x07' } };
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      await db.query('UPDATE devices SET facts = $1, name = $2', [JSON.stringify(stored), 'laptop\x1b[2J\u202e1']);
    } finally {
      await db.end();
    }
    const gw = await cli(['gateway', 'token', 'create', '--name', 'edge\u202e1', '--data-dir', dataDir]);
    assert.equal(gw.code, 0, gw.stderr);

    const list = await cli(['devices', 'list', '--data-dir', dataDir, '--json']);
    const device = (JSON.parse(list.stdout) as { items: { id: string; name: string }[] }).items[0]!;
    assert.equal(device.name, 'laptop\x1b[2J\u202e1', '--json is exact');
    const shownJson = JSON.parse((await cli(['devices', 'show', device.id, '--data-dir', dataDir, '--json'])).stdout) as { facts: unknown };
    assert.deepEqual(shownJson.facts, stored, '--json is exact');

    const outputs = {
      'devices list': await cli(['devices', 'list', '--data-dir', dataDir]),
      'devices show': await cli(['devices', 'show', device.id, '--data-dir', dataDir]),
      'audit list': await cli(['audit', 'list', '--data-dir', dataDir]),
      'gateway token list': await cli(['gateway', 'token', 'list', '--data-dir', dataDir]),
      'devices approve (error naming the device)': await cli(['devices', 'approve', device.id, '--data-dir', dataDir]),
    };
    for (const [what, r] of Object.entries(outputs)) {
      assert.doesNotMatch(withoutNewlines(r.stdout + r.stderr), TERMINAL_CONTROL, `${what}: ${JSON.stringify(r.stdout + r.stderr)}`);
    }
    assert.match(outputs['devices list'].stdout, /laptop\\u\{1b\}\[2J\\u\{202e\}1/);
    const show = outputs['devices show'].stdout;
    assert.ok(show.includes('evil\\u{202e}exe.txt'), show);
    assert.ok(show.includes('6.1\\u{9b}2J'), show);
    // Inside the facts JSON, C0 controls already come out as JSON escapes.
    assert.ok(show.includes('Debian\\u001b[2J\\u001b]8;;https://evil.example\\u0007'), show);
    assert.ok(outputs['gateway token list'].stdout.includes('edge\\u{202e}1'), outputs['gateway token list'].stdout);
    assert.ok(outputs['audit list'].stdout.includes('edge\\u{202e}1'), outputs['audit list'].stdout);
  });
});

describe('latchkey-server with an imported enterprise CA', () => {
  test('init --import-ca CERT KEY --import-root ROOT: devices chain to the enterprise root; the root CRL is not ours to publish', { timeout: 60_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl')) return;
    const pki = tempDir(t);
    const sh = (args: string[]) => mustRun('openssl', args, { cwd: pki });
    writeFileSync(join(pki, 'ext.cnf'), '[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n[inter]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    await sh(['req', '-new', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-subj', '/O=Acme/CN=Acme Root', '-days', '3650', '-extensions', 'root', '-config', 'ext.cnf', '-out', 'root.pem']);
    await sh(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'inter.key', '-subj', '/O=Acme/CN=Acme Device Issuing CA', '-out', 'inter.csr']);
    await sh(['x509', '-req', '-in', 'inter.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '1000', '-extfile', 'ext.cnf', '-extensions', 'inter', '-out', 'inter.pem', '-set_serial', '42']);

    const dataDir = join(tempDir(t), 'data');
    const { freePort } = await import('./support/processes.js');
    const port = await freePort();
    const init = await cli(['init', '--data-dir', dataDir, '--org', 'Acme', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, '--import-ca', join(pki, 'inter.pem'), join(pki, 'inter.key'), '--import-root', join(pki, 'root.pem')]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /root key is not held here/);
    const wrong = await cli(['init', '--data-dir', join(dataDir, '..', 'bad'), '--org', 'Acme', '--url', `https://127.0.0.1:${port}`, '--import-ca', join(pki, 'inter.pem'), join(pki, 'root.key'), '--import-root', join(pki, 'root.pem')]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /private key does not belong/);

    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    await sh(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'dev.key', '-subj', '/CN=acme-laptop', '-outform', 'DER', '-out', 'dev.csr']);
    writeFileSync(join(pki, 'dev.csr.b64'), readFileSync(join(pki, 'dev.csr')).toString('base64'));
    const r = await mustRun('curl', ['-sf', '--cacert', join(pki, 'root.pem'), '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@dev.csr.b64', `${server.url}/.well-known/est/simpleenroll`], { cwd: pki });
    writeFileSync(join(pki, 'dev.p7'), Buffer.from(r.stdout, 'base64'));
    await sh(['pkcs7', '-inform', 'DER', '-in', 'dev.p7', '-print_certs', '-out', 'dev.pem']);
    const v = await sh(['verify', '-purpose', 'sslclient', '-CAfile', 'root.pem', '-untrusted', 'inter.pem', 'dev.pem']);
    assert.match(v.stdout, /dev.pem: OK/);
    const rootCrl = await run('curl', ['-s', '-w', '\n%{http_code}', '--cacert', join(pki, 'root.pem'), `${server.url}/crl/root`]);
    assert.match(rootCrl.stdout, /its key is not held by this server[\s\S]*\n404$/);
    const crl = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', join(pki, 'root.pem'), `${server.url}/crl`]);
    assert.equal(crl.stdout, '200');
  });
});
