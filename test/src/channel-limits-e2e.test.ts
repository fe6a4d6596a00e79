/**
 * The control channel under abuse by an enrolled device, against a real
 * `latchkey-server` (issue 10 §5): one device cannot take every slot (the
 * newest connection replaces the oldest, and two agents sharing an identity
 * back off instead of taking turns forever), and the serial on record is the
 * one the connection authenticated with, not the one a status claims; a
 * flood of messages closes the connection.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WS_CLOSE_CODES } from '@latchkey/protocol';
import WebSocket from 'ws';
import { startControlChannel } from '../../agent/dist/channel/control-channel.js';
import { collectFacts } from '../../agent/dist/facts.js';
import { sleep, until } from './support/gateways.js';
import { type Channel, channel, enrollDevice, setConfig } from './support/devices.js';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir } from './support/processes.js';

const online = async (dataDir: string) => (JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dataDir])).stdout) as { items: { deviceId: string; serial: string }[] }).items;

describe('control channel limits (issue 10 §5)', () => {
  test('one device opening more channels than maxAgentConnectionsPerDevice: the oldest are closed as replaced (4009), other devices are unaffected', { timeout: 90_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    setConfig(dataDir, { maxAgentConnectionsPerDevice: 2 });
    const server = await startServer(t, dataDir, port);
    const [a, b] = [await enrollDevice(server, 'greedy'), await enrollDevice(server, 'bystander')];
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

  test('an enrolled device flooding its control channel (thousands of messages a second) is closed with 4029; another device is unaffected', { timeout: 60_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const [a, b] = [await enrollDevice(server, 'flooder'), await enrollDevice(server, 'calm')];
    const calm = await channel(server, b);
    const flooder = await channel(server, a);
    for (let i = 0; i < 3000 && flooder.ws.readyState === WebSocket.OPEN; i++) flooder.ws.send(JSON.stringify({ type: 'heartbeat', seq: i }));
    const r = await Promise.race([flooder.closed, sleep(10_000).then(() => ({ code: -1, reason: 'still open' }))]);
    assert.deepEqual(r, { code: WS_CLOSE_CODES.tooManyMessages, reason: 'too many messages' });
    await calm.sendAndSync({ type: 'heartbeat', seq: 1 });
    assert.match(server.log(), /an agent sent messages faster than allowed; closed/);
  });

  test("a status naming another certificate's serial is not recorded: the session keeps the serial the connection authenticated with", { timeout: 60_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const [a, b] = [await enrollDevice(server, 'honest'), await enrollDevice(server, 'liar')];
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
