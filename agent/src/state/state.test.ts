import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentError } from '../errors.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import { readIdentity } from './identity.js';
import { acquireStateLock } from './lock.js';
import { defaultStateDir, keyNamespace, resolveStateDir } from './paths.js';

const dir = (t: { after: (f: () => void) => void }): string => {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-state-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

test('state dir: system-wide for the service, per user otherwise, on each platform; flag and env override', () => {
  const home = '/home/ana';
  assert.equal(defaultStateDir({ platform: 'linux', env: {}, home, system: true }), '/var/lib/latchkey');
  assert.equal(defaultStateDir({ platform: 'linux', env: {}, home, system: false }), '/home/ana/.local/state/latchkey');
  assert.equal(defaultStateDir({ platform: 'linux', env: { XDG_STATE_HOME: '/x/state' }, home, system: false }), '/x/state/latchkey');
  assert.equal(defaultStateDir({ platform: 'darwin', env: {}, home: '/Users/ana', system: true }), '/Library/Application Support/Latchkey');
  assert.equal(defaultStateDir({ platform: 'darwin', env: {}, home: '/Users/ana', system: false }), '/Users/ana/Library/Application Support/Latchkey');
  assert.match(defaultStateDir({ platform: 'win32', env: { ProgramData: 'C:\\ProgramData' }, home: 'C:\\Users\\ana', system: true }), /^C:\\ProgramData[\\/]Latchkey$/);
  assert.match(defaultStateDir({ platform: 'win32', env: { LOCALAPPDATA: 'C:\\Users\\ana\\AppData\\Local' }, home: 'C:\\Users\\ana', system: false }), /AppData\\Local[\\/]Latchkey$/);
  const p = { platform: 'linux' as const, env: { LATCHKEY_STATE_DIR: '/env/dir' }, home, system: false };
  assert.equal(resolveStateDir(undefined, p), '/env/dir');
  assert.equal(resolveStateDir('/flag/dir', p), '/flag/dir');
});

test('key namespaces differ per state dir and are stable', () => {
  assert.equal(keyNamespace('/a/b'), keyNamespace('/a/b/'));
  assert.notEqual(keyNamespace('/a/b'), keyNamespace('/a/c'));
  assert.match(keyNamespace('/a/b'), /^[0-9a-f]{16}$/);
});

test('atomic write: the new content or the old, mode as asked, no temp file left', async (t) => {
  const d = dir(t);
  const f = join(d, 'identity.json');
  await writeFileAtomic(f, 'one', { mode: 0o600 });
  await writeFileAtomic(f, 'two', { mode: 0o600 });
  assert.equal(readFileSync(f, 'utf8'), 'two');
  assert.equal(statSync(f).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(d), ['identity.json']);
  await assert.rejects(writeFileAtomic(join(d, 'missing-dir', 'x'), 'y'));
  assert.deepEqual(readdirSync(d), ['identity.json']);
});

test('atomic write, synchronous (native addon cache): same steps, same result', (t) => {
  const d = dir(t);
  const f = join(d, 'addon.node');
  writeFileAtomicSync(f, Buffer.from('one'), { mode: 0o500 });
  assert.equal(statSync(f).mode & 0o777, 0o500, 'a read-only file is replaced by rename, never rewritten');
  writeFileAtomicSync(f, Buffer.from('two'), { mode: 0o500 });
  assert.equal(readFileSync(f, 'utf8'), 'two');
  assert.deepEqual(readdirSync(d), ['addon.node']);
  assert.throws(() => writeFileAtomicSync(join(d, 'missing-dir', 'x'), Buffer.from('y')));
  assert.deepEqual(readdirSync(d), ['addon.node']);
});

test('lock: a second taker waits and then fails clearly; the lock is free again after release', async (t) => {
  const d = dir(t);
  const release = await acquireStateLock(d);
  await assert.rejects(acquireStateLock(d, { waitMs: 300 }), (e: unknown) => e instanceof AgentError && e.code === 'STATE_LOCKED' && e.message.includes(String(process.pid)));
  await release();
  const again = await acquireStateLock(d, { waitMs: 300 });
  await again();
  assert.equal(existsSync(join(d, 'lock')), false);
});

test('lock: a lock left by a dead process (kill -9) is taken over; waiters get it in turn', async (t) => {
  const d = dir(t);
  // A process that exits at once leaves its pid behind: a stale lock.
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  await new Promise((r) => child.on('exit', r));
  writeFileSync(join(d, 'lock'), `${pid} deadbeefdeadbeef\n`);
  const release = await acquireStateLock(d, { waitMs: 1000 });
  assert.match(readFileSync(join(d, 'lock'), 'utf8'), new RegExp(`^${process.pid} `));
  const order: number[] = [];
  const waiter = (n: number) => acquireStateLock(d, { waitMs: 5000 }).then(async (rel) => {
    order.push(n);
    await rel();
  });
  const w = Promise.all([waiter(1), waiter(2)]);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(order, [], 'waiters wait while the lock is held');
  await release();
  await w;
  assert.deepEqual(order.sort(), [1, 2]);
  assert.deepEqual(readdirSync(d), [], 'no lock or stale leftovers');
});

test('identity: a damaged identity.json is a clear error that says what to do', async (t) => {
  const d = dir(t);
  assert.equal(await readIdentity(d), undefined);
  writeFileSync(join(d, 'identity.json'), '{"version":1,');
  await assert.rejects(readIdentity(d), /not valid JSON; restore it from a backup or run `latchkey unenroll`/);
  writeFileSync(join(d, 'identity.json'), '{"version":1}');
  await assert.rejects(readIdentity(d), /not a latchkey identity/);
});
