import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import * as tls from 'node:tls';
import { certificateToPem, createCaHierarchy, createDeviceProfile, issueServerCertificate, randomSerial } from '@latchkey/pki';
import { AgentError } from '../errors.js';
import { openKeyStore } from '../keystore/open-keystore.js';
import { writeIdentity } from '../state/identity.js';
import { connectStdio, describeDialError, isLoopback, parseHostPort, startForwarder } from './forwarder.js';

/** The agent's own command line, to start token workers from this test. */
const WORKER = { inWorker: () => true, workerArgv: [process.execPath, fileURLToPath(new URL('../cli.js', import.meta.url))] };

test('HOST:PORT and [IPv6]:PORT parse; anything else is a usage error that names the flag', () => {
  assert.deepEqual(parseHostPort('gw.example.com:443', '--to'), { host: 'gw.example.com', port: 443 });
  assert.deepEqual(parseHostPort('127.0.0.1:0', '--listen'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseHostPort('[::1]:2222', '--listen'), { host: '::1', port: 2222 });
  for (const bad of ['gw.example.com', 'gw:', ':443', 'gw:70000', '::1:22', 'a b:1', 'gw:44x']) {
    assert.throws(() => parseHostPort(bad, '--to'), (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && /--to must be HOST:PORT/.test(e.message), bad);
  }
});

test('only loopback listeners are allowed without --allow-remote', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '192.168.1.10', 'laptop.local']) assert.equal(isLoopback(h), false, h);
});

test('dial errors say what to do', () => {
  const to = { host: 'gw', port: 443 };
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  assert.match(describeDialError(err('ssl3_read_bytes:sslv3 alert certificate revoked'), to), /revoked/);
  assert.match(describeDialError(err('connect ECONNREFUSED', 'ECONNREFUSED'), to), /nothing listens on gw:443/);
  assert.match(describeDialError(err("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'), to), /--ca FILE.*--servername/);
  assert.match(describeDialError(err('This socket has been ended by the other party', 'EPIPE'), to), /closed the connection before sending anything.*latchkey status/);
});

const BIG = 4 << 20;

/** An enrolled state dir (file keystore) and an in-process mTLS gateway that requires its certificate. */
async function gatewayAndIdentity(t: { after(fn: () => void | Promise<void>): void }, onConnection: (s: tls.TLSSocket) => void) {
  const now = new Date();
  const key = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ca = await createCaHierarchy({ org: 'T', now, rootKey: key(), issuingKey: key(), randomBytes: crypto.randomBytes });
  const stateDir = mkdtempSync(join(tmpdir(), 'lk-connect-'));
  const env = { LATCHKEY_KEY_PASSPHRASE: 'a-test-passphrase-long-enough' };
  const store = await openKeyStore({ kind: 'file' }, { stateDir, env });
  const k = await store.generate();
  const profile = createDeviceProfile({ issuer: ca.issuing, org: 'T', trustDomain: 't.test', crlUrls: ['http://x'], ocspUrls: ['http://x'], caIssuersUrls: ['http://x'] });
  const deviceId = crypto.randomUUID();
  const der = await profile.issue({ spki: k.spki, deviceId, deviceName: 'd', serial: randomSerial(crypto.randomBytes), now, lifetimeSeconds: 3600 });
  const rootPem = certificateToPem(ca.root.der);
  const chainPem = certificateToPem(ca.issuing.cert.der);
  await writeIdentity(stateDir, {
    version: 1,
    server: 'https://127.0.0.1:9',
    rootFingerprint: '00'.repeat(32),
    rootPem,
    chainPem,
    deviceId,
    keystore: { kind: 'file' },
    key: k.ref,
    certPem: certificateToPem(der),
    enrolledAt: now.toISOString(),
  });
  const serverKey = key();
  const serverDer = await issueServerCertificate({
    issuer: ca.issuing,
    org: 'T',
    commonName: 'localhost',
    spki: crypto.createPublicKey(serverKey).export({ type: 'spki', format: 'der' }),
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    serial: randomSerial(crypto.randomBytes),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 3_600_000),
  });
  const gwSockets = new Set<tls.TLSSocket>();
  const gw = tls.createServer(
    { key: serverKey.export({ type: 'pkcs8', format: 'pem' }), cert: certificateToPem(serverDer) + chainPem, ca: [rootPem, chainPem], requestCert: true, rejectUnauthorized: true, allowHalfOpen: true },
    (s) => {
      gwSockets.add(s);
      s.on('close', () => gwSockets.delete(s));
      s.on('error', () => undefined);
      onConnection(s);
    },
  );
  await new Promise<void>((r) => gw.listen(0, '127.0.0.1', () => r()));
  t.after(async () => {
    for (const s of gwSockets) s.destroy();
    await new Promise((r) => gw.close(r));
    rmSync(stateDir, { recursive: true, force: true });
  });
  const lines: string[] = [];
  return { stateDir, env, to: { host: '127.0.0.1', port: (gw.address() as net.AddressInfo).port }, extraCaPem: rootPem, log: (l: string) => lines.push(l), lines, gwSockets };
}

for (const [mode, extra] of [['in this process', {}], ['through a token worker', WORKER]] as const) {
test(`${mode}: a client that half-closes after its request gets the whole reply through the forwarder, and nothing stays open`, async (t) => {
  const o = await gatewayAndIdentity(t, (s) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    // Reply only once the request is complete (nc -N, request-then-shutdown protocols).
    s.on('end', () => s.end(`reply-to:${got}:` + 'x'.repeat(200_000)));
  });
  const fwd = await startForwarder({ ...o, ...extra, listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => fwd.close());
  for (let i = 0; i < 3; i++) {
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port: fwd.address.port, allowHalfOpen: true });
      let r = '';
      c.on('data', (d: Buffer) => (r += d.toString()));
      c.on('end', () => c.end());
      c.on('close', () => resolve(r));
      c.on('error', reject);
      c.end('hello');
    });
    assert.equal(reply, 'reply-to:hello:' + 'x'.repeat(200_000));
  }
  // Both sides of every spliced connection are torn down.
  for (let i = 0; i < 100 && (fwd.open > 0 || o.gwSockets.size > 0); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fwd.open, 0);
  assert.equal(o.gwSockets.size, 0);
  assert.deepEqual(o.lines.filter((l) => /failed|refusing/.test(l)), []);
});
}

/** A Writable that takes 1 ms per chunk and counts what it got. */
function slowSink(): Writable & { got: number } {
  const w = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      w.got += chunk.length;
      setTimeout(cb, 1);
    },
  }) as Writable & { got: number };
  w.got = 0;
  return w;
}

test('--stdio returns only once everything the gateway sent has reached a slow stdout', async (t) => {
  const o = await gatewayAndIdentity(t, (s) => {
    s.end(Buffer.alloc(BIG, 97));
  });
  const stdin = new PassThrough(); // stays open, as ssh's does
  const out = slowSink();
  await connectStdio(o, stdin, out);
  assert.equal(out.got, BIG);
  stdin.destroy();
});

test('--stdio: a request sent and then closed still gets its reply', async (t) => {
  const o = await gatewayAndIdentity(t, (s) => {
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => s.end(`reply-to:${got}`));
  });
  const stdin = new PassThrough();
  const chunks: Buffer[] = [];
  const out = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) });
  stdin.end('ping');
  await connectStdio(o, stdin, out);
  assert.equal(Buffer.concat(chunks).toString(), 'reply-to:ping');
});

test('a connection through a token worker delivers all the gateway wrote to a slow client', async (t) => {
  const o = await gatewayAndIdentity(t, (s) => {
    s.end(Buffer.alloc(BIG, 97));
  });
  const fwd = await startForwarder({ ...o, ...WORKER, listen: { host: '127.0.0.1', port: 0 } });
  t.after(() => fwd.close());
  const n = await new Promise<number>((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port: fwd.address.port });
    let n = 0;
    c.pause();
    setTimeout(() => c.resume(), 300); // the gateway has sent everything and closed by then
    c.on('data', (d: Buffer) => (n += d.length));
    c.on('close', () => resolve(n));
    c.on('error', reject);
  });
  assert.equal(n, BIG);
  for (let i = 0; i < 100 && fwd.open > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fwd.open, 0);
  assert.deepEqual(o.lines.filter((l) => /failed|refusing/.test(l)), []);
});
