/**
 * A stand-in for latchkey-server's public CRL surface, for CRLs a real server
 * cannot be made to publish within a test (thousands of revoked certificates,
 * or a clock gone wrong): CRLs signed with a real data dir's own CA keys, so a
 * gateway configured from that data dir checks them, at /crl.pem and
 * /crl/root.pem; and the `/v1/events` upgrade with its gateway-token check,
 * which `gateway sync` needs (it sends no events).
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildCrl, crlToPem, type Issuer } from '@latchkey/pki';
import { CRL_PATHS, PATHS, type CrlIssuer } from '@latchkey/protocol';
import { WebSocketServer } from 'ws';
import { dataDirIssuer } from './data-dir-ca.js';
import type { Hooks } from './gateways.js';

export interface CrlSpec {
  crlNumber: number;
  /** Hex serials. */
  serials: string[];
  thisUpdate?: Date;
  validitySeconds?: number;
}

export interface CrlPublisher {
  url: string;
  /** Publishes a new CRL for that CA; returns its PEM. */
  set(ca: CrlIssuer, spec: CrlSpec): Promise<string>;
}

export async function crlPublisher(t: Hooks, dataDir: string, gatewayToken: string): Promise<CrlPublisher> {
  const issuers: Record<CrlIssuer, Issuer> = { issuing: dataDirIssuer(dataDir, 'issuing'), root: dataDirIssuer(dataDir, 'root') };
  const crls: Partial<Record<CrlIssuer, string>> = {};

  const server = createServer({ cert: readFileSync(join(dataDir, 'server.crt.pem')), key: readFileSync(join(dataDir, 'server.key.pem')) }, (req, res) => {
    const ca = (Object.keys(CRL_PATHS) as CrlIssuer[]).find((c) => CRL_PATHS[c].pem === req.url);
    const pem = ca && crls[ca];
    if (pem) res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(pem);
    else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== PATHS.events || req.headers.authorization !== `Bearer ${gatewayToken}`) {
      const body = JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'the gateway token is not valid' } });
      socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('error', () => undefined));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => server.close(r));
  });
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async set(ca, spec) {
      const thisUpdate = spec.thisUpdate ?? new Date();
      const der = await buildCrl({
        issuer: issuers[ca],
        thisUpdate,
        nextUpdate: new Date(thisUpdate.getTime() + (spec.validitySeconds ?? 3600) * 1000),
        crlNumber: BigInt(spec.crlNumber),
        entries: spec.serials.map((serial) => ({ serial, revokedAt: thisUpdate })),
      });
      return (crls[ca] = crlToPem(der));
    },
  };
}
