/**
 * Issue 14, relying parties: real nginx and real HAProxy configured by
 * `latchkey-server gateway config … --require-attested --out DIR` admit a
 * TPM-attested device's certificate (subject OU=Latchkey TPM-attested device
 * right after O) and refuse, with 403 and why, a software-key device of the
 * same organisation, and certificates made directly by the same CA whose CN
 * pretends to hold the OU, whose OU sits elsewhere or says something else.
 * The org holds RFC 2253 specials and UTF-8, which OpenSSL escapes in the DN
 * the gateways match.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { TPM_ATTESTED_OU } from '@latchkey/protocol';
import { issueDevice, issueRawSubject, type IssuedDevice } from './support/data-dir-ca.js';
import { daemon, echoUpstream, listening, startHaproxy, startNginx, until } from './support/gateways.js';
import { echoService } from './support/tcp.js';
import { cli, freePort, initServer, mustRun, requireTools, run, startServer, tempDir } from './support/processes.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const ORG = 'Ünïcørn, "R&D" + Co; <Lab> #2';

type Ctx = Parameters<typeof requireTools>[0];

/** A running server whose org is ORG, and certificates from its CA: attested, software, and the CA's own would-be fakes. */
async function world(t: Ctx): Promise<{ dataDir: string; work: string; certs: Record<string, IssuedDevice> }> {
  const { dataDir, port } = await initServer(t, { config: { org: ORG } });
  await startServer(t, dataDir, port);
  const work = tempDir(t, 'latchkey-gw-att-');

  const certs: Record<string, IssuedDevice> = {
    attested: await issueDevice(dataDir, { name: 'laptop-tpm', attested: true }),
    attestedUser: await issueDevice(dataDir, { name: 'alice-tpm', email: 'alice@corp.example', attested: true }),
    software: await issueDevice(dataDir, { name: 'laptop-sw' }),
    softwareUser: await issueDevice(dataDir, { name: 'bob-sw', email: 'bob@corp.example' }),
    cnPoser: await issueDevice(dataDir, { name: `x,OU=${TPM_ATTESTED_OU}` }),
    ouAfterCn: await issueRawSubject(dataDir, (id) => [{ type: 'O', value: ORG }, { type: 'CN', value: 'x' }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'UID', value: id }]),
    ouOtherValue: await issueRawSubject(dataDir, (id) => [{ type: 'O', value: ORG }, { type: 'OU', value: `${TPM_ATTESTED_OU} (not)` }, { type: 'CN', value: 'x' }, { type: 'UID', value: id }]),
    otherOrg: await issueRawSubject(dataDir, (id) => [{ type: 'O', value: 'Other Corp' }, { type: 'OU', value: TPM_ATTESTED_OU }, { type: 'CN', value: 'x' }, { type: 'UID', value: id }]),
  };
  for (const [f, d] of Object.entries(certs)) {
    writeFileSync(join(work, `${f}.pem`), d.certPem);
    writeFileSync(join(work, `${f}.key`), d.keyPem);
  }
  const subject = async (f: string): Promise<string> => (await mustRun('openssl', ['x509', '-in', `${f}.pem`, '-noout', '-subject', '-nameopt', 'RFC2253'], { cwd: work })).stdout.trim();
  const org2253 = 'O=\\C3\\9Cn\\C3\\AFc\\C3\\B8rn\\, \\"R&D\\" \\+ Co\\; \\<Lab\\> #2';
  assert.equal(await subject('attested'), `subject=UID=${certs.attested!.id},CN=laptop-tpm,OU=${TPM_ATTESTED_OU},${org2253}`);
  assert.equal(await subject('software'), `subject=UID=${certs.software!.id},CN=laptop-sw,${org2253}`);
  assert.equal(await subject('cnPoser'), `subject=UID=${certs.cnPoser!.id},CN=x\\,OU=${TPM_ATTESTED_OU},${org2253}`);
  return { dataDir, work, certs };
}

/** The certificates no --require-attested gateway may let through. */
const REFUSED = ['software', 'softwareUser', 'cnPoser', 'ouAfterCn', 'ouOtherValue', 'otherOrg'];

describe('issue 14: gateway config --require-attested (real nginx and HAProxy on 127.0.0.1)', () => {
  test('nginx and HAProxy admit a TPM-attested device and refuse with 403 "not TPM-attested" a software device of the same org, a CN posing as the OU, an OU elsewhere or with another value', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl', 'nginx', 'haproxy')) return;
    const { dataDir, work, certs } = await world(t);
    const upstream = await echoUpstream(t);

    const curl = async (gwPort: number, as: string): Promise<{ status: string; body: string; type: string }> => {
      const r = await run('curl', ['-s', '-S', '--max-time', '10', '-w', '\n%{content_type}\n%{http_code}', '--cacert', join(dataDir, 'root.crt.pem'), '--cert', `${as}.pem`, '--key', `${as}.key`, `https://127.0.0.1:${gwPort}/hello`], { cwd: work });
      const [status, type, ...body] = r.stdout.split('\n').reverse();
      return { status: status ?? '', type: type ?? '', body: body.reverse().join('\n') };
    };

    for (const kind of ['nginx', 'haproxy'] as const) {
      const gwPort = await freePort();
      const dir = join(work, `gw-${kind}`);
      const r = await cli(['gateway', 'config', kind, '--listen', `127.0.0.1:${gwPort}`, '--upstream', `http://127.0.0.1:${upstream.port}`, '--out', dir, '--data-dir', dataDir, '--require-attested']);
      assert.equal(r.code, 0, r.stderr);
      if (kind === 'nginx') await startNginx(t, dir, gwPort);
      else await startHaproxy(t, dir, gwPort);
      for (const as of ['attested', 'attestedUser'] as const) {
        const before = upstream.seen.length;
        const a = await curl(gwPort, as);
        assert.equal(a.status, '200', `${kind}, ${as}: ${a.body}`);
        assert.equal((JSON.parse(a.body) as Record<string, string>)['x-latchkey-device-id'], certs[as]!.id, `${kind}, ${as}`);
        assert.equal(upstream.seen.length, before + 1);
      }
      for (const as of REFUSED) {
        const before = upstream.seen.length;
        const a = await curl(gwPort, as);
        assert.equal(a.status, '403', `${kind}, ${as}: ${a.body}`);
        assert.match(a.body, /^This device is not TPM-attested, and this gateway admits only TPM-attested devices/, `${kind}, ${as}`);
        assert.match(a.type, /^text\/plain/, `${kind}, ${as}`);
        assert.equal(upstream.seen.length, before, `${kind}, ${as}: nothing reached the app`);
      }
    }
  });

  test('TCP (nginx stream, HAProxy mode tcp): an attested device reaches the service; every other certificate of the same CA gets no byte through', { timeout: 180_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'nginx', 'haproxy')) return;
    if (!existsSync(STREAM_MODULE)) {
      const msg = `missing nginx's stream module ${STREAM_MODULE} (apt-get install libnginx-mod-stream)`;
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
      return t.skip(msg);
    }
    const { dataDir, work, certs } = await world(t);
    const rootPem = readFileSync(join(dataDir, 'root.crt.pem'), 'utf8');
    const servicePort = await echoService(t);
    for (const kind of ['nginx', 'haproxy'] as const) {
      const gwPort = await freePort();
      const dir = join(work, `gw-tcp-${kind}`);
      const r = await cli(['gateway', 'config', kind, '--listen', `127.0.0.1:${gwPort}`, '--name', 'localhost', '--upstream', `tcp://127.0.0.1:${servicePort}`, '--out', dir, '--data-dir', dataDir, '--require-attested']);
      assert.equal(r.code, 0, r.stderr);
      const g = kind === 'nginx'
        ? daemon(t, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;`])
        : daemon(t, 'haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db']);
      await until(`${kind} to listen`, async () => {
        if (g.proc.exitCode !== null) assert.fail(`${kind} exited:\n${g.log()}`);
        return (await listening(gwPort)) || undefined;
      });
      for (const as of ['attested', 'attestedUser']) assert.equal(await oneLine(gwPort, rootPem, certs[as]!), 'echo: ping', `${kind}, ${as}`);
      for (const as of REFUSED) assert.equal(await oneLine(gwPort, rootPem, certs[as]!), 'refused', `${kind}, ${as}`);
    }
  });
});

/** One line through a TCP gateway as a device: the echo, or 'refused' (closed without one). The client verifies the gateway. */
function oneLine(port: number, rootPem: string, d: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: rootPem, cert: d.certPem, key: d.keyPem });
    let got = '';
    s.on('secureConnect', () => s.write('ping\n'));
    s.on('data', (b: Buffer) => {
      got += b.toString();
      if (got.includes('\n')) s.end();
    });
    s.on('error', () => resolve(got.trim() || 'refused'));
    s.on('close', () => resolve(got.trim() || 'refused'));
    setTimeout(() => (s.destroy(), resolve(got.trim() || 'refused')), 10_000);
  });
}
