/**
 * `latchkey connect` through real nginx `stream` with `ssl_verify_client on`
 * as `gateway config nginx --upstream tcp://…` writes it (the README's way) in front of a TCP
 * echo service: bytes go through with the device certificate; a renewal is
 * picked up by new connections without dropping the listener or an open
 * connection; after `devices revoke` + `gateway sync` nginx refuses the
 * device and the forwarder says why. Also `--stdio` (an SSH ProxyCommand).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { swtpmToken } from '../../agent/test-support/dist/pkcs11-fixtures.js';
import { daemon, sleep } from './support/gateways.js';
import { echoService, lineClient, tryOnce } from './support/tcp.js';
import { AGENT_CLI, cli, freePort, initServer, requireTools, run, startServer, tempDir } from './support/processes.js';

type Ctx = Parameters<typeof requireTools>[0];
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms: number, log: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    assert.ok(Date.now() < end, `timed out after ${ms} ms waiting for ${what}\n${log()}`);
    await sleep(50);
  }
}

interface Target {
  args: string[];
  env: NodeJS.ProcessEnv;
}

const TARGETS: Record<string, (t: Ctx) => Promise<Target | string>> = {
  file: async () => ({ args: ['--keystore', 'file'], env: {} }),
  // The hard case: OpenSSL's pkcs11 engine never sees a key made after its first load in a process.
  'pkcs11 (software TPM)': async (t) => {
    const tok = await swtpmToken(t);
    return typeof tok === 'string' ? tok : { args: ['--keystore', 'pkcs11', '--pkcs11-module', tok.module, '--pkcs11-token', tok.tokenLabel], env: { ...tok.env, LATCHKEY_PKCS11_PIN: tok.pin } };
  },
};

describe('latchkey connect (local TCP → mTLS) through real nginx stream', () => {
  for (const [label, make] of Object.entries(TARGETS)) test(`${label}: forwards with the device certificate; picks up a renewal without dropping the listener or an open connection; refused after revoke; --stdio`, { timeout: 120_000 }, async (t) => {
    if (!requireTools(t, 'nginx')) return;
    const target = await make(t);
    if (typeof target === 'string') {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`${label}: ${target} (required because LATCHKEY_REQUIRE_ALL=1)`);
      t.skip(`${label}: ${target}`);
      return;
    }
    const env = { ...process.env, ...target.env };
    if (!existsSync(STREAM_MODULE)) {
      const msg = `missing nginx's stream module ${STREAM_MODULE} (apt-get install libnginx-mod-stream)`;
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
      t.skip(msg);
      return;
    }
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const work = tempDir(t, 'latchkey-connect-');
    const stateDir = join(work, 'agent');
    const agent = (args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env });
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const e = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, ...target.args]);
    assert.equal(e.code, 0, e.stderr);
    const st = JSON.parse((await agent(['status', '--json'])).stdout) as { deviceId: string; serial: string };

    // The gateway: nginx stream, written by `gateway config nginx --upstream tcp://…` and run as the README shows.
    const gw = join(work, 'gw');
    const gwPort = await freePort();
    const echoPort = await echoService(t);
    const gc = await cli(['gateway', 'config', 'nginx', '--listen', `127.0.0.1:${gwPort}`, '--upstream', `tcp://127.0.0.1:${echoPort}`, '--out', gw, '--data-dir', dataDir]);
    assert.equal(gc.code, 0, gc.stderr);
    const conf = join(gw, 'nginx.conf');
    assert.match(readFileSync(conf, 'utf8'), new RegExp(`^load_module ${STREAM_MODULE};$`, 'm'));
    const global = `pid ${gw}/nginx.pid; error_log ${gw}/error.log info;`;
    const nginx = daemon(t, 'nginx', ['-p', gw, '-c', conf, '-g', `daemon off; ${global}`]);
    await until('nginx to listen', () => new Promise<true | undefined>((r) => {
      if (nginx.proc.exitCode !== null) assert.fail(`nginx exited:\n${nginx.log()}`);
      const s = connect(gwPort, '127.0.0.1');
      s.on('connect', () => (s.destroy(), r(true)));
      s.on('error', () => r(undefined));
    }), 15_000, nginx.log);

    // The forwarder, on a port it picks and prints.
    const fwd = daemon(t, process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'connect', '--to', `127.0.0.1:${gwPort}`], env);
    const logs = () => `--- connect:\n${fwd.log()}\n--- nginx:\n${nginx.log()}${existsSync(join(gw, 'error.log')) ? readFileSync(join(gw, 'error.log'), 'utf8').slice(-3000) : ''}`;
    const local = Number(await until('the forwarder to listen', () => /forwarding 127\.0\.0\.1:(\d+) → 127\.0\.0\.1:\d+/.exec(fwd.log())?.[1], 15_000, logs));

    const c1 = await lineClient(local);
    assert.equal(await c1.ask('hello'), 'echo: hello');
    assert.equal(await c1.ask('again'), 'echo: again');
    // The access log's serial=, verify=, device= and user= of each session (nginx writes '-' for the readiness
    // probe's plain TCP connect; the device has no user, so user= is empty).
    const served = (): string[] =>
      (existsSync(join(gw, 'access.log')) ? readFileSync(join(gw, 'access.log'), 'utf8').trim().split('\n') : [])
        .map((l) => / device=(\S*) user=(\S*) serial=(\S*) verify=(\S*)$/.exec(l))
        .filter((m): m is RegExpExecArray => !!m && m[3] !== '-')
        .map((m) => `${m[3]} ${m[4]} ${m[1]} user=${m[2]}`);

    // Renewal: the open connection stays up; the next connection presents the new certificate.
    const rn = await agent(['renew', '--force', '--json']);
    assert.equal(rn.code, 0, rn.stderr);
    const renewed = (JSON.parse(rn.stdout) as { serial: string }).serial;
    assert.notEqual(renewed, st.serial);
    assert.equal(await c1.ask('still here'), 'echo: still here', 'the connection opened before the renewal is not dropped');
    assert.equal(await tryOnce(local), 'echo: ping');
    c1.sock.end();
    await c1.closed;
    // nginx logs a stream session when it ends: $ssl_client_serial is upper-case hex.
    const sessions = await until('both sessions in the access log', () => (served().length >= 2 ? served() : undefined), 5000, logs);
    // Two sessions: the one opened before the renewal (old certificate, still up across it) and the new
    // one (renewed certificate). nginx logs each when it ends, in whichever order they close.
    assert.deepEqual(sessions.map((l) => l.split(' ')).sort(), [[renewed.toUpperCase(), 'SUCCESS', st.deviceId, 'user='], [st.serial.toUpperCase(), 'SUCCESS', st.deviceId, 'user=']].sort());
    // In process or in a fresh token worker (pkcs11), the forwarder says which certificate it presents now.
    await until('the forwarder to announce the renewed certificate', () => (new RegExp(`now presenting the renewed certificate ${renewed}`).test(fwd.log()) ? true : undefined), 5000, logs);

    // --stdio: one connection over stdin/stdout (ssh -o ProxyCommand='latchkey connect --to gw:port --stdio').
    // stdin stays open until the answer is back, as with ssh (nginx stream closes both ways on the client's FIN).
    const px = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'connect', '--to', `127.0.0.1:${gwPort}`, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let pxOut = '';
    let pxErr = '';
    px.stdout.on('data', (d: Buffer) => (pxOut += d.toString()));
    px.stderr.on('data', (d: Buffer) => (pxErr += d.toString()));
    const pxExit = new Promise<number | null>((r) => px.on('exit', (c) => r(c)));
    px.stdin.write('over stdio\n');
    await until('the answer over stdio', () => (pxOut.includes('\n') ? true : undefined), 10_000, () => pxErr);
    px.stdin.end();
    assert.equal(await pxExit, 0, pxErr);
    assert.equal(pxOut, 'echo: over stdio\n');

    // Revoked: the admin revokes, gateway sync reloads nginx with the new CRL; nginx refuses the device.
    const rv = await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    const gt = JSON.parse((await cli(['gateway', 'token', 'create', '--name', 'stream', '--data-dir', dataDir, '--json'])).stdout) as { token: string };
    const sync = await cli(['gateway', 'sync', '--once', '--server', server.url, '--token', gt.token, '--ca-file', join(gw, 'ca.pem'), '--crl-file', join(gw, 'crl.pem'), '--reload', `nginx -p ${gw} -c ${conf} -g '${global}' -s reload`]);
    assert.equal(sync.code, 0, sync.stderr);
    // After `nginx -s reload` an old worker (with the old CRL) may still accept connections until it
    // exits: wait for three refusals in a row, then every connection is refused.
    let inARow = 0;
    await until('nginx to refuse the revoked device', async () => ((inARow = (await tryOnce(local)) === 'closed' ? inARow + 1 : 0) >= 3 ? true : undefined), 15_000, logs);
    for (let i = 0; i < 5; i++) assert.equal(await tryOnce(local), 'closed', 'refused from then on');
    assert.match(readFileSync(join(gw, 'error.log'), 'utf8'), /certificate revoked/);
    await until('the forwarder to say why', () => (/failed: the gateway (refused|closed the connection before sending anything)/.test(fwd.log()) ? true : undefined), 5000, logs);
    // The listener itself is still up (the device may be enrolled again).
    assert.equal(fwd.proc.exitCode, null);

    if (label !== 'file') return;
    // Usage errors: exit 2 with a reason.
    const bad = await agent(['connect', '--to', 'no-port']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--to must be HOST:PORT/);
    const remote = await agent(['connect', '--to', `127.0.0.1:${gwPort}`, '--listen', '0.0.0.0:0']);
    assert.equal(remote.code, 2);
    assert.match(remote.stderr, /not a loopback address/);
  });
});
