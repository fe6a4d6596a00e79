/**
 * The CLI's session file: where it lives, its modes, atomic replacement, the
 * refusals (a file others can read, a damaged or foreign file), and changes
 * by several processes at once losing nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { entry } from '../testing/session-fixtures.js';
import { configDir, serverOrigin, SessionFileError, sessionStore } from './session-store.js';

const dirOf = (t: { after(fn: () => unknown): void }): string => {
  const d = mkdtempSync(join(tmpdir(), 'latchkey-sessions-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return join(d, 'config', 'latchkey-server');
};


const mode = (p: string): number => statSync(p).mode & 0o777;

describe('CLI session store', () => {
  test('lives in the user config dir of each platform (XDG_CONFIG_HOME when absolute)', () => {
    assert.equal(configDir({}, 'linux', '/home/ada'), '/home/ada/.config/latchkey-server');
    assert.equal(configDir({ XDG_CONFIG_HOME: '/xdg' }, 'linux', '/home/ada'), '/xdg/latchkey-server');
    assert.equal(configDir({ XDG_CONFIG_HOME: 'relative' }, 'linux', '/home/ada'), '/home/ada/.config/latchkey-server', 'a relative XDG_CONFIG_HOME is ignored, as the XDG spec says');
    assert.equal(configDir({}, 'darwin', '/Users/ada'), '/Users/ada/Library/Application Support/latchkey-server');
    assert.equal(configDir({ APPDATA: 'C:\\Users\\ada\\AppData\\Roaming' }, 'win32', 'C:\\Users\\ada'), 'C:\\Users\\ada\\AppData\\Roaming\\latchkey-server');
  });

  test('entries are keyed by the server origin: scheme, lower-case host, port without the default; https only', () => {
    assert.equal(serverOrigin('https://Latchkey.Example.COM:443/some/path?x=1'), 'https://latchkey.example.com');
    assert.equal(serverOrigin('https://127.0.0.1:8443'), 'https://127.0.0.1:8443');
    assert.equal(serverOrigin('https://[::1]:8443/'), 'https://[::1]:8443');
    assert.throws(() => serverOrigin('http://latchkey.example.com'), /must be https:\/\/HOST:PORT/);
    assert.throws(() => serverOrigin('latchkey.example.com'), /is not a URL/);
  });

  test('dir 0700, file 0600; put replaces, remove of the last entry removes the file', async (t) => {
    const dir = dirOf(t);
    const store = sessionStore(dir);
    assert.deepEqual(await store.list(), [], 'no file: no sessions');
    await store.locked(() => store.put(entry('https://a.example.com')));
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(store.file), 0o600);
    await store.locked(() => store.put(entry('https://b.example.com:8443', 2)));
    const replaced = await store.locked(() => store.put(entry('https://a.example.com', 3)));
    assert.equal(replaced?.session.token, entry('', 1).session.token, 'put answers the entry it replaced');
    assert.equal((await store.get('https://a.example.com'))?.session.token, entry('', 3).session.token);
    assert.deepEqual((await store.list()).map((e) => e.server).sort(), ['https://a.example.com', 'https://b.example.com:8443']);
    assert.equal(mode(store.file), 0o600);
    await store.locked(() => store.remove('https://a.example.com'));
    assert.deepEqual((await store.list()).map((e) => e.server), ['https://b.example.com:8443']);
    await store.locked(() => store.remove('https://b.example.com:8443'));
    assert.deepEqual(readdirSync(dir), [], 'neither the file, nor a lock, nor a temp file is left');
  });

  test('written atomically: a new file renamed over the old, read whole at every moment, no temp file left', async (t) => {
    const dir = dirOf(t);
    const store = sessionStore(dir);
    await store.locked(() => store.put(entry('https://a.example.com')));
    const ino = statSync(store.file).ino;
    await store.locked(() => store.put(entry('https://a.example.com', 2)));
    // The new file exists beside the old until the rename: it cannot have the old one's inode.
    assert.notEqual(statSync(store.file).ino, ino, 'replaced by rename, not rewritten in place');
    let writing = true;
    let reads = 0;
    const reader = (async () => {
      while (writing) {
        // Every read between the steps of a write sees the old file or the new one, never a part.
        const all = await store.list();
        assert.equal(all.length, 1);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 3; i < 60; i++) await store.locked(() => store.put(entry('https://a.example.com', i)));
    writing = false;
    await reader;
    assert.ok(reads > 10, `the reader ran alongside (${reads} reads)`);
    assert.deepEqual(readdirSync(dir), ['sessions.json']);
    assert.equal((await store.get('https://a.example.com'))?.session.token, entry('', 59).session.token);
  });

  test('a file others can read is refused, naming it and the fix; logout may still read it, and rewriting makes it 0600', async (t) => {
    const dir = dirOf(t);
    const store = sessionStore(dir);
    await store.locked(() => store.put(entry('https://a.example.com')));
    await store.locked(() => store.put(entry('https://b.example.com', 2)));
    for (const m of [0o644, 0o640, 0o606]) {
      chmodSync(store.file, m);
      await assert.rejects(store.get('https://a.example.com'), (e: Error) => {
        assert.ok(e instanceof SessionFileError && e.kind === 'shared');
        assert.equal(e.message, `${store.file} can be read or written by other users (mode 0${m.toString(8)}): the sessions in it may have leaked; run \`chmod 600 ${store.file}\` and, if others could read it, \`latchkey-server logout\``);
        return true;
      });
    }
    assert.equal((await store.get('https://a.example.com', { evenIfShared: true }))?.server, 'https://a.example.com');
    await store.locked(() => store.remove('https://a.example.com', { evenIfShared: true }));
    assert.equal(mode(store.file), 0o600);
    assert.deepEqual((await store.list()).map((e) => e.server), ['https://b.example.com']);
  });

  test('a damaged, foreign or newer file is refused with the file named and how to clear it', async (t) => {
    const dir = dirOf(t);
    const store = sessionStore(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const cases: [string, RegExp][] = [
      ['{"version":1,"sessions":{', /is not valid JSON \(damaged\?\)/],
      ['', /is not valid JSON/],
      ['{"version":2,"sessions":{}}', /has version 2, which this latchkey-server does not know/],
      [JSON.stringify({ version: 1, sessions: { 'https://a.example.com': { ...entry('https://a.example.com'), session: { token: 'x' } } } }), /is not a latchkey-server session file this version can read/],
      [JSON.stringify({ version: 1, sessions: { 'https://a.example.com': entry('https://evil.example.com') } }), /has an entry for https:\/\/a\.example\.com that names https:\/\/evil\.example\.com/],
      ['[]', /is not a latchkey-server session file/],
    ];
    for (const [text, why] of cases) {
      writeFileSync(store.file, text, { mode: 0o600 });
      await assert.rejects(store.list(), (e: Error) => {
        assert.ok(e instanceof SessionFileError && e.kind === 'unreadable', text);
        assert.match(e.message, why);
        assert.ok(e.message.startsWith(store.file), 'names the file');
        assert.match(e.message, new RegExp(`\`latchkey-server logout\` \\(it removes the file\\) or delete ${store.file.replace(/[.]/g, '\\.')}, then sign in again with \`latchkey-server login --server URL\``));
        return true;
      });
    }
    rmSync(store.file);
    symlinkSync('/etc/passwd', store.file);
    await assert.rejects(store.list(), /is not a regular file/);
    await store.discard();
    assert.deepEqual(await store.list(), []);
  });

  test('several processes adding their server at once: every entry is kept (the lock serializes read-modify-write)', async (t) => {
    const dir = dirOf(t);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const go = join(dir, '..', 'go');
    const mod = fileURLToPath(new URL('./session-store.js', import.meta.url));
    const entryJson = (i: number): string => JSON.stringify(entry(`https://s${i}.example.com`, i));
    const script = `import { existsSync } from 'node:fs'; import { sessionStore } from ${JSON.stringify(mod)};
      const s = sessionStore(process.argv[1]);
      while (!existsSync(process.argv[2])) await new Promise((r) => setTimeout(r, 5));
      for (let k = 0; k < 5; k++) { const e = JSON.parse(process.argv[3]); e.session.token = e.session.token.slice(0, -1) + k; await s.locked(() => s.put(e)); }`;
    const n = 6;
    const procs = Array.from({ length: n }, (_, i) =>
      new Promise<number | null>((resolve) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', script, dir, go, entryJson(i)], { stdio: ['ignore', 'ignore', 'inherit'] });
        p.on('exit', (code) => resolve(code));
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(go, '');
    assert.deepEqual(await Promise.all(procs), Array(n).fill(0));
    const all = await sessionStore(dir).list();
    assert.deepEqual(all.map((e) => e.server).sort(), Array.from({ length: n }, (_, i) => `https://s${i}.example.com`).sort());
    assert.ok(all.every((e) => e.session.token.endsWith('4')), 'each process’s last write is there');
    assert.deepEqual(readdirSync(dir), ['sessions.json']);
    assert.ok(readFileSync(join(dir, 'sessions.json'), 'utf8').endsWith('}\n'));
  });
});
