/**
 * A full disk under the SQLite database, for real: the data dir on a small
 * tmpfs, filled to the last byte while latchkey-server runs. Enrollments get
 * 503 STORAGE_FULL and change nothing (the token is not used up, no device
 * appears); the log says "disk full" once, never SQLite's "cannot rollback";
 * with space freed the same token enrolls. Mounting needs root: skipped
 * otherwise, failed under LATCHKEY_REQUIRE_ALL=1.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { appendFileSync, chmodSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCsr, nodeSigner } from '@latchkey/pki';
import { cli, initServer, requireTools, run, startServer, tempDir } from './support/processes.js';

function needRoot(t: { skip(m?: string): void }): boolean {
  if (process.getuid?.() === 0) return true;
  const msg = 'needs root to mount a small tmpfs for the data dir (run as root, e.g. in the CI container)';
  if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
  t.skip(msg);
  return false;
}

/** Writes until the filesystem has not one byte left. */
function fill(file: string): void {
  for (const chunk of [1 << 16, 1 << 12, 1 << 9, 1]) {
    const buf = Buffer.alloc(chunk, 0x55);
    for (;;) {
      try {
        appendFileSync(file, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
  }
}

describe('latchkey-server on a full disk (SQLite on a real tmpfs)', () => {
  test('enrollment answers 503 STORAGE_FULL and changes nothing; the log says "disk full" once; with space freed the same token enrolls', { timeout: 180_000 }, async (t) => {
    if (!needRoot(t) || !requireTools(t, 'curl', 'mount', 'umount')) return;
    const { dataDir: made, port } = await initServer(t);
    const dataDir = mkdtempSync(join(tmpdir(), 'latchkey-full-'));
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dataDir], { encoding: 'utf8' });
    if (mounted.status !== 0) rmSync(dataDir, { recursive: true, force: true });
    assert.equal(mounted.status, 0, `mount -t tmpfs failed: ${mounted.stderr}`);
    let stopServer = async (): Promise<unknown> => undefined;
    t.after(async () => {
      await stopServer();
      spawnSync('umount', ['-l', dataDir]);
      rmSync(dataDir, { recursive: true, force: true });
    });
    cpSync(made, dataDir, { recursive: true });
    chmodSync(dataDir, 0o700);
    const server = await startServer(t, dataDir, port);
    stopServer = () => server.stop('SIGKILL');
    const tok = await cli(['token', 'create', '--uses', '10', '--data-dir', dataDir, '--json']);
    assert.equal(tok.code, 0, tok.stderr);
    const { token, info } = JSON.parse(tok.stdout) as { token: string; info: { id: string } };
    const work = tempDir(t);

    const enroll = async (i: number): Promise<{ status: number; body: string; retryAfter: string | undefined }> => {
      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const csr = await createCsr({ subject: [{ type: 'CN', value: `laptop-${i}` }], signer: nodeSigner(key) });
      writeFileSync(join(work, `csr-${i}.b64`), csr.toString('base64'));
      const r = await run('curl', ['-s', '-D', '-', '-w', '\n%{http_code}', '--cacert', join(dataDir, 'root.crt.pem'), '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@csr-${i}.b64`, `${server.url}/.well-known/est/simpleenroll`], { cwd: work });
      const status = Number(r.stdout.slice(r.stdout.lastIndexOf('\n') + 1));
      return { status, body: r.stdout, retryAfter: /^retry-after: *(\S+)/im.exec(r.stdout)?.[1] };
    };

    fill(join(dataDir, 'filler'));
    const refused = [];
    for (let i = 0; i < 4; i++) refused.push(await enroll(i));
    for (const r of refused) {
      assert.equal(r.status, 503, r.body);
      assert.match(r.body, /"code":"STORAGE_FULL"/);
      assert.match(r.body, /storage is full, so nothing was changed/);
      assert.equal(r.retryAfter, '60');
    }
    // The operator's view: one clear line, not one per request, and not SQLite's rollback noise.
    assert.equal(server.log().match(/disk full/g)?.length, 1, server.log());
    assert.match(server.log(), /disk full: the database .*latchkey\.db cannot be written .*Free space on that volume/);
    assert.doesNotMatch(server.log(), /cannot rollback|no transaction is active/);

    rmSync(join(dataDir, 'filler'));
    const ok = await enroll(9);
    assert.equal(ok.status, 200, ok.body);
    assert.match(server.log(), /disk space is back/);
    // Nothing half-written while full: the token counts one use, there is one device.
    const tokens = JSON.parse((await cli(['token', 'list', '--data-dir', dataDir, '--json'])).stdout) as { items: { id: string; usedCount: number }[] };
    assert.equal(tokens.items.find((x) => x.id === info.id)?.usedCount, 1);
    const devices = JSON.parse((await cli(['devices', 'list', '--data-dir', dataDir, '--json'])).stdout) as { items: { name: string }[] };
    assert.deepEqual(devices.items.map((d) => d.name), ['laptop-9']);
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});
