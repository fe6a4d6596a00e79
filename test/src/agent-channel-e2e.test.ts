/**
 * The control channel between a real `latchkey run` and a real
 * `latchkey-server`: the agent connects with its device certificate, the
 * admin API lists it as online, `devices renew-now` and a group policy change
 * reach it and it renews, and `devices revoke` reaches it at once —
 * the agent deletes its key and certificate, reports revoked and exits 3.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startControlChannel } from '../../agent/dist/channel/control-channel.js';
import { collectFacts } from '../../agent/dist/facts.js';
import WebSocket from 'ws';
import { AGENT_CLI, cli, mustRun, requireTools, initServer, run, startServer, tempDir } from './support/processes.js';

describe('agent control channel (wss /v1/agent) against a real server', () => {
  test('online in the admin API; renew-now renews at once; a shorter group lifetime is pushed and renews at once; revoked → told at once, key and certificate deleted, exit 3', { timeout: 90_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const agent = (args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args]);
    assert.equal((await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'])).code, 0);
    const st = JSON.parse((await agent(['status', '--json'])).stdout) as { deviceId: string; serial: string };

    const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    d.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => d.on('exit', (c) => r(c)));
    t.after(() => {
      if (d.exitCode === null) d.kill('SIGKILL');
    });
    const until = async (what: string, f: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> => {
      const end = Date.now() + ms;
      while (!(await f())) {
        assert.ok(Date.now() < end, `timed out waiting for ${what}:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until('the control channel', () => /control channel connected/.test(log));
    const online = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: { deviceId: string; since: string; serial: string; agentVersion: string }[] };
    assert.equal(online.items.length, 1);
    assert.equal(online.items[0]!.deviceId, st.deviceId);
    assert.equal(online.items[0]!.serial, st.serial);
    assert.match(online.items[0]!.agentVersion, /^\d+\.\d+\.\d+$/);
    // `latchkey status` shows the daemon's channel.
    await until('status to show the channel', async () => {
      const cc = (JSON.parse((await agent(['status', '--json'])).stdout) as { controlChannel?: { state: string; pid: number } }).controlChannel;
      return cc?.state === 'connected' && cc.pid === d.pid;
    });
    assert.match((await agent(['status'])).stdout, new RegExp(`control channel connected since \\S+ \\(latchkey run, pid ${d.pid}\\)`));
    // The inventory says so too.
    const shown = JSON.parse((await cli(['devices', 'show', st.deviceId, '--json', '--data-dir', dataDir])).stdout) as { online?: boolean };
    assert.equal(shown.online, true);
    assert.match((await cli(['devices', 'list', '--data-dir', dataDir])).stdout, new RegExp(`${st.deviceId}.*\\byes\\b`));

    // renew-now: the agent renews at once and reconnects with the new certificate.
    assert.equal((await cli(['devices', 'renew-now', st.deviceId, '--data-dir', dataDir])).code, 0);
    await until('the pushed renewal', () => /the server asks for a renewal now/.test(log) && /renewed the certificate/.test(log));
    const renewed = JSON.parse((await agent(['status', '--json'])).stdout) as { serial: string };
    assert.notEqual(renewed.serial, st.serial);
    await until('the reconnection with the new certificate', async () => {
      const o = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: { serial: string }[] };
      return o.items.length === 1 && o.items[0]!.serial === renewed.serial;
    });

    // Policy: the group's policy arrives after welcome; shortening the group's
    // lifetime reaches the connected agent, whose longer-lived certificate is renewed at once.
    await until('the group policy after welcome', async () => (JSON.parse((await agent(['status', '--json'])).stdout) as { policy?: unknown }).policy !== undefined);
    const before = JSON.parse((await agent(['status', '--json'])).stdout) as { serial: string; notAfter: string; policy: { certLifetimeSeconds: number; renewFraction: number } };
    assert.ok(before.policy.certLifetimeSeconds > 3600, `the default group's lifetime (${before.policy.certLifetimeSeconds} s) is longer than an hour`);
    assert.ok(before.policy.renewFraction > 0 && before.policy.renewFraction < 1);
    const set = await cli(['groups', 'set', 'default', '--lifetime', '1h', '--data-dir', dataDir]);
    assert.equal(set.code, 0, set.stderr);
    await until('the renewal under the shorter lifetime', () => /now live 3600 s and this one has longer left; renewing now/.test(log));
    let shorter!: { serial: string; notAfter: string; policy: { certLifetimeSeconds: number } };
    await until('the certificate of the new policy', async () => {
      shorter = JSON.parse((await agent(['status', '--json'])).stdout) as typeof shorter;
      return shorter.serial !== before.serial;
    });
    assert.equal(shorter.policy.certLifetimeSeconds, 3600);
    const left = Date.parse(shorter.notAfter) - Date.now();
    assert.ok(left <= 3600_000 && left > 3500_000, `the new certificate lives an hour (${left} ms left)`);
    assert.match((await agent(['status'])).stdout, /group policy\s+certificates live 3600 s, renewed at 67%/);

    const t0 = Date.now();
    const rv = await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
    assert.equal(rv.code, 0, rv.stderr);
    const returned = Date.now();
    assert.equal(await exited, 3, log);
    const told = Date.now();
    t.diagnostic(`revoke returned after ${returned - t0} ms; the agent had acted and exited ${told - returned} ms later`);
    assert.match(log, /THIS DEVICE HAS BEEN REVOKED \(keyCompromise/);
    const s = await agent(['status', '--json']);
    assert.equal(s.code, 3);
    const after = JSON.parse(s.stdout) as { state: string; deviceId: string };
    assert.deepEqual([after.state, after.deviceId], ['revoked', st.deviceId]);
    assert.equal(existsSync(join(stateDir, 'identity.json')), false, 'the certificate is gone');
    assert.deepEqual(readdirSync(join(stateDir, 'keys')).filter((n) => n.endsWith('.key.pem')), [], 'the key is gone');
    assert.equal(JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout).items.length, 0);
    assert.equal((JSON.parse((await cli(['devices', 'list', '--json', '--data-dir', dataDir])).stdout) as { items: { online?: boolean }[] }).items[0]!.online, false);
    void server;
  });

  test('a daemon started after its device was revoked learns it from the control channel at once: exit 3, key and certificate deleted', { timeout: 60_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    const agent = (args: string[]) => run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args]);
    assert.equal((await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'])).code, 0);
    const st = JSON.parse((await agent(['status', '--json'])).stdout) as { deviceId: string };
    assert.equal((await cli(['devices', 'revoke', st.deviceId, '--data-dir', dataDir])).code, 0);
    // The certificate is far from due, so only the control channel's refusal (403 DEVICE_REVOKED) can tell it.
    const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    d.stderr.on('data', (b: Buffer) => (log += b.toString()));
    t.after(() => {
      if (d.exitCode === null) d.kill('SIGKILL');
    });
    const code = await Promise.race([new Promise<number | null>((r) => d.on('exit', (c) => r(c))), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
    assert.equal(code, 3, log);
    assert.match(log, /THIS DEVICE HAS BEEN REVOKED/);
    assert.doesNotMatch(log, /reconnecting in/, 'no retry loop');
    assert.equal(existsSync(join(stateDir, 'identity.json')), false);
    assert.deepEqual(readdirSync(join(stateDir, 'keys')).filter((n) => n.endsWith('.key.pem')), []);
    assert.equal((JSON.parse((await agent(['status', '--json'])).stdout) as { state: string }).state, 'revoked');
  });

  test('a full control channel (maxAgentConnections) answers 503 SERVER_BUSY; the refused agent backs off and gets in when there is room', { timeout: 90_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), maxAgentConnections: 1 }));
    const server = await startServer(t, dataDir, port);
    for (let i = 0; i < 50 && !/control channel: up to/.test(server.log()); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(server.log(), /control channel: up to 1 agent connections \(maxAgentConnections\)/);
    const daemons: { d: ReturnType<typeof spawn>; log: string }[] = [];
    const stateDirs: string[] = [];
    for (const n of [1, 2]) {
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
      const stateDir = join(tempDir(t, 'latchkey-agent-'), `state-${n}`);
      stateDirs.push(stateDir);
      assert.equal((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'])).code, 0);
      const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LATCHKEY_BACKOFF_CAP_MS: '2000' } });
      const entry = { d, log: '' };
      d.stderr.on('data', (b: Buffer) => (entry.log += b.toString()));
      t.after(() => {
        if (d.exitCode === null) d.kill('SIGKILL');
      });
      daemons.push(entry);
      const end = Date.now() + 20_000;
      const want = n === 1 ? /control channel connected/ : /control channel was refused \(503 SERVER_BUSY\)/;
      while (!want.test(entry.log)) {
        assert.ok(Date.now() < end, entry.log);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.doesNotMatch(daemons[1]!.log, /control channel connected/);
    daemons[0]!.d.kill('SIGTERM');
    await new Promise<void>((r) => (daemons[0]!.d.exitCode !== null ? r() : daemons[0]!.d.once('exit', () => r())));
    const stopped = JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDirs[0]!, 'status', '--json'])).stdout) as { controlChannel?: { state: string } };
    assert.equal(stopped.controlChannel?.state, 'daemon-not-running');
    const end = Date.now() + 30_000;
    while (!/control channel connected/.test(daemons[1]!.log)) {
      assert.ok(Date.now() < end, daemons[1]!.log);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: unknown[] }).items.length, 1);
  });

  test('a server that stops answering is noticed by the missing heartbeat answers, and a network change reconnects at once', { timeout: 90_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const cfg = join(dataDir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), agentHeartbeatSeconds: 1 }));
    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    assert.equal((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'])).code, 0);
    // The agent's channel in this process, with the network's addresses under the test's control.
    let log = '';
    let nets = 'eth0/10.0.0.2';
    const ch = startControlChannel({ stateDir, env: process.env, facts: collectFacts, log: (l) => (log += `${l}\n`), onRevoked: () => undefined, onRenewNow: () => undefined, backoff: { baseMs: 200, capMs: 1000 }, watchMs: 200, addresses: () => nets });
    t.after(() => ch.stop());
    const connects = () => log.match(/control channel connected/g)?.length ?? 0;
    const until = async (what: string, f: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!f()) {
        assert.ok(Date.now() < end, `timed out waiting for ${what}:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until('the first connection', () => connects() === 1, 15_000);

    // The network changes (new Wi-Fi, VPN up): a new connection at once.
    nets = 'wlan0/192.168.1.5';
    await until('the reconnection after the network change', () => connects() === 2, 5000);
    assert.match(log, /the network changed; reconnecting the control channel/);

    // The server freezes (SIGSTOP): the agent notices the silence within 2 heartbeats + 5 s, then gets back in.
    server.proc.kill('SIGSTOP');
    const frozen = Date.now();
    try {
      await until('the silence to be noticed', () => /got no answer for \d+ s; reconnecting/.test(log), 15_000);
      t.diagnostic(`silence noticed ${Date.now() - frozen} ms after the server froze (heartbeat 1 s)`);
    } finally {
      server.proc.kill('SIGCONT');
    }
    await until('the reconnection after the server came back', () => connects() >= 3, 20_000);
  });

  test('a connection that has not said hello yet is closed by a revocation too', { timeout: 60_000 }, async (t) => {
    if (!requireTools(t, 'openssl', 'curl')) return;
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const work = tempDir(t, 'latchkey-raw-');
    const sh = (cmd: string, args: string[]) => mustRun(cmd, args, { cwd: work });
    const rootCa = join(dataDir, 'root.crt.pem');
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key', '-subj', '/CN=raw', '-outform', 'DER', '-out', 'device.csr']);
    writeFileSync(join(work, 'device.csr.b64'), readFileSync(join(work, 'device.csr')).toString('base64'));
    const p7 = await sh('curl', ['-sf', '--cacert', rootCa, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.csr.b64', `${server.url}/.well-known/est/simpleenroll`]);
    writeFileSync(join(work, 'device.p7'), Buffer.from(p7.stdout, 'base64'));
    await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'device.p7', '-print_certs', '-out', 'device.pem']);
    const deviceId = (JSON.parse((await cli(['devices', 'list', '--json', '--data-dir', dataDir])).stdout) as { items: { id: string }[] }).items[0]!.id;
    // Connected, but silent: no hello (an agent still gathering its facts).
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/agent`, { ca: readFileSync(rootCa), cert: readFileSync(join(work, 'device.pem')), key: readFileSync(join(work, 'device.key')) });
    const got: string[] = [];
    ws.on('message', (d) => got.push(d.toString()));
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    assert.equal((await cli(['devices', 'revoke', deviceId, '--data-dir', dataDir])).code, 0);
    const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
    assert.equal(code, 4003, 'closed as revoked, at once (not at the 10 s hello deadline)');
    assert.match(got.join('\n'), /"type":"revoked"/);
  });
});
