/**
 * Two `latchkey-server start` processes on one PostgreSQL database: an agent
 * connected to replica A is told, and its connection closed, when the revoke
 * is made on replica B; the CRL is regenerated once (one CRL number step) and
 * served byte for byte the same by both replicas. A replica killed with
 * SIGKILL and restarted loses no event: a gateway following it catches up
 * from its cursor on what happened on the other replica meanwhile, and a
 * gateway token revoked on one replica is shut out of the other at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseCrl } from '@latchkey/pki';
import { AGENT_CLI, SERVER_CLI, cli, freePort, freshPgDatabase, initServer, run, startServer, tempDir } from './support/processes.js';

async function getCrl(url: string, ca: string): Promise<string> {
  const r = await run('curl', ['-sf', '--cacert', ca, `${url}/crl.pem`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Two replicas of one freshly initialised server on a fresh PostgreSQL database. */
async function twoReplicas(t: Parameters<typeof initServer>[0]) {
  const databaseUrl = await freshPgDatabase(t);
  if (!databaseUrl) return undefined;
  const a = await initServer(t, { databaseUrl });
  // Replica B: the same CA, config and database, its own port.
  const dirB = join(tempDir(t), 'data');
  cpSync(a.dataDir, dirB, { recursive: true });
  const portB = await freePort();
  const cfgB = join(dirB, 'config.json');
  writeFileSync(cfgB, JSON.stringify({ ...JSON.parse(readFileSync(cfgB, 'utf8')), listen: `127.0.0.1:${portB}` }));
  return { a, dirB, portB, A: await startServer(t, a.dataDir, a.port), B: await startServer(t, dirB, portB), ca: join(a.dataDir, 'root.crt.pem') };
}

async function until(what: string, f: () => boolean | Promise<boolean>, ms: number, log: () => string): Promise<number> {
  const start = Date.now();
  while (!(await f())) {
    assert.ok(Date.now() - start < ms, `timed out after ${ms} ms waiting for ${what}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

/** Serials in the issuing CA's CRL, the first of the file gateway sync writes. */
function crlFileSerials(file: string): string[] {
  if (!existsSync(file)) return [];
  const first = readFileSync(file, 'utf8').split(/(?<=-----END X509 CRL-----\n?)/)[0]!;
  return parseCrl(first).entries.map((e) => e.serialHex);
}

describe('several replicas on one PostgreSQL', () => {
  test('agent on replica A, revoke on replica B: the agent is told at once; the CRL is regenerated once and identical on both', { timeout: 120_000 }, async (t) => {
    const databaseUrl = await freshPgDatabase(t);
    if (!databaseUrl) return;
    const a = await initServer(t, { databaseUrl });
    // Replica B: the same CA, config and database, its own port.
    const dirB = join(tempDir(t), 'data');
    cpSync(a.dataDir, dirB, { recursive: true });
    const portB = await freePort();
    const cfgB = join(dirB, 'config.json');
    writeFileSync(cfgB, JSON.stringify({ ...JSON.parse(readFileSync(cfgB, 'utf8')), listen: `127.0.0.1:${portB}` }));
    const A = await startServer(t, a.dataDir, a.port);
    const B = await startServer(t, dirB, portB);
    const ca = join(a.dataDir, 'root.crt.pem');

    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dirB, '--json'])).stdout) as { token: string }).token;
    const stateDir = join(tempDir(t, 'latchkey-agent-'), 'state');
    assert.equal((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', A.url, '--token', token, '--ca-fingerprint', a.fingerprint, '--keystore', 'file'])).code, 0);
    const deviceId = (JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'])).stdout) as { deviceId: string }).deviceId;
    const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    d.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => d.on('exit', (c) => r(c)));
    t.after(() => {
      if (d.exitCode === null) d.kill('SIGKILL');
    });
    const end = Date.now() + 20_000;
    while (!/control channel connected/.test(log)) {
      assert.ok(Date.now() < end, log);
      await new Promise((r) => setTimeout(r, 50));
    }
    const onA = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', a.dataDir])).stdout) as { items: { deviceId: string; replica: string }[] };
    const onB = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dirB])).stdout) as { items: { deviceId: string; replica: string }[] };
    // Presence is shared: both replicas list the agent, held by the same replica (A).
    assert.deepEqual(onA.items.map((i) => i.deviceId), [deviceId]);
    assert.deepEqual(onB.items, onA.items, 'B lists the agent connected to A');

    const before = parseCrl(await getCrl(A.url, ca)).crlNumber;
    const rv = await cli(['devices', 'revoke', deviceId, '--reason', 'keyCompromise', '--data-dir', dirB]);
    assert.equal(rv.code, 0, rv.stderr);
    const returned = Date.now();
    assert.equal(await exited, 3, log);
    t.diagnostic(`agent on A acted ${Date.now() - returned} ms after the revoke on B returned`);
    assert.match(log, /THIS DEVICE HAS BEEN REVOKED \(keyCompromise/);

    const [crlA, crlB] = [await getCrl(A.url, ca), await getCrl(B.url, ca)];
    assert.equal(crlA, crlB, 'both replicas serve the same CRL');
    const crl = parseCrl(crlA);
    assert.equal(crl.crlNumber, (before ?? 0n) + 1n, 'regenerated once');
    assert.equal(crl.entries.length, 1);
    const after = JSON.parse((await cli(['devices', 'online', '--json', '--data-dir', dirB])).stdout) as { items: unknown[] };
    assert.deepEqual(after.items, [], 'the revoked agent is offline everywhere');
  });

  test('a replica killed (SIGKILL) and restarted loses no event; a gateway token revoked on one replica is shut out of the other at once', { timeout: 120_000 }, async (t) => {
    const r = await twoReplicas(t);
    if (!r) return;
    const { a, dirB, B, ca } = r;
    let A = r.A;
    const work = tempDir(t, 'latchkey-gw-');
    const devices: { deviceId: string; serial: string }[] = [];
    for (const n of [1, 2, 3]) {
      const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dirB, '--json'])).stdout) as { token: string }).token;
      const stateDir = join(work, `agent-${n}`);
      const e = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', B.url, '--token', token, '--ca-fingerprint', a.fingerprint, '--keystore', 'file']);
      assert.equal(e.code, 0, e.stderr);
      devices.push(JSON.parse((await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'status', '--json'])).stdout) as { deviceId: string; serial: string });
    }
    const gwToken = (JSON.parse((await cli(['gateway', 'token', 'create', '--name', 'edge-1', '--json', '--data-dir', a.dataDir])).stdout) as { token: string }).token;

    // A gateway follows replica A.
    const crlFile = join(work, 'crl.pem');
    const sync = spawn(process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', A.url, '--ca-file', ca, '--crl-file', crlFile, '--reload', 'true'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LATCHKEY_GATEWAY_TOKEN: gwToken } });
    let log = '';
    sync.stderr.on('data', (d: Buffer) => (log += d.toString()));
    sync.stdout.on('data', (d: Buffer) => (log += d.toString()));
    t.after(() => {
      if (sync.exitCode === null) sync.kill('SIGKILL');
    });
    const logs = () => `${log}\n--- A:\n${A.log()}\n--- B:\n${B.log()}`;
    await until('the event stream on A and the first sync', () => /event stream connected/.test(log) && /synced CRLs \(issuing #\d+, root #\d+; 0 revoked/.test(log), 20_000, logs);

    // A live event through A gives the gateway a cursor.
    assert.equal((await cli(['devices', 'revoke', devices[0]!.deviceId, '--data-dir', dirB])).code, 0);
    await until('the first revocation', () => crlFileSerials(crlFile).includes(devices[0]!.serial), 2000, logs);

    // Replica A dies; a device is revoked on B while A is down; A comes back.
    await A.stop('SIGKILL');
    await until('the stream to notice', () => /event stream (closed|unavailable)/.test(log), 10_000, logs);
    assert.equal((await cli(['devices', 'revoke', devices[1]!.deviceId, '--reason', 'keyCompromise', '--data-dir', dirB])).code, 0);
    assert.ok(!crlFileSerials(crlFile).includes(devices[1]!.serial), 'A is down: the gateway has not heard yet');
    A = await startServer(t, a.dataDir, a.port);
    await until('the catch-up through the restarted replica A', () => crlFileSerials(crlFile).includes(devices[1]!.serial), 40_000, logs);
    // (The CRL may arrive first through the sync's own retry of the fetch that failed when A died.)
    await until('the stream to resume from its cursor', () => /event stream connected; resuming after cursor \d+/.test(log), 20_000, logs);
    // And it keeps following live events made on B.
    assert.equal((await cli(['devices', 'revoke', devices[2]!.deviceId, '--data-dir', dirB])).code, 0);
    const ms = await until('the live event from B', () => crlFileSerials(crlFile).includes(devices[2]!.serial), 2000, logs);
    t.diagnostic(`revoke on B → CRL file written by the gateway following A: ${ms} ms`);
    assert.deepEqual(crlFileSerials(crlFile).sort(), devices.map((d) => d.serial).sort());

    // The gateway's token is revoked on B: A closes its stream at once (not at its next token check).
    const id = (JSON.parse((await cli(['gateway', 'token', 'list', '--json', '--data-dir', dirB])).stdout) as { items: { id: string }[] }).items[0]!.id;
    assert.equal((await cli(['gateway', 'token', 'revoke', id, '--data-dir', dirB])).code, 0);
    const closed = await until('the stream on A to close', () => /closed 4003/.test(log), 5000, logs);
    t.diagnostic(`gateway token revoked on B → stream on A closed ${closed} ms later`);
  });
  test('issue 10 §1: a device minting certificates on replica A stops at the cap; revoked on B, replica A\'s OCSP says revoked at once', { timeout: 120_000 }, async (t) => {
    const r = await twoReplicas(t);
    if (!r) return;
    const { dirB, A, ca } = r;
    const work = tempDir(t, 'latchkey-mint-');
    const sh = (cmd: string, args: string[]) => run(cmd, args, { cwd: work });
    const newCsr = async (name: string): Promise<void> => {
      const made = await sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-subj', '/CN=minter', '-outform', 'DER', '-out', `${name}.csr`]);
      assert.equal(made.code, 0, made.stderr);
      writeFileSync(join(work, `${name}.b64`), readFileSync(join(work, `${name}.csr`)).toString('base64'));
    };
    const token = (JSON.parse((await cli(['token', 'create', '--data-dir', dirB, '--json'])).stdout) as { token: string }).token;
    await newCsr('device');
    const enrolled = await sh('curl', ['-sf', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', '@device.b64', '-o', 'device.p7b64', `${A.url}/.well-known/est/simpleenroll`]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    writeFileSync(join(work, 'device.p7'), Buffer.from(readFileSync(join(work, 'device.p7b64'), 'utf8'), 'base64'));
    assert.equal((await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'device.p7', '-print_certs', '-out', 'device.pem'])).code, 0);
    await sh('curl', ['-sf', '--cacert', ca, '-o', 'cacerts.b64', `${A.url}/.well-known/est/cacerts`]);
    writeFileSync(join(work, 'cacerts.der'), Buffer.from(readFileSync(join(work, 'cacerts.b64'), 'utf8'), 'base64'));
    await sh('openssl', ['pkcs7', '-inform', 'DER', '-in', 'cacerts.der', '-print_certs', '-out', 'chain.pem']);
    await sh('openssl', ['x509', '-in', 'chain.pem', '-out', 'issuing.pem']);
    const ocspOnA = async (): Promise<string> => {
      const o = await sh('openssl', ['ocsp', '-issuer', 'issuing.pem', '-cert', 'device.pem', '-url', `${A.url}/ocsp`, '-CAfile', ca, '-no_nonce']);
      return o.stdout + o.stderr;
    };
    // A gateway asking A without a nonce: A keeps the signed "good" for reuse.
    assert.match(await ocspOnA(), /device\.pem: good/);

    // 30 re-enrollments at once with the same certificate (the attack made 3,603 in 29 s).
    for (let i = 0; i < 30; i++) await newCsr(`m${i}`);
    const codes = await Promise.all(
      Array.from({ length: 30 }, (_, i) => sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', ca, '--cert', 'device.pem', '--key', 'device.key', '-H', 'Content-Type: application/pkcs10', '--data-binary', `@m${i}.b64`, `${A.url}/.well-known/est/simplereenroll`]).then((x) => x.stdout)),
    );
    const issued = codes.filter((c) => c === '200').length;
    assert.ok(issued >= 1 && issued <= 3, `issued ${issued}: ${codes.join(' ')}`);
    assert.ok(codes.every((c) => c === '200' || c === '429'), codes.join(' '));

    // Revoked on replica B: the event is small, reaches A, and A stops answering "good" before the CLI returns.
    const rv = await cli(['devices', 'revoke', (JSON.parse((await cli(['devices', 'list', '--json', '--data-dir', dirB])).stdout) as { items: { id: string }[] }).items[0]!.id, '--data-dir', dirB]);
    assert.equal(rv.code, 0, rv.stderr);
    assert.match(await ocspOnA(), /device\.pem: revoked/);
    const crl = parseCrl(await getCrl(A.url, ca));
    assert.ok(crl.entries.length >= 1 && crl.entries.length <= 4, `${crl.entries.length} CRL entries`);
  });
});
