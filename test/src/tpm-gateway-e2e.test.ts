/**
 * Issue 14's acceptance with real agents: "nginx with `--require-attested`
 * admits the attested device and refuses a software-key device of the same
 * organisation". A real server trusting swtpm_localca; a device enrolled with
 * `latchkey enroll --keystore pkcs11 --attest tpm` in a `--attestation tpm`
 * group (its key lives in the swtpm's tpm2-pkcs11 token, so an app reaches the
 * gateway through the agent's own forwarder, `latchkey connect`), and a
 * file-keystore device of the same server in a group with attestation none.
 * Real nginx, written by `gateway config nginx --require-attested`, in front
 * of an app that echoes its headers: the attested device gets 200 with its
 * device id; the software device gets 403 "not TPM-attested" and nothing
 * reaches the app; after `devices revoke` and `gateway sync` (new CRL, nginx
 * reloaded) the attested device is refused too.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { swtpmTokenWithEkCert } from '../../agent/test-support/dist/tpm-fixtures.js';
import { daemon, echoUpstream, startNginx, until, type Daemon } from './support/gateways.js';
import { AGENT_CLI, cli, freePort, initServer, requireTools, run, skipOrRequire, startServer, tempDir } from './support/processes.js';
import { ekRootsDir, tpmAgentEnv, tpmEnrollArgs } from './support/tpm.js';

interface Answer {
  status: number;
  body: string;
}

/** One HTTP request (own connection) to the app through a `latchkey connect` listener on 127.0.0.1:port. */
function get(port: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/hello', agent: false, headers: { connection: 'close' }, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end();
  });
}

test('issue 14: nginx --require-attested admits the swtpm-attested agent (latchkey connect), refuses a software-key agent of the same org with 403, and refuses the attested one once revoked', { timeout: 400_000 }, async (t) => {
  if (!requireTools(t, 'nginx')) return;
  const tpm = await swtpmTokenWithEkCert(t, 'latchkey-tpm');
  if (typeof tpm === 'string') return skipOrRequire(t, `missing ${tpm}`);

  const { dataDir, port, fingerprint } = await initServer(t, { config: { attestation: { ekRootsDir: ekRootsDir(t, [tpm]) } } });
  const server = await startServer(t, dataDir, port);
  const d = ['--data-dir', dataDir];
  for (const [group, attestation] of [['secure', 'tpm'], ['plain', 'none']] as const) {
    const set = await cli(['groups', 'set', group, '--lifetime', '1h', '--attestation', attestation, ...d]);
    assert.equal(set.code, 0, set.stderr);
  }
  const token = async (group: string): Promise<string> => {
    const r = await cli(['token', 'create', '--group', group, '--json', ...d]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { token: string }).token;
  };
  const work = tempDir(t, 'latchkey-tpm-gw-');

  // The two agents: one attested in the TPM, one with a key in a file.
  const devices = {
    attested: { stateDir: join(work, 'agent-tpm'), env: tpmAgentEnv(tpm), args: tpmEnrollArgs(tpm), group: 'secure' },
    software: { stateDir: join(work, 'agent-sw'), env: { ...process.env }, args: ['--keystore', 'file'], group: 'plain' },
  };
  const ids: Record<keyof typeof devices, string> = { attested: '', software: '' };
  for (const [name, dev] of Object.entries(devices) as [keyof typeof devices, (typeof devices)[keyof typeof devices]][]) {
    const e = await run(process.execPath, [AGENT_CLI, '--state-dir', dev.stateDir, 'enroll', '--server', server.url, '--token', await token(dev.group), '--ca-fingerprint', fingerprint, ...dev.args], { env: dev.env });
    assert.equal(e.code, 0, `${name}: ${e.stderr}`);
    const st = await run(process.execPath, [AGENT_CLI, '--state-dir', dev.stateDir, 'status', '--json'], { env: dev.env });
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as { deviceId: string; attestation?: string };
    assert.equal(s.attestation, name === 'attested' ? 'tpm' : undefined, name);
    ids[name] = s.deviceId;
  }
  const shown = JSON.parse((await cli(['devices', 'show', ids.software, '--json', ...d])).stdout) as { assurance?: string };
  assert.notEqual(shown.assurance, 'tpm-attested', 'the software device is of the same server and org, not attested');

  // The gateway: `gateway config nginx --require-attested` in front of the echo app.
  const upstream = await echoUpstream(t);
  const gw = join(work, 'gw');
  const gwPort = await freePort();
  const gc = await cli(['gateway', 'config', 'nginx', '--listen', `127.0.0.1:${gwPort}`, '--upstream', `http://127.0.0.1:${upstream.port}`, '--out', gw, '--require-attested', ...d]);
  assert.equal(gc.code, 0, gc.stderr);
  const nginx = await startNginx(t, gw, gwPort);
  const nginxLog = (): string => `--- nginx:\n${nginx.log()}${existsSync(nginx.errorLog) ? readFileSync(nginx.errorLog, 'utf8').slice(-3000) : ''}`;

  // Each agent's own forwarder (`latchkey connect`): the app talks plain HTTP to it, it does the mTLS.
  const forwarders = {} as Record<keyof typeof devices, { port: number; fwd: Daemon }>;
  for (const [name, dev] of Object.entries(devices) as [keyof typeof devices, (typeof devices)[keyof typeof devices]][]) {
    const fwd = daemon(t, process.execPath, [AGENT_CLI, '--state-dir', dev.stateDir, 'connect', '--to', `127.0.0.1:${gwPort}`], dev.env);
    const local = await until(`the ${name} forwarder to listen`, async () => {
      if (fwd.proc.exitCode !== null) assert.fail(`${name} forwarder exited:\n${fwd.log()}`);
      const m = /forwarding 127\.0\.0\.1:(\d+) → 127\.0\.0\.1:\d+/.exec(fwd.log());
      return m ? Number(m[1]) : undefined;
    }, 60_000);
    forwarders[name] = { port: local, fwd };
  }
  const logs = (): string => `--- attested connect:\n${forwarders.attested.fwd.log()}\n--- software connect:\n${forwarders.software.fwd.log()}\n${nginxLog()}`;

  await t.test('the attested swtpm device reaches the app through `latchkey connect`: 200, its device id upstream', async () => {
    for (let i = 0; i < 2; i++) {
      const before = upstream.seen.length;
      const a = await get(forwarders.attested.port);
      assert.equal(a.status, 200, `${a.body}\n${logs()}`);
      assert.equal((JSON.parse(a.body) as Record<string, string>)['x-latchkey-device-id'], ids.attested);
      assert.equal(upstream.seen.length, before + 1);
    }
  });

  await t.test('the software-key device of the same org is refused: 403 "not TPM-attested", nothing reaches the app', async () => {
    const before = upstream.seen.length;
    const a = await get(forwarders.software.port);
    assert.equal(a.status, 403, `${a.body}\n${logs()}`);
    assert.match(a.body, /^This device is not TPM-attested, and this gateway admits only TPM-attested devices/);
    assert.equal(upstream.seen.length, before, 'nothing reached the app');
    const id = JSON.parse(readFileSync(join(devices.software.stateDir, 'identity.json'), 'utf8')) as { keystore: { kind: string } };
    assert.equal(id.keystore.kind, 'file', 'a software key');
  });

  await t.test('after `devices revoke` and `gateway sync` (new CRL, nginx reloaded) the attested device is refused too', async () => {
    const rv = await cli(['devices', 'revoke', ids.attested, '--reason', 'keyCompromise', ...d]);
    assert.equal(rv.code, 0, rv.stderr);
    const gt = await cli(['gateway', 'token', 'create', '--name', 'tpm-gw', '--json', ...d]);
    assert.equal(gt.code, 0, gt.stderr);
    const sync = await cli(['gateway', 'sync', '--once', '--server', server.url, '--token', (JSON.parse(gt.stdout) as { token: string }).token, '--ca-file', join(gw, 'ca.pem'), '--crl-file', join(gw, 'crl.pem'), '--reload', nginx.reload]);
    assert.equal(sync.code, 0, sync.stderr);
    // After `nginx -s reload` an old worker (old CRL) may still take a connection until it exits: wait for
    // three refusals in a row, then every request is refused. nginx answers a revoked certificate with 400.
    let inARow = 0;
    await until('nginx to refuse the revoked attested device', async () => {
      const a = await get(forwarders.attested.port);
      inARow = a.status === 400 ? inARow + 1 : 0;
      return inARow >= 3 ? true : undefined;
    }, 60_000);
    const before = upstream.seen.length;
    for (let i = 0; i < 3; i++) {
      const a = await get(forwarders.attested.port);
      assert.equal(a.status, 400, `${a.body}\n${logs()}`);
      assert.match(a.body, /The SSL certificate error/);
    }
    assert.equal(upstream.seen.length, before, 'nothing reached the app');
    assert.match(readFileSync(nginx.errorLog, 'utf8'), /certificate revoked/);
    // The software device is still refused for what it is, not for a revocation.
    assert.equal((await get(forwarders.software.port)).status, 403);
  });
});
