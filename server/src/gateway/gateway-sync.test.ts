/**
 * `gateway sync` logic with fake effects and real CRLs (built by our CA
 * code, parsed back), the atomic file write, and the HAProxy runtime API
 * framing — checked against a real HAProxy when one is installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildCrl, certificateToPem, crlToPem, createCaHierarchy, type CaHierarchy } from '@latchkey/pki';
import type { CrlIssuer, GatewayEvent } from '@latchkey/protocol';
import { GatewayAuthError, backoffMs, runGatewaySync, syncOnce, type SyncStatus, type EventStreamHandlers, type GatewaySyncEffects } from './gateway-sync.js';
import { waits } from '../testing/wait-for.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { haproxyCommand, haproxySetCrlCommand, haproxyUpdateCrl } from './gateway-sync-node.js';

const NOW = new Date('2026-03-01T12:00:00Z');
let caP: Promise<CaHierarchy> | undefined;
const ca = (): Promise<CaHierarchy> =>
  (caP ??= createCaHierarchy({
    org: 'Example Corp',
    now: NOW,
    rootKey: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuingKey: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    randomBytes: crypto.randomBytes,
  }));

async function crlPem(issuer: CrlIssuer, n: number, serials: string[] = [], thisUpdate = NOW): Promise<string> {
  const h = await ca();
  const der = await buildCrl({
    issuer: issuer === 'issuing' ? h.issuing : { ...h.issuing, cert: h.root },
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + 3_600_000),
    crlNumber: BigInt(n),
    entries: serials.map((serial) => ({ serial, revokedAt: NOW })),
  });
  return crlToPem(der);
}

/**
 * Fake effects: a server whose CRLs the test sets, a stream the test drives,
 * sleeps that take no time (they yield to the event loop once). Tests wait on
 * what they expect (`until`: re-checked after every effect the loop performs),
 * never for a length of time.
 */
function fakes() {
  const crls: Record<CrlIssuer, string | undefined | Error> = { issuing: undefined, root: undefined };
  const writes: string[] = [];
  const applied: string[] = [];
  const logs: string[] = [];
  const subscribes: (string | undefined)[] = [];
  const sleeps: number[] = [];
  let handlers: EventStreamHandlers | undefined;
  let opens = 0;
  // Every effect below calls changed(): a wait is re-checked after each thing the loop does.
  const { changed, until } = waits(() => `log:\n${logs.join('\n')}`);
  const fx: GatewaySyncEffects = {
    async fetchCrl(issuer) {
      const c = crls[issuer];
      if (c instanceof Error) throw c;
      return c;
    },
    async writeCrlFile(pem) {
      writes.push(pem);
      changed();
    },
    async apply(pem) {
      applied.push(pem);
      changed();
    },
    openStream(h) {
      opens++;
      handlers = h;
      changed();
      return {
        subscribe: (since) => {
          subscribes.push(since);
          changed();
        },
        close: () => h.onClose('closed by client'),
      };
    },
    async sleep(ms, signal) {
      sleeps.push(ms);
      changed();
      await new Promise((r) => setImmediate(r));
      if (signal.aborted) throw new Error('aborted');
    },
    random: () => 0.5,
    log: (l, level) => {
      logs.push(level ? `${level}: ${l}` : l);
      changed();
    },
    now: () => NOW.getTime(),
  };
  const logged = (re: RegExp) => () => re.test(logs.join('\n'));
  /** n syncs done: applied and logged (the log line is a sync's last effect). */
  const synced = (n: number) => () => logs.filter((l) => l.startsWith('synced CRLs')).length === n;
  return { fx, crls, writes, applied, logs, subscribes, sleeps, opens: () => opens, stream: () => handlers!, until, logged, synced, changed };
}

describe('gateway sync: one sync', () => {
  test('writes issuing + root CRLs as one PEM file, applies it, logs the CRL numbers; unchanged → nothing rewritten', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 7, ['0a1b']);
    f.crls.root = await crlPem('root', 3);
    const state = { numbers: {} };
    const r = await syncOnce(f.fx, state, { force: false, why: 'test' });
    assert.deepEqual(r, { crlNumbers: { issuing: '7', root: '3' }, serials: 1, changed: true });
    assert.equal(f.writes.length, 1);
    assert.equal(f.writes[0], f.crls.issuing + f.crls.root);
    assert.deepEqual(f.applied, f.writes);
    assert.match(f.logs[0]!, /synced CRLs \(issuing #7, root #3; 1 revoked serial\(s\)\) after test/);
    await syncOnce(f.fx, state, { force: false, why: 'again' });
    assert.equal(f.writes.length, 1, 'same CRLs: no write, no reload');
    await syncOnce(f.fx, state, { force: true, why: '--once' });
    assert.equal(f.writes.length, 2, 'forced');
  });

  test('the root CRL may be absent (CA imported without its root key); the issuing one may not', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 1);
    const r = await syncOnce(f.fx, { numbers: {} }, { force: false, why: 'x' });
    assert.deepEqual(r.crlNumbers, { issuing: '1' });
    f.crls.issuing = undefined;
    await assert.rejects(syncOnce(f.fx, { numbers: {} }, { force: false, why: 'x' }), /no CRL for its issuing CA/);
  });

  test('never goes back to an older CRL, nor accepts a CRL older than the one a revocation event named', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 5);
    f.crls.root = await crlPem('root', 2);
    const state = { numbers: {} };
    await syncOnce(f.fx, state, { force: false, why: 'x' });
    f.crls.issuing = await crlPem('issuing', 4, ['01']);
    await assert.rejects(syncOnce(f.fx, state, { force: false, why: 'x' }), /issuing CRL #4, older than #5/);
    f.crls.issuing = await crlPem('issuing', 6);
    await assert.rejects(syncOnce(f.fx, state, { force: false, why: 'x', expectCrlNumber: 7n }), /issuing CRL #6, but the revocation is listed from #7 on/);
    assert.equal(f.writes.length, 1);
    await syncOnce(f.fx, state, { force: false, why: 'x', expectCrlNumber: 6n });
    assert.equal(f.writes.length, 2);
  });

  test('RFC 5280 §5.1.2.5: a CRL past its nextUpdate is not applied (the gateway keeps the one it has) and is an error', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 5);
    f.crls.root = await crlPem('root', 2);
    const state = { numbers: {} };
    await syncOnce(f.fx, state, { force: false, why: 'x' });
    // The server's clock is two hours behind: the CRLs it makes now expired an hour ago here.
    const behind = new Date(NOW.getTime() - 2 * 3_600_000);
    f.crls.issuing = await crlPem('issuing', 6, ['0a01'], behind);
    await assert.rejects(syncOnce(f.fx, state, { force: true, why: 'x' }), /issuing CRL #6 whose nextUpdate 2026-03-01T11:00:00.000Z has passed \(it is 2026-03-01T12:00:00.000Z here\): the server's clock is behind or it is not regenerating/);
    assert.equal(f.writes.length, 1, 'nothing written');
    assert.equal(f.applied.length, 1, 'nothing applied');
    f.crls.issuing = await crlPem('issuing', 6, ['0a01']);
    f.crls.root = await crlPem('root', 2, [], behind);
    await assert.rejects(syncOnce(f.fx, state, { force: true, why: 'x' }), /root CRL #2 whose nextUpdate/);
    assert.equal(f.writes.length, 1);
  });

  test('backoff: 0.5 s doubling to 30 s, ±20% jitter', () => {
    assert.equal(backoffMs(0, () => 0.5), 500);
    assert.equal(backoffMs(3, () => 0.5), 4000);
    assert.equal(backoffMs(20, () => 0.5), 30_000);
    assert.equal(backoffMs(20, () => 0), 24_000);
    assert.equal(backoffMs(20, () => 1), 36_000);
  });
});

describe('gateway sync: the loop', () => {
  test('full sync on connect; a revocation or CRL update syncs at once; resumes from the last cursor on reconnect; retries failures', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 1);
    f.crls.root = await crlPem('root', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await f.until('the sync on connect', f.synced(1));
    assert.deepEqual(f.subscribes, [undefined]);
    assert.equal(f.writes.length, 1, 'synced on connect');

    // A revocation: the server regenerated the CRL before publishing it.
    f.crls.issuing = await crlPem('issuing', 2, ['beef']);
    const rev: GatewayEvent = { type: 'revocation', cursor: '12', deviceId: '00000000-0000-4000-8000-000000000001', crlNumber: '2', issuer: 'issuing', reason: 'keyCompromise', at: NOW.toISOString() };
    f.stream().onEvent(rev);
    await f.until('the sync after the revocation', f.synced(2));
    assert.equal(f.writes.length, 2);
    assert.match(f.writes[1]!, /BEGIN X509 CRL/);
    assert.match(f.logs.join('\n'), /issuing #2, root #1; 1 revoked serial\(s\)\) after revocation of 0{8}-/);

    // A revocation whose CRL is not served yet (a lagging replica): retried until it is.
    f.stream().onEvent({ ...rev, cursor: '13', crlNumber: '3' });
    await f.until('the stale CRL refused', f.logged(/CRL sync failed \(the server sent issuing CRL #2, but the revocation is listed from #3 on \(a replica that has not caught up\)\); retrying in 0\.5 s/));
    assert.equal(f.writes.length, 2, 'the stale CRL is not written');
    f.crls.issuing = await crlPem('issuing', 3, ['beef', 'cafe']);
    await f.until('a retry to apply CRL #3', f.synced(3));
    assert.equal(f.writes.length, 3);

    // The server goes away: reconnect with backoff, resume after the last cursor, full sync again.
    f.crls.issuing = new Error('ECONNREFUSED');
    f.stream().onClose('closed 1006');
    await f.until('the reconnect', () => f.opens() === 2);
    f.stream().onClose('ECONNREFUSED');
    await f.until('the second reconnect', () => f.opens() === 3);
    assert.ok(f.sleeps.includes(500) && f.sleeps.includes(1000), `backoff grows: ${f.sleeps.join(',')}`);
    f.crls.issuing = await crlPem('issuing', 4, ['beef', 'cafe']);
    f.stream().onOpen();
    await f.until('the full sync after the reconnect', f.synced(4));
    assert.deepEqual(f.subscribes, [undefined, '13']);
    assert.equal(f.writes.length, 4, 'full sync after the reconnect');

    sync.stop();
    await sync.done;
  });

  test('a CRL update and resync-required both sync', async () => {
    const f = fakes();
    f.crls.issuing = await crlPem('issuing', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await f.until('the sync on connect', f.synced(1));
    f.crls.issuing = await crlPem('issuing', 2);
    f.stream().onEvent({ type: 'crl-updated', cursor: '5', issuer: 'issuing', crlNumber: '2', url: '/crl.pem' });
    await f.until('the sync after crl-updated', f.synced(2));
    f.crls.issuing = await crlPem('issuing', 3);
    f.stream().onEvent({ type: 'resync-required', cursor: '9' });
    await f.until('the sync after resync-required', f.synced(3));
    assert.equal(f.writes.length, 3);
    assert.match(f.logs.join('\n'), /after issuing CRL #2/);
    assert.match(f.logs.join('\n'), /after resync-required/);
    sync.stop();
    await sync.done;
  });

  test('a CRL number the server never reaches holds the sync back only MAX_STALE_WAIT_MS; later CRLs are still applied', async () => {
    const f = fakes();
    let clock = 0;
    f.fx.now = () => (clock += 20_000); // each call moves 20 s (a failed try reads the clock twice)
    f.crls.issuing = await crlPem('issuing', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await f.until('the sync on connect', f.synced(1));
    f.crls.issuing = await crlPem('issuing', 2, ['0a01']);
    // Names a CRL number this server never reaches (a database restored from a backup).
    f.stream().onEvent({ type: 'revocation', cursor: '6', deviceId: '00000000-0000-4000-8000-000000000001', crlNumber: '90', issuer: 'issuing', reason: 'unspecified', at: NOW.toISOString() });
    await f.until('giving up on CRL #90', f.logged(/syncing without waiting for it/));
    await f.until('CRL #2 applied', f.synced(2));
    assert.match(f.logs.join('\n'), /issuing CRL still has not reached #90 after (6|8)0 s; syncing without waiting for it/);
    assert.equal(f.writes.length, 2, 'CRL #2 applied');
    f.crls.issuing = await crlPem('issuing', 3, ['0a01', '0c0c']);
    f.stream().onEvent({ type: 'revocation', cursor: '7', deviceId: '00000000-0000-4000-8000-000000000002', crlNumber: '3', issuer: 'issuing', reason: 'unspecified', at: NOW.toISOString() });
    await f.until('the next revocation applied', f.synced(3));
    assert.equal(f.writes.length, 3, 'the next revocation goes through at once');
    assert.doesNotMatch(f.logs.slice(f.logs.findIndex((l) => /syncing without waiting/.test(l)) + 1).join('\n'), /CRL sync failed/, 'no failure after it stopped waiting');
    sync.stop();
    await sync.done;
  });

  test('a revocation already in the applied CRL (its crl-updated came first) fetches nothing; one that is not does', async () => {
    const f = fakes();
    let fetches = 0;
    const fetchCrl = f.fx.fetchCrl;
    f.fx.fetchCrl = async (issuer) => {
      fetches++;
      return fetchCrl(issuer);
    };
    f.crls.issuing = await crlPem('issuing', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await f.until('the sync on connect', f.synced(1));
    f.crls.issuing = await crlPem('issuing', 2, ['0a01']);
    f.stream().onEvent({ type: 'crl-updated', cursor: '5', issuer: 'issuing', crlNumber: '2', url: '/crl.pem' });
    await f.until('CRL #2 applied', f.synced(2));
    const after = fetches;
    f.stream().onEvent({ type: 'revocation', cursor: '6', deviceId: '00000000-0000-4000-8000-000000000001', crlNumber: '2', issuer: 'issuing', reason: 'unspecified', at: NOW.toISOString() });
    await f.until('the revocation handled', f.logged(/revocation of 00000000-0000-4000-8000-000000000001: already in the applied CRL/));
    assert.equal(fetches, after, 'nothing fetched');
    // The usual order on the wire: crl-updated, then at once the revocation, while the first fetch is still running.
    f.crls.issuing = await crlPem('issuing', 3, ['0a01', '0a03']);
    const before = fetches;
    f.stream().onEvent({ type: 'crl-updated', cursor: '6a', issuer: 'issuing', crlNumber: '3', url: '/crl.pem' });
    f.stream().onEvent({ type: 'revocation', cursor: '6b', deviceId: '00000000-0000-4000-8000-000000000003', crlNumber: '3', issuer: 'issuing', reason: 'unspecified', at: NOW.toISOString() });
    await f.until('CRL #3 applied and the revocation handled', () => f.synced(3)() && f.logged(/revocation of 00000000-0000-4000-8000-000000000003: already in the applied CRL/)());
    assert.equal(fetches - before, 2, 'one sync (issuing and root CRLs), not two');
    f.crls.issuing = await crlPem('issuing', 4, ['0a01', '0a02', '0a03']);
    f.stream().onEvent({ type: 'revocation', cursor: '7', deviceId: '00000000-0000-4000-8000-000000000002', crlNumber: '4', issuer: 'issuing', reason: 'unspecified', at: NOW.toISOString() });
    await f.until('CRL #4 applied', f.synced(4));
    assert.ok(fetches > after, 'a CRL number not applied yet is fetched');
    assert.equal(f.writes.length, 4);
    sync.stop();
    await sync.done;
  });
});

describe('gateway sync: failures are loud, a refused token is fatal', () => {
  test('an expired CRL in the loop: an error on every retry, with backoff, until the server sends a fresh one', async () => {
    const f = fakes();
    const statuses: SyncStatus[] = [];
    f.fx.status = (s) => {
      statuses.push(s);
      f.changed();
    };
    f.crls.issuing = await crlPem('issuing', 1, [], new Date(NOW.getTime() - 2 * 3_600_000));
    f.crls.root = await crlPem('root', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await f.until('three failed tries', () => f.logs.filter((l) => l.startsWith('error: CRL sync failed')).length >= 3);
    assert.ok(f.logs.filter((l) => /^error: CRL sync failed \(the server sent issuing CRL #1 whose nextUpdate .* has passed/.test(l)).length >= 3, f.logs.join('\n'));
    assert.equal(f.writes.length, 0);
    assert.ok(f.sleeps.includes(500) && f.sleeps.includes(1000), `backoff: ${f.sleeps.join(',')}`);
    // --status-file: failing since the first try, with the error, nothing applied yet.
    assert.deepEqual({ ...statuses[0], error: statuses[0]!.error!.slice(0, 40) }, { state: 'failing', at: NOW.toISOString(), applied: {}, failingSince: NOW.toISOString(), error: 'the server sent issuing CRL #1 whose nex' });
    f.crls.issuing = await crlPem('issuing', 2);
    await f.until('the fresh CRL applied', () => f.applied.length === 1 && statuses.at(-1)?.state === 'ok');
    assert.equal(f.writes.length, 1);
    assert.deepEqual(statuses.at(-1), { state: 'ok', at: NOW.toISOString(), applied: { issuing: '2', root: '1' }, lastSuccessAt: NOW.toISOString() });
    sync.stop();
    await sync.done;
  });

  test('HTTP 401/403 on the event stream upgrade stops the loop: done rejects with GatewayAuthError, no reconnect', async () => {
    const f = fakes();
    const statuses: SyncStatus[] = [];
    f.fx.status = (s) => statuses.push(s);
    f.crls.issuing = await crlPem('issuing', 1);
    const sync = runGatewaySync(f.fx, { resyncSeconds: 60 });
    f.stream().onClose('HTTP 401: the gateway token is not valid', true);
    await assert.rejects(sync.done, (e: Error) => e instanceof GatewayAuthError && /refused the gateway token \(event stream: HTTP 401: the gateway token is not valid\); create one with `latchkey-server gateway token create/.test(e.message));
    assert.equal(f.opens(), 1, 'not retried');
    assert.match(f.logs.join('\n'), /^error: the server refused the gateway token/m);
    assert.equal(statuses.at(-1)?.state, 'stopped');
  });

  test('HTTP 401/403 on a CRL fetch is fatal too', async () => {
    const f = fakes();
    f.crls.issuing = new GatewayAuthError('GET /crl.pem: HTTP 403');
    const sync = runGatewaySync(f.fx, { resyncSeconds: 0 });
    f.stream().onOpen();
    await assert.rejects(sync.done, GatewayAuthError);
    assert.equal(f.writes.length, 0);
  });
});

describe('gateway sync: files and HAProxy', () => {
  test('the CRL file is replaced atomically and no temp file is left', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lk-gw-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'crl.pem');
    writeFileSync(file, 'old');
    await writeFileAtomic(file, 'new content\n');
    assert.equal(readFileSync(file, 'utf8'), 'new content\n');
    assert.deepEqual(readdirSync(dir), ['crl.pem']);
  });

  test('HAProxy runtime API framing: "set ssl crl-file F <<", the PEM lines, an empty line; then "commit ssl crl-file F"', async (t) => {
    const pem = (await crlPem('issuing', 1)) + '\n' + (await crlPem('root', 1));
    const cmd = haproxySetCrlCommand('/etc/haproxy/crl.pem', pem);
    assert.ok(cmd.startsWith('set ssl crl-file /etc/haproxy/crl.pem <<\n-----BEGIN X509 CRL-----\n'));
    assert.ok(cmd.endsWith('-----END X509 CRL-----\n\n'));
    assert.ok(!cmd.slice(0, -2).includes('\n\n'), 'no empty line inside the payload (it would end it)');

    // A fake stats socket: one command per connection, as HAProxy's non-interactive mode.
    const dir = mkdtempSync(join(tmpdir(), 'lk-hap-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const sock = join(dir, 'admin.sock');
    const seen: string[] = [];
    const srv = createServer((c) => {
      let buf = '';
      c.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.startsWith('set ') ? buf.endsWith('\n\n') : buf.endsWith('\n')) {
          seen.push(buf);
          c.end(buf.startsWith('set ') ? 'transaction created for CRL /etc/haproxy/crl.pem!\n\n' : 'Committing /etc/haproxy/crl.pem.\nSuccess!\n\n');
        }
      });
    });
    await new Promise<void>((r) => srv.listen(sock, r));
    t.after(() => srv.close());
    await haproxyUpdateCrl(sock, '/etc/haproxy/crl.pem', pem);
    assert.deepEqual(seen, [cmd, 'commit ssl crl-file /etc/haproxy/crl.pem\n']);
  });

  test('a real HAProxy 2.6 takes the new CRLs over its runtime API', { timeout: 30_000 }, async (t) => {
    if (spawnSync('sh', ['-c', 'command -v haproxy && command -v openssl']).status !== 0) {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error('haproxy and openssl are required because LATCHKEY_REQUIRE_ALL=1');
      t.skip('haproxy or openssl missing (apt-get install haproxy openssl)');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'lk-hap-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const h = await ca();
    writeFileSync(join(dir, 'ca.pem'), certificateToPem(h.issuing.cert.der) + certificateToPem(h.root.der));
    const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-subj', '/CN=gw', '-days', '2'], { cwd: dir });
    assert.equal(gen.status, 0, gen.stderr.toString());
    writeFileSync(join(dir, 'srv.pem'), readFileSync(join(dir, 'c.pem'), 'utf8') + readFileSync(join(dir, 'k.pem'), 'utf8'));
    const crlFile = join(dir, 'crl.pem');
    writeFileSync(crlFile, (await crlPem('issuing', 1)) + (await crlPem('root', 1)));
    const port = await new Promise<number>((r) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => r(p));
      });
    });
    const sock = join(dir, 'admin.sock');
    writeFileSync(
      join(dir, 'haproxy.cfg'),
      `global\n  stats socket ${sock} mode 600 level admin\n  tune.bufsize 65536\ndefaults\n  mode http\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\nfrontend fe\n  bind 127.0.0.1:${port} ssl crt ${dir}/srv.pem ca-file ${dir}/ca.pem crl-file ${crlFile} verify required\n  http-request return status 200\n`,
    );
    const p = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    p.stderr.on('data', (d: Buffer) => (log += d.toString()));
    t.after(() => p.kill('SIGKILL'));
    const end = Date.now() + 10_000;
    while (!(await haproxyCommand(sock, 'show info\n').then(() => true, () => false))) {
      assert.ok(Date.now() < end && p.exitCode === null, `haproxy did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Large enough to need more than the default 16 kB buffer.
    const serials = Array.from({ length: 600 }, () => crypto.randomBytes(16).toString('hex').replace(/^0+/, '1'));
    const bundle = (await crlPem('issuing', 2, serials)) + (await crlPem('root', 2));
    assert.ok(bundle.length > 16_384);
    await haproxyUpdateCrl(sock, crlFile, bundle);
    const shown = await haproxyCommand(sock, `show ssl crl-file ${crlFile}:1\n`);
    assert.match(shown, new RegExp(serials[0]!.toUpperCase()));
    assert.match(shown, new RegExp(serials[599]!.toUpperCase()));
  });
});
