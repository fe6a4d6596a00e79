import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LockBusyError, isStaleLock, withLockFile } from './lock-file.js';

const tmp = (t: { after(fn: () => unknown): void }): string => {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-lock-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

describe('lock file', () => {
  test('stale: a holder of this host that is gone, a malformed lock, or one older than staleMs; never a live holder or another host within staleMs', () => {
    const here = { host: 'h1', alive: (pid: number) => pid === 42 };
    assert.equal(isStaleLock('42 h1 n', 1000, 60_000, here), false);
    assert.equal(isStaleLock('43 h1 n', 1000, 60_000, here), true);
    assert.equal(isStaleLock('43 h2 n', 1000, 60_000, here), false, 'another host: only age tells');
    assert.equal(isStaleLock('43 h2 n', 61_000, 60_000, here), true);
    assert.equal(isStaleLock('42 h1 n', 61_000, 60_000, here), true, 'a holder that hangs past staleMs loses it');
    assert.equal(isStaleLock('garbage', 1000, 60_000, here), true);
    assert.equal(isStaleLock('', 1000, 60_000, here), false, 'half written: wait');
  });

  test('one holder at a time; the lock file is gone afterwards, also when fn throws', async (t) => {
    const path = join(tmp(t), 'x.lock');
    const order: string[] = [];
    const hold = (name: string, ms: number) =>
      withLockFile(path, async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`${name}-`);
      });
    await Promise.all([hold('a', 100), hold('b', 10), hold('c', 10)]);
    assert.deepEqual(order.filter((_, i) => i % 2 === 0).map((s) => s[0]), order.filter((_, i) => i % 2 === 1).map((s) => s[0]), `never interleaved: ${order.join(' ')}`);
    assert.equal(existsSync(path), false);
    await assert.rejects(withLockFile(path, () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(existsSync(path), false);
  });

  test('a lock left by a dead process (kill -9) or too old is taken over; a live one makes the waiter give up after waitMs', async (t) => {
    const path = join(tmp(t), 'x.lock');
    writeFileSync(path, `999999999 ${hostname()} dead`);
    assert.equal(await withLockFile(path, async () => 'took over dead'), 'took over dead');
    writeFileSync(path, `1 other-host old`);
    const old = new Date(Date.now() - 120_000);
    utimesSync(path, old, old);
    assert.equal(await withLockFile(path, async () => 'took over old'), 'took over old');
    writeFileSync(path, `${process.pid} ${hostname()} live`);
    await assert.rejects(withLockFile(path, async () => 'never', { waitMs: 200 }), (e: Error) => e instanceof LockBusyError && e.message.includes(`pid ${process.pid}`));
    assert.equal(readFileSync(path, 'utf8'), `${process.pid} ${hostname()} live`, 'a live holder keeps its lock');
  });
});
