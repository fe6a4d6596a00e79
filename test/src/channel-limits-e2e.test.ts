/**
 * The control channel under abuse by an enrolled device, against a real
 * `latchkey-server` (issue 10 §5): one device cannot take every slot (the
 * newest connection replaces the oldest, and two agents sharing an identity
 * back off instead of taking turns forever), and the serial on record is the
 * one the connection authenticated with, not the one a status claims.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCsr, decodeCertsOnly, nodeSigner, parseCertificate } from '@latchkey/pki';
import { PROTOCOL_VERSION, WS_CLOSE_CODES } from '@latchkey/protocol';
import WebSocket from 'ws';
import { startControlChannel } from '../../agent/dist/channel/control-channel.js';
import { collectFacts } from '../../agent/dist/facts.js';
import { sleep, until } from './support/gateways.js';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir, type ServerProcess } from './support/processes.js';

const facts = { hostname: 'laptop-7', os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: 'a1b2c3', agentVersion: '0.1.0' };

interface Device {
  id: string;
  serial: string;
  certPem: string;
  keyPem: string;
}

function setConfig(dataDir: string, extra: Record<string, unknown>): void {
  const cfg = join(dataDir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), ...extra }));
}

/** A device enrolled over EST with a fresh key (no agent). */
async function enroll(server: ServerProcess, name: string): Promise<Device> {
  const token = (JSON.parse((await cli(['token', 'create', '--data-dir', server.dataDir, '--json'])).stdout) as { token: string }).token;
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const csr = (await createCsr({ subject: [{ type: 'CN', value: name }], signer: nodeSigner(privateKey) })).toString('base64');
  const ca = readFileSync(join(server.dataDir, 'root.crt.pem'), 'utf8');
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.port, method: 'POST', path: '/.well-known/est/simpleenroll', ca, agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/pkcs10' } },
      (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`enroll: ${res.statusCode} ${b}`))));
      },
    );
    req.on('error', reject);
    req.end(csr);
  });
  const der = decodeCertsOnly(body)[0]!;
  const cert = parseCertificate(der);
  const listed = JSON.parse((await cli(['devices', 'list', '--json', '--data-dir', server.dataDir])).stdout) as { items: { id: string; name: string }[] };
  return {
    id: listed.items.find((d) => d.name === name)!.id,
    serial: cert.serialHex,
    certPem: `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

interface Channel {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
  /** Sends a message and waits for the answer to a heartbeat sent after it (the server handles messages in order). */
  sendAndSync(m: unknown): Promise<void>;
}

/** A control channel with the device's certificate, greeted (hello → welcome). */
async function channel(server: ServerProcess, d: Device): Promise<Channel> {
  const ws = new WebSocket(`wss://127.0.0.1:${server.port}/v1/agent`, { ca: readFileSync(join(server.dataDir, 'root.crt.pem')), cert: d.certPem, key: d.keyPem });
  const got: string[] = [];
  ws.on('message', (m) => got.push(m.toString()));
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, agentVersion: '0.1.0', facts }));
  await until('welcome', async () => (got.some((m) => m.includes('"welcome"')) ? true : undefined));
  let seq = 1000;
  return {
    ws,
    closed,
    async sendAndSync(m) {
      const s = seq++;
      ws.send(JSON.stringify(m));
      ws.send(JSON.stringify({ type: 'heartbeat', seq: s }));
      await until(`heartbeat-ack ${s}`, async () => (got.some((x) => x.includes(`"seq":${s}`)) ? true : undefined));
    },
  };
}

const online = async (dataDir: string) => (JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: { deviceId: string; serial: string }[] }).items;

describe('control channel limits (issue 10 §5)', () => {
  test('one device opening more channels than maxAgentConnectionsPerDevice: the oldest are closed as replaced (4009), other devices are unaffected', { timeout: 90_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    setConfig(dataDir, { maxAgentConnectionsPerDevice: 2 });
    const server = await startServer(t, dataDir, port);
    const [a, b] = [await enroll(server, 'greedy'), await enroll(server, 'bystander')];
    const other = await channel(server, b);
    const mine: Channel[] = [];
    for (let i = 0; i < 5; i++) mine.push(await channel(server, a));
    // The three oldest were replaced, each as a newer one authenticated.
    for (const c of mine.slice(0, 3)) {
      const r = await Promise.race([c.closed, sleep(10_000).then(() => ({ code: -1, reason: 'still open' }))]);
      assert.deepEqual(r, { code: WS_CLOSE_CODES.replaced, reason: 'replaced by a newer connection of this device' });
    }
    for (const c of [...mine.slice(3), other]) {
      assert.equal(c.ws.readyState, WebSocket.OPEN);
      await c.sendAndSync({ type: 'heartbeat', seq: 1 });
    }
    await until('presence to settle', async () => {
      const items = await online(dataDir);
      return items.filter((o) => o.deviceId === a.id).length === 2 ? items : undefined;
    });
    assert.equal((await online(dataDir)).filter((o) => o.deviceId === b.id).length, 1);
  });

  test('two agents sharing one identity: the replaced one backs off (it does not take the slot back at once, again and again)', { timeout: 90_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    setConfig(dataDir, { maxAgentConnectionsPerDevice: 1 });
    const server = await startServer(t, dataDir, port);
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dataDir, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    assert.equal((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file'])).code, 0);
    // A copy of the state dir: a cloned disk.
    const copy = join(tempDir(t, 'latchkey-agent-'), 'state');
    cpSync(stateDir, copy, { recursive: true });
    const logs = ['', ''];
    const opts = (i: number, dir: string) => ({
      stateDir: dir,
      env: process.env,
      facts: collectFacts,
      log: (l: string) => (logs[i] += `${l}\n`),
      onRevoked: () => undefined,
      onRenewNow: () => undefined,
      // Quick retries after ordinary closes, as when the server restarts: only `replaced` may slow an agent down.
      backoff: { baseMs: 100, capMs: 200 },
      replacedBackoff: { baseMs: 20_000, capMs: 60_000 },
    });
    const connects = (i: number) => logs[i]!.match(/control channel connected/g)?.length ?? 0;
    const first = startControlChannel(opts(0, stateDir));
    t.after(() => first.stop());
    await until('the first agent', async () => (connects(0) === 1 ? true : undefined), 20_000);
    const second = startControlChannel(opts(1, copy));
    t.after(() => second.stop());
    await until('the second agent', async () => (connects(1) === 1 ? true : undefined), 20_000);
    await until('the first agent to be told', async () => (/another connection with this device's identity replaced it/.test(logs[0]!) ? true : undefined), 10_000);
    await sleep(5000);
    assert.equal(connects(0), 1, `the replaced agent waits (at least 10 s) before it comes back:\n${logs[0]}`);
    assert.equal(connects(1), 1, logs[1]);
    assert.match(logs[0]!, /reconnecting in (\d\d|[1-9]\d\d)\.\d s/);
    assert.equal(second.connected, true);
  });

  test("a status naming another certificate's serial is not recorded: the session keeps the serial the connection authenticated with", { timeout: 60_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const [a, b] = [await enroll(server, 'honest'), await enroll(server, 'liar')];
    const liar = await channel(server, b);
    await liar.sendAndSync({ type: 'status', serial: a.serial, notAfter: '2030-01-01T00:00:00Z', keystore: 'file' });
    await liar.sendAndSync({ type: 'status', serial: '0badc0ffee', notAfter: '2030-01-01T00:00:00Z', keystore: 'file' });
    const items = await online(dataDir);
    assert.deepEqual(items.map((o) => [o.deviceId, o.serial]), [[b.id, b.serial]]);
    assert.equal(liar.ws.readyState, WebSocket.OPEN, 'the connection stays (an agent mid-renewal may lag)');
    const mismatch = server.log().split('\n').find((l) => l.includes('reported a serial other than the certificate it connected with'));
    assert.ok(mismatch?.includes(`"claimed":"${a.serial}"`) && mismatch.includes(`"serial":"${b.serial}"`), server.log());
    // Its own serial is fine and changes nothing.
    await liar.sendAndSync({ type: 'status', serial: b.serial, notAfter: '2030-01-01T00:00:00Z', keystore: 'file' });
    assert.deepEqual((await online(dataDir)).map((o) => o.serial), [b.serial]);
  });
});
