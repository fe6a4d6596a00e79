import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { keystoreConformance } from './keystore-conformance.js';
import { KeystoreError, type KeystoreErrorCode } from './keystore.js';
import { startKeyring, startPrivateBus } from '../../test-support/dist/keyring-fixture.js';
import { classifyKeytarError, createOsKeyStore, type KeytarLike, osKeystoreService } from './os-keystore.js';
import { type SecretBackend, type SecretBackendName, SECRET_BACKENDS, chosenBackend, loadSecretBackend } from './secret-backend.js';

const run = promisify(execFile);

// One keyring for this process (libsecret cannot switch buses): started now, stopped after the file.
const keyring = startKeyring({ after });
const NS = `test-${crypto.randomBytes(6).toString('hex')}`;

/** The keyring, or a skip / failure (LATCHKEY_REQUIRE_ALL=1) naming what is missing. */
async function needKeyring(t: TestContext): Promise<{ address: string; home?: string } | undefined> {
  const k = await keyring;
  if (typeof k !== 'string') return k;
  if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(`os keystore unavailable: ${k}`);
  t.skip(`os keystore unavailable: ${k}`);
  return undefined;
}

/** The binding LATCHKEY_OS_KEYRING=<name> selects, as the agent loads it. */
const binding = (name: SecretBackendName): Promise<SecretBackend> => loadSecretBackend({ LATCHKEY_OS_KEYRING: name });

// The same conformance suite on each binding: the cross-built agents (win, darwin, linux-arm64) run on napi.
for (const name of SECRET_BACKENDS) {
  keystoreConformance('os', async () => {
    const k = await keyring;
    if (typeof k === 'string') return k;
    const backend = await binding(name);
    assert.equal(backend.name, name);
    return {
      open: async () => createOsKeyStore({ namespace: `${NS}-${name}`, backend }),
      openOther: async () => createOsKeyStore({ namespace: `${NS}-${name}-other`, backend }),
      extractable: true,
    };
  }, {}, ` (${name} binding)`);
}

/** Every run of a PEM body long enough to identify the key: none may appear in a message. */
function assertNoKeyMaterial(text: string, pem: string): void {
  assert.doesNotMatch(text, /-----BEGIN|PRIVATE KEY/);
  for (const line of pem.split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'))) {
    for (let i = 0; i + 16 <= line.length; i += 8) assert.ok(!text.includes(line.slice(i, i + 16)), 'a piece of the private key appears in an error message');
  }
}

describe('os keystore: the key lives only in the Secret Service', () => {
  test('the stored item is the PKCS#8 key of the DeviceKey, as secret-tool (libsecret) reads it independently; no file holds it in the clear', async (t) => {
    const kr = await needKeyring(t);
    if (!kr) return;
    const s = createOsKeyStore({ namespace: NS });
    const k = await s.generate('P-384');
    try {
      const { stdout } = await run('secret-tool', ['lookup', 'service', osKeystoreService(NS), 'account', k.ref.id]);
      const key = crypto.createPrivateKey(stdout);
      assert.deepEqual(crypto.createPublicKey(key).export({ type: 'spki', format: 'der' }), k.spki);
      const tk = await k.tlsKey();
      assert.equal(tk.kind, 'pem');
      if (kr.home) {
        // The keyring daemon's HOME holds only its encrypted keyring files.
        const body = (tk as { key: string }).key.split('\n')[1]!;
        const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
        const files = walk(kr.home);
        assert.ok(files.some((f) => f.endsWith('login.keyring')), `keyring files: ${files.join(', ')}`);
        for (const f of files) assert.ok(!readFileSync(f).includes(body), `${f} holds the key in the clear`);
      }
    } finally {
      await s.delete(k.ref);
    }
    assert.equal(await s.load(k.ref), undefined);
  });

  test('a damaged stored key is KEY_CORRUPT, and the message quotes none of it', async (t) => {
    if (!(await needKeyring(t))) return;
    const keytar = createRequire(import.meta.url)('keytar') as KeytarLike;
    const s = createOsKeyStore({ namespace: NS });
    const good = await s.generate();
    const pem = ((await good.tlsKey()) as { key: string }).key;
    const ref = { keystore: 'os' as const, id: `lk-${crypto.randomBytes(12).toString('hex')}` };
    try {
      await keytar.setPassword(osKeystoreService(NS), ref.id, pem.slice(0, 120)); // truncated PEM
      await assert.rejects(s.load(ref), (e: unknown) => {
        assert.ok(e instanceof KeystoreError);
        assert.equal(e.code, 'KEY_CORRUPT');
        assert.match(e.message, new RegExp(`${ref.id}.*delete it and enroll again`));
        assertNoKeyMaterial(`${e.message}\n${String((e.cause as Error | undefined)?.message ?? '')}\n${e.stack ?? ''}`, pem);
        return true;
      });
    } finally {
      await s.delete(ref);
      await s.delete(good.ref);
    }
  });

  test('refs of another keystore or with a malformed id are not looked up', async (t) => {
    if (!(await needKeyring(t))) return;
    const s = createOsKeyStore({ namespace: NS });
    assert.equal(await s.load({ keystore: 'file', id: 'lk-0123456789abcdef0123' }), undefined);
    assert.equal(await s.load({ keystore: 'os', id: '../etc/passwd' }), undefined);
    assert.throws(() => createOsKeyStore({ namespace: 'a:b' }), /invalid os keystore namespace/);
  });
});

describe('os keystore: the two bindings (keytar, @napi-rs/keyring) on the same Secret Service', () => {
  test('LATCHKEY_OS_KEYRING picks the binding; unset is keytar where it loads; anything else is refused with what to set', async () => {
    assert.equal((await loadSecretBackend({})).name, 'keytar');
    assert.equal((await loadSecretBackend({ LATCHKEY_OS_KEYRING: 'napi' })).name, 'napi');
    assert.equal(chosenBackend({ LATCHKEY_OS_KEYRING: ' keytar ' }), 'keytar');
    await assert.rejects(loadSecretBackend({ LATCHKEY_OS_KEYRING: 'libsecret' }), (e: unknown) => {
      assert.ok(e instanceof KeystoreError);
      assert.equal(e.code, 'KEYSTORE_FAILED');
      assert.match(e.message, /^LATCHKEY_OS_KEYRING="libsecret" is not a keyring binding: use keytar or napi/);
      return true;
    });
  });

  test('each keeps its keys under its own service, in its own item format (keytar: service + account, org.freedesktop.Secret.Generic; keyring-rs: service + username): a key stored by one is not seen by the other, and keytar never meets a keyring-rs item (its findCredentials would crash on it)', async (t) => {
    if (!(await needKeyring(t))) return;
    const ns = `${NS}-cross`;
    assert.equal(osKeystoreService(ns, 'keytar'), `latchkey:${ns}:device-keys`); // unchanged for existing installs
    assert.equal(osKeystoreService(ns, 'napi'), `latchkey:${ns}:napi-device-keys`);
    const byKeytar = createOsKeyStore({ namespace: ns, backend: await binding('keytar') });
    const byNapi = createOsKeyStore({ namespace: ns, backend: await binding('napi') });
    const a = await byKeytar.generate();
    const b = await byNapi.generate();
    try {
      assert.equal(await byNapi.load(a.ref), undefined);
      assert.equal(await byKeytar.load(b.ref), undefined);
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(await byKeytar.list(), [a.ref]);
        assert.deepEqual(await byNapi.list(), [b.ref]);
      }
      // Each reads its own back, with the same key.
      assert.deepEqual((await byKeytar.load(a.ref))?.spki, a.spki);
      assert.deepEqual((await byNapi.load(b.ref))?.spki, b.spki);
      // What libsecret's own tool sees: one item under each service, with each binding's attributes.
      const search = async (service: string): Promise<string> => {
        const { stdout, stderr } = await run('secret-tool', ['search', '--all', 'service', service]);
        return `${stdout}\n${stderr}`;
      };
      const kt = await search(osKeystoreService(ns, 'keytar'));
      assert.match(kt, new RegExp(`attribute\\.account = ${a.ref.id}`));
      assert.doesNotMatch(kt, /attribute\.username/);
      const nk = await search(osKeystoreService(ns, 'napi'));
      assert.match(nk, new RegExp(`attribute\\.username = ${b.ref.id}`));
      assert.doesNotMatch(nk, /attribute\.account/);
      // Deleting through the other binding does nothing: the key stays.
      await byNapi.delete(a.ref);
      assert.ok(await byKeytar.load(a.ref));
    } finally {
      await byKeytar.delete(a.ref);
      await byNapi.delete(b.ref);
    }
    assert.deepEqual(await byKeytar.list(), []);
    assert.deepEqual(await byNapi.list(), []);
  });
});

// ---- Unavailable stores, for real: each runs in a child process on its own bus (or none).

const MODULE = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'os-keystore.js')).href;
const CHILD = `
const { createOsKeyStore } = await import(${JSON.stringify(MODULE)});
const { execFileSync } = await import('node:child_process');
const s = createOsKeyStore({ namespace: 'child' });
const out = { results: {} };
let ref = { keystore: 'os', id: 'lk-00112233445566778899aabb' };
if (process.argv[1] === 'lock') {
  const k = await s.generate();
  ref = k.ref;
  out.pem = (await k.tlsKey()).key;
  execFileSync('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets',
    'org.freedesktop.Secret.Service.Lock', 'array:objpath:/org/freedesktop/secrets/collection/login']);
}
const attempt = async (name, f) => {
  try { const v = await f(); out.results[name] = { ok: true, value: v ?? null }; }
  catch (e) { out.results[name] = { ok: false, name: e.name, code: e.code, message: e.message, cause: String(e.cause?.message ?? ''), stack: e.stack }; }
};
await attempt('check', () => s.check());
await attempt('generate', async () => (await s.generate()).ref);
await attempt('list', () => s.list());
await attempt('load', async () => (await s.load(ref))?.ref);
await attempt('delete', () => s.delete(ref));
console.log(JSON.stringify(out));
`;

interface ChildResult {
  pem?: string;
  results: Record<string, { ok: boolean; name?: string; code?: KeystoreErrorCode; message?: string; cause?: string; stack?: string }>;
}

async function inChild(env: NodeJS.ProcessEnv, mode = ''): Promise<ChildResult> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', CHILD, mode], { env, timeout: 30_000 });
  return JSON.parse(stdout) as ChildResult;
}

function assertAllFail(r: ChildResult, code: KeystoreErrorCode, message: RegExp): void {
  for (const op of ['check', 'generate', 'list', 'load', 'delete']) {
    const res = r.results[op]!;
    assert.equal(res.ok, false, `${op}() should fail, got ${JSON.stringify(res)}`);
    assert.equal(res.name, 'KeystoreError', `${op}(): ${res.message}`);
    assert.equal(res.code, code, `${op}(): ${res.message}`);
    assert.match(res.message!, message, `${op}()`);
  }
}

/** What each binding's native layer says (keytar: libsecret/GLib; napi: keyring-rs / the secret-service crate, zbus). */
const SAID: Record<SecretBackendName, { nobus: string; noProvider: string; locked: string }> = {
  keytar: {
    nobus: 'Cannot autolaunch D-Bus without X11 \\$DISPLAY',
    noProvider: '.*org\\.freedesktop\\.secrets was not provided by any \\.service files',
    locked: 'Cannot create an item in a locked collection',
  },
  napi: {
    nobus: 'Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile time, set your DBUS_SESSION_BUS_ADDRESS instead',
    noProvider: 'Platform failure: DBus error: The name org\\.freedesktop\\.secrets was not provided by any \\.service files',
    // keyring-rs asks the Secret Service to unlock; gnome-keyring without a display dismisses the prompt.
    locked: "Couldn't access platform storage: Secret Service: unlock prompt was dismissed",
  },
};

for (const name of SECRET_BACKENDS) {
  const said = SAID[name];
  describe(`os keystore (${name} binding): an unavailable store says what is missing and how to fix it`, () => {
    test('no D-Bus session (headless, no DISPLAY) → KEYSTORE_UNAVAILABLE: run in a desktop session or use --keystore file', async (t) => {
      const home = mkdtempSync(join(tmpdir(), 'latchkey-nobus-'));
      t.after(() => rmSync(home, { recursive: true, force: true }));
      const r = await inChild({ PATH: process.env.PATH, HOME: home, XDG_RUNTIME_DIR: home, LATCHKEY_OS_KEYRING: name });
      assertAllFail(r, 'KEYSTORE_UNAVAILABLE', new RegExp(`^no D-Bus session \\(${said.nobus}\\): run the agent inside a desktop session .*--keystore file on headless hosts$`));
    });

    test('a session bus without a Secret Service provider → KEYSTORE_UNAVAILABLE: install and start gnome-keyring (no fallback to another store)', async (t) => {
      const bus = await startPrivateBus(t, { provider: false });
      if (typeof bus === 'string') {
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(bus);
        return t.skip(bus);
      }
      const r = await inChild({ ...bus.env, LATCHKEY_OS_KEYRING: name });
      assertAllFail(r, 'KEYSTORE_UNAVAILABLE', new RegExp(`^no Secret Service provider on the D-Bus session \\(${said.noProvider}\\): install and start gnome-keyring`));
    });

    test('a locked keyring → KEYSTORE_LOCKED for every operation (a stored key is not reported gone), and no message holds the key', async (t) => {
      const bus = await startPrivateBus(t);
      if (typeof bus === 'string') {
        if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(bus);
        return t.skip(bus);
      }
      const r = await inChild({ ...bus.env, LATCHKEY_OS_KEYRING: name }, 'lock');
      assert.match(r.pem ?? '', /^-----BEGIN PRIVATE KEY-----/);
      assertAllFail(r, 'KEYSTORE_LOCKED', new RegExp(`^the login keyring is locked \\(${said.locked}\\): unlock it`));
      for (const res of Object.values(r.results)) assertNoKeyMaterial(`${res.message}\n${res.cause}\n${res.stack}`, r.pem!);
    });
  });
}

// Where keytar cannot load (a cross-built agent: its require throws ERR_LATCHKEY_ADDON_MISSING), a
// child process whose resolve hook refuses 'keytar' the same way; everything else is real.
const BACKEND_MODULE = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'secret-backend.js')).href;
const NO_KEYTAR_HOOKS = `export async function resolve(spec, ctx, next) {
  if (spec === 'keytar') throw Object.assign(new Error('the native addon keytar.node is not in this build of latchkey'), { code: 'ERR_LATCHKEY_ADDON_MISSING' });
  return next(spec, ctx);
}`;
const NO_KEYTAR_REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(NO_KEYTAR_HOOKS)}`)});`;
const NO_KEYTAR_CHILD = `
const { createOsKeyStore } = await import(${JSON.stringify(MODULE)});
const { loadSecretBackend } = await import(${JSON.stringify(BACKEND_MODULE)});
const out = {};
out.auto = (await loadSecretBackend(process.env)).name;
try { await loadSecretBackend({ LATCHKEY_OS_KEYRING: 'keytar' }); out.keytar = 'loaded'; } catch (e) { out.keytar = { name: e.name, code: e.code, message: e.message }; }
const s = createOsKeyStore({ namespace: 'nokeytar' });
const k = await s.generate();
out.listed = (await s.list()).map((r) => r.id).includes(k.ref.id);
out.loaded = (await s.load(k.ref))?.ref.id === k.ref.id;
await s.delete(k.ref);
out.after = (await s.list()).length;
console.log(JSON.stringify(out));
`;

describe('os keystore: where keytar cannot load (cross-built agents)', () => {
  test('unset LATCHKEY_OS_KEYRING falls back to napi and the store works; LATCHKEY_OS_KEYRING=keytar is KEYSTORE_UNAVAILABLE naming keytar and what to do', async (t) => {
    const bus = await startPrivateBus(t);
    if (typeof bus === 'string') {
      if (process.env.LATCHKEY_REQUIRE_ALL === '1') assert.fail(bus);
      return t.skip(bus);
    }
    const { stdout } = await run(process.execPath, ['--no-warnings', '--import', `data:text/javascript,${encodeURIComponent(NO_KEYTAR_REGISTER)}`, '--input-type=module', '-e', NO_KEYTAR_CHILD], { env: bus.env, timeout: 30_000 });
    const out = JSON.parse(stdout) as { auto: string; keytar: { name: string; code: string; message: string }; listed: boolean; loaded: boolean; after: number };
    assert.equal(out.auto, 'napi');
    assert.equal(out.keytar.name, 'KeystoreError');
    assert.equal(out.keytar.code, 'KEYSTORE_UNAVAILABLE');
    assert.match(out.keytar.message, /^the OS keystore addon cannot be loaded \(keytar: the native addon keytar\.node is not in this build of latchkey\): unset LATCHKEY_OS_KEYRING to try the other binding.*--keystore file$/);
    assert.deepEqual([out.listed, out.loaded, out.after], [true, true, 0]);
  });
});

describe('classifyKeytarError (texts seen from keytar 7.9.0 / libsecret 0.20 / GLib 2.74 and @napi-rs/keyring 2.1.2 on Debian 12)', () => {
  const cases: Array<[string, KeystoreErrorCode, RegExp]> = [
    // DBUS_SESSION_BUS_ADDRESS unset, no DISPLAY
    ['Cannot autolaunch D-Bus without X11 $DISPLAY', 'KEYSTORE_UNAVAILABLE', /^no D-Bus session .*desktop session.*--keystore file/],
    // DBUS_SESSION_BUS_ADDRESS unset, DISPLAY set but no X server
    ['Error spawning command line “dbus-launch --autolaunch=3d1219c7c4c5404aaa1f6d2a48adfda4 --binary-syntax --close-stderr”: Child process exited with code 1', 'KEYSTORE_UNAVAILABLE', /^no D-Bus session/],
    // DBUS_SESSION_BUS_ADDRESS names a socket that is gone
    ['Could not connect: No such file or directory', 'KEYSTORE_UNAVAILABLE', /^the D-Bus session bus in DBUS_SESSION_BUS_ADDRESS cannot be reached/],
    ['Address element “garbage” does not contain a colon (:)', 'KEYSTORE_UNAVAILABLE', /^the D-Bus session bus in DBUS_SESSION_BUS_ADDRESS cannot be reached/],
    // the bus died while the process was running
    ['The connection is closed', 'KEYSTORE_UNAVAILABLE', /session ended.*restart the agent/],
    // a bus, no keyring daemon (set/get/delete, then findCredentials)
    ['The name org.freedesktop.secrets was not provided by any .service files', 'KEYSTORE_UNAVAILABLE', /^no Secret Service provider.*install and start gnome-keyring/],
    ['GDBus.Error:org.freedesktop.DBus.Error.ServiceUnknown: The name org.freedesktop.secrets was not provided by any .service files', 'KEYSTORE_UNAVAILABLE', /^no Secret Service provider/],
    // gnome-keyring activated by the bus without --unlock: no login keyring
    ['Object does not exist at path “/org/freedesktop/secrets/collection/login”', 'KEYSTORE_UNAVAILABLE', /no default \(login\) keyring.*gnome-keyring-daemon --unlock/],
    // login keyring locked
    ['Cannot create an item in a locked collection', 'KEYSTORE_LOCKED', /^the login keyring is locked.*unlock it/],
    // @napi-rs/keyring 2.1.2 (keyring-rs, zbus), same situations: no bus, no provider, locked
    ['Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile time, set your DBUS_SESSION_BUS_ADDRESS instead', 'KEYSTORE_UNAVAILABLE', /^no D-Bus session/],
    ['Platform failure: DBus error: The name org.freedesktop.secrets was not provided by any .service files', 'KEYSTORE_UNAVAILABLE', /^no Secret Service provider/],
    ["Couldn't access platform storage: Secret Service: unlock prompt was dismissed", 'KEYSTORE_LOCKED', /^the login keyring is locked/],
    ['something new', 'KEYSTORE_FAILED', /^the OS credential store failed \(something new\)$/],
  ];
  for (const [text, code, message] of cases) {
    test(`linux: ${text.slice(0, 60)} → ${code}`, () => {
      const c = classifyKeytarError(text, 'linux');
      assert.equal(c.code, code);
      assert.match(c.message, message);
    });
  }
  // Not observed here (no macOS / Windows machine): the texts of SecCopyErrorMessageString and FormatMessage.
  test('darwin / win32: locked keychain, missing keychain, no logon session (documented texts)', () => {
    assert.equal(classifyKeytarError('User interaction is not allowed.', 'darwin').code, 'KEYSTORE_LOCKED');
    assert.match(classifyKeytarError('User interaction is not allowed.', 'darwin').message, /security unlock-keychain/);
    assert.equal(classifyKeytarError('No keychain is available. You may need to restart your computer.', 'darwin').code, 'KEYSTORE_UNAVAILABLE');
    assert.equal(classifyKeytarError('A specified logon session does not exist. It may already have been terminated.', 'win32').code, 'KEYSTORE_UNAVAILABLE');
    assert.equal(classifyKeytarError('Cannot create an item in a locked collection', 'win32').code, 'KEYSTORE_FAILED');
  });
});
