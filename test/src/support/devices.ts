/**
 * Devices without the agent, for tests of the server's edges: enrolled over
 * EST with a fresh key, and raw control channels with their certificate.
 */
import 'reflect-metadata';
import * as crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createCsr, decodeCertsOnly, nodeSigner, parseCertificate } from '@latchkey/pki';
import { PROTOCOL_VERSION } from '@latchkey/protocol';
import WebSocket from 'ws';
import { until } from './gateways.js';
import { cli, type ServerProcess } from './processes.js';

const facts = { hostname: 'laptop-7', os: { platform: 'linux', release: '6.1.0' }, arch: 'x64', hardwareId: 'a1b2c3', agentVersion: '0.1.0' };

export interface Device {
  id: string;
  serial: string;
  certPem: string;
  keyPem: string;
}

export function setConfig(dataDir: string, extra: Record<string, unknown>): void {
  const cfg = join(dataDir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), ...extra }));
}

/** A device enrolled over EST with a fresh key (no agent). */
export async function enrollDevice(server: ServerProcess, name: string): Promise<Device> {
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

export interface Channel {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
  /** Sends a message and waits for the answer to a heartbeat sent after it (the server handles messages in order). */
  sendAndSync(m: unknown): Promise<void>;
}

/** A control channel with the device's certificate, greeted (hello → welcome). */
export async function channel(server: ServerProcess, d: Device): Promise<Channel> {
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

