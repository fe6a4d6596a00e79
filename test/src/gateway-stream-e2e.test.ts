/**
 * The README's TCP gateway, followed literally: `gateway config nginx|haproxy
 * --upstream tcp://HOST:PORT --out DIR` outside the repository, nginx started
 * with `-p DIR -c DIR/nginx.conf` (the module loaded by the generated file,
 * every path absolute) or `haproxy -f DIR/haproxy.cfg`, and `latchkey connect
 * --to GATEWAY:PORT` reaching the TCP service behind it as the enrolled
 * device. A client without a device certificate gets nothing through. The
 * access log names each device and, for one bound to a user, the user.
 * (Renewal, revocation and --stdio through nginx stream: connect-e2e.test.ts.)
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { daemon, listening, until } from './support/gateways.js';
import { AGENT_CLI, cli, freePort, initServer, requireTools, run, startServer, tempDir } from './support/processes.js';
import { issueDevice } from './support/data-dir-ca.js';
import { echoService, lineClient } from './support/tcp.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * What a TLS client without a certificate gets from the gateway: 'refused' (handshake alert or close) or the echo.
 * The client verifies the gateway (our root, its name), so a refusal is the gateway's, never a failed check of ours.
 */
function withoutCertificate(port: number, rootPem: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: rootPem });
    let got = '';
    s.on('secureConnect', () => s.write('ping\n'));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(s.authorized || !/CERT|SIGNATURE|ISSUER|SELF_SIGNED|ALTNAME/.test(e.code ?? '') ? 'refused' : `gateway not verified: ${e.code}`));
    s.on('close', () => resolve(got.includes('echo:') ? got.trim() : 'refused'));
    setTimeout(() => (s.destroy(), resolve(got ? got.trim() : 'refused')), 5000);
  });
}

/** One line through the gateway as a device (its certificate and key): the echo, or 'refused'. */
function withCertificate(port: number, rootPem: string, d: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: rootPem, cert: d.certPem, key: d.keyPem });
    let got = '';
    s.on('secureConnect', () => s.write('ping\n'));
    s.on('data', (b: Buffer) => {
      got += b.toString();
      if (got.includes('\n')) s.end();
    });
    s.on('error', () => resolve('refused'));
    s.on('close', () => resolve(got.trim() || 'refused'));
  });
}

const GATEWAYS = {
  nginx: (dir: string) => ['nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;`]] as const,
  haproxy: (dir: string) => ['haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db']] as const,
};

describe('README: a TCP gateway for latchkey connect, written by gateway config --upstream tcp://', () => {
  for (const [kind, start] of Object.entries(GATEWAYS)) {
    test(`${kind}: gateway config --upstream tcp://… --out DIR, started as the README shows, carries latchkey connect to the service; no certificate, no bytes; the access log names the device and its user`, { timeout: 90_000 }, async (t) => {
      if (!requireTools(t, kind)) return;
      if (kind === 'nginx' && !existsSync(STREAM_MODULE)) {
        const msg = `missing nginx's stream module ${STREAM_MODULE} (apt-get install libnginx-mod-stream)`;
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
        return t.skip(msg);
      }
      const { dataDir, port, fingerprint } = await initServer(t);
      const server = await startServer(t, dataDir, port);
      const demo = tempDir(t, 'latchkey-demo-');
      const stateDir = join(demo, 'agent');
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
      const e = await run(process.execPath, [AGENT_CLI, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file', '--state-dir', stateDir]);
      assert.equal(e.code, 0, e.stderr);

      const gw = join(demo, `gw-${kind}`);
      const gwPort = await freePort();
      const servicePort = await echoService(t);
      const gc = await cli(['gateway', 'config', kind, '--listen', `127.0.0.1:${gwPort}`, '--name', 'localhost', '--upstream', `tcp://127.0.0.1:${servicePort}`, '--out', gw, '--data-dir', dataDir]);
      assert.equal(gc.code, 0, gc.stderr);
      const [cmd, args] = start(gw);
      const g = daemon(t, cmd, [...args]);
      await until(`${kind} to listen`, async () => {
        if (g.proc.exitCode !== null) assert.fail(`${kind} exited:\n${g.log()}`);
        return (await listening(gwPort)) || undefined;
      });

      const fwd = daemon(t, process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'connect', '--to', `localhost:${gwPort}`]);
      const local = Number(await until('the forwarder to listen', async () => /forwarding 127\.0\.0\.1:(\d+) → /.exec(fwd.log())?.[1]));
      const c = await lineClient(local);
      assert.equal(await c.ask('hello through the gateway'), 'echo: hello through the gateway', fwd.log());
      c.sock.destroy();

      assert.equal(await withoutCertificate(gwPort, readFileSync(join(dataDir, 'root.crt.pem'), 'utf8')), 'refused');

      // Issue 12: the access log names the device and its user (a device bound to one; the agent's is not).
      const alice = await issueDevice(dataDir, { name: 'alice-laptop', email: 'alice@corp.example' });
      assert.equal(await withCertificate(gwPort, readFileSync(join(dataDir, 'root.crt.pem'), 'utf8'), alice), 'echo: ping');
      const agentId = (JSON.parse((await cli(['devices', 'list', '--json', '--data-dir', dataDir])).stdout) as { items: { id: string }[] }).items[0]!.id;
      const log = (): string => (kind === 'nginx' ? (existsSync(join(gw, 'access.log')) ? readFileSync(join(gw, 'access.log'), 'utf8') : '') : g.log());
      await until(`${kind}'s access log`, async () => (log().includes(`device=${alice.id}`) ? true : undefined), 10_000);
      assert.match(log(), new RegExp(`device=${alice.id} user=alice@corp\\.example serial=`));
      assert.match(log(), new RegExp(`device=${agentId} user=${kind === 'nginx' ? '' : '-'} serial=`));
    });
  }
});
