/**
 * The exact commands each platform's store runs (NSS, macOS keychain,
 * Windows user store), through a recording runner: argv, stdin, and the
 * private files present while each command runs. The NSS commands also run
 * for real in nss-store.test.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { type BrowserCredential, BrowserStoreError, type CommandResult, type Runner, entryLabel } from './cert-store.js';
import { createMacosStore } from './macos-store.js';
import { NSS_TOKEN_MODULE, createNssStore } from './nss-store.js';
import { deviceCerts, haveTools, mustSh, p12Info, tempDir, type DeviceCert } from '../../test-support/dist/browser-fixtures.js';
import { SCRIPTS, WINDOWS_STORE, createWindowsStore, powershellArgs } from './windows-store.js';

const DEVICE = '6b1e3c2a-0f4d-4e8a-9c7b-5a2d1e0f3b4c';
const OTHER = '0a0b0c0d-1111-4222-8333-444455556666';
const NICK = entryLabel(DEVICE);
const sha1 = (pem: string): string => new X509Certificate(pem).fingerprint.replace(/:/g, '');
const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase().replace(/^(00)+/, '');

interface Call {
  cmd: string;
  args: string[];
  input?: string;
  /** Files of the private dir at the time of the call: mode and bytes. */
  files: Record<string, { mode: number; bytes: Buffer }>;
  dirMode?: number;
}

/**
 * Records every command. `tmp` is the parent of the stores' private dirs:
 * argv paths in it are rewritten to `<tmp>/NAME`, and the private dir's files
 * are captured while the command runs (copies kept in `keep`).
 */
function recorder(t: TestContext, answer: (cmd: string, args: readonly string[], input?: string) => Partial<CommandResult> | number) {
  const tmp = tempDir(t);
  const keep = tempDir(t);
  const calls: Call[] = [];
  const run: Runner = async (cmd, args, opts = {}) => {
    const call: Call = { cmd, args: [], files: {}, ...(opts.input !== undefined ? { input: opts.input } : {}) };
    for (const a of args) {
      if (a.startsWith(tmp)) {
        const dir = dirname(a);
        call.dirMode = statSync(dir).mode & 0o777;
        for (const f of readdirSync(dir)) {
          call.files[f] = { mode: statSync(join(dir, f)).mode & 0o777, bytes: readFileSync(join(dir, f)) };
          copyFileSync(join(dir, f), join(keep, f));
        }
        call.args.push(`<tmp>/${basename(a)}`);
      } else call.args.push(a);
    }
    calls.push(call);
    const r = answer(cmd, args, opts.input);
    return typeof r === 'number' ? { code: r, stdout: '', stderr: '' } : { code: 0, stdout: '', stderr: '', ...r };
  };
  const lines = (): string[] => calls.map((c) => [c.cmd, ...c.args].join(' '));
  return { run, calls, lines, tmp, keep, privateDirsLeft: () => readdirSync(tmp) };
}

/** Certificates shaped like Latchkey's: [old, new] for DEVICE and one for another device. */
function fixture(t: TestContext): { dir: string; old: DeviceCert; cur: DeviceCert; foreign: DeviceCert } {
  const dir = tempDir(t);
  const { certs } = deviceCerts(dir, DEVICE, 2);
  const otherDir = join(dir, 'other');
  mkdirSync(otherDir);
  const foreign = deviceCerts(otherDir, OTHER, 1).certs[0]!;
  return { dir, old: certs[0]!, cur: certs[1]!, foreign };
}

const pemCred = (c: DeviceCert): BrowserCredential => ({ deviceId: DEVICE, certPem: c.certPem, key: { kind: 'pem', pem: c.keyPem } });
const tokenCred = (c: DeviceCert): BrowserCredential => ({ deviceId: DEVICE, certPem: c.certPem, key: { kind: 'token', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'latchkey' } });

/** The secrets a call must not carry in argv. */
function assertNoSecretInArgv(calls: Call[], secret: string): void {
  for (const c of calls) for (const a of c.args) assert.ok(!a.includes(secret), `${c.cmd} carries the bundle password in argv`);
}

describe('NSS (Linux): the commands', () => {
  test('install (file/os key): creates the db without a password, removes the old entry with its key, imports the PKCS#12 with both passwords in files, checks the result', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { old, cur } = fixture(t);
    const db = join(tempDir(t), 'nssdb');
    let fDone = false;
    const rec = recorder(t, (cmd, args) => {
      if (args[0] === '-N') {
        mkdirSync(db, { recursive: true });
        writeFileSync(join(db, 'cert9.db'), '');
        return 0;
      }
      if (args[0] === '-F') return fDone ? 255 : ((fDone = true), 0); // one old entry, with its key
      if (args[0] === '-D') return 255;
      if (args[0] === '-L') return cmd === 'certutil' && rec.calls.some((c) => c.cmd === 'pk12util') ? { stdout: cur.certPem } : { code: 255, stderr: `certutil: Could not find cert: ${NICK}` };
      return 0;
    });
    const store = createNssStore({ dbDir: db, run: rec.run, tmp: rec.tmp });
    const entry = await store.install(pemCred(cur));
    assert.deepEqual(rec.lines(), [
      `certutil -N -d sql:${db} --empty-password`,
      `certutil -F -d sql:${db} -f <tmp>/db.pw -n ${NICK}`,
      `certutil -F -d sql:${db} -f <tmp>/db.pw -n ${NICK}`,
      `certutil -D -d sql:${db} -n ${NICK}`,
      `certutil -L -d sql:${db} -n ${NICK} -a`,
      `pk12util -i <tmp>/device.p12 -d sql:${db} -w <tmp>/bundle.pw -k <tmp>/db.pw`,
      `certutil -L -d sql:${db} -n ${NICK} -a`,
    ]);
    assert.equal(statSync(db).mode & 0o777, 0o700);
    const imp = rec.calls.find((c) => c.cmd === 'pk12util')!;
    assert.equal(imp.dirMode, 0o700);
    for (const f of ['device.p12', 'bundle.pw', 'db.pw']) assert.equal(imp.files[f]?.mode, 0o600, f);
    assert.equal(imp.files['db.pw']!.bytes.length, 0, 'the NSS database has no password');
    const password = imp.files['bundle.pw']!.bytes.toString();
    assert.match(password, /^[A-Za-z0-9_-]{43}$/);
    assertNoSecretInArgv(rec.calls, password);
    // The bundle pk12util got: the device key and certificate, AES-256 + SHA-256 MAC, under that password.
    const info = p12Info(join(rec.keep, 'device.p12'), join(rec.keep, 'bundle.pw'));
    assert.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
    const certOut = mustSh('openssl', ['pkcs12', '-in', join(rec.keep, 'device.p12'), '-passin', `file:${join(rec.keep, 'bundle.pw')}`, '-nokeys']);
    assert.match(certOut, new RegExp(`friendlyName: ${NICK}`));
    assert.equal(sha1(certOut.slice(certOut.indexOf('-----BEGIN'))), sha1(cur.certPem));
    assert.deepEqual(entry, { label: NICK, serialHex: serial(cur.certPem), sha1: sha1(cur.certPem) });
    assert.deepEqual(rec.privateDirsLeft(), [], 'the private dir is gone');
    assert.notEqual(sha1(old.certPem), entry.sha1);
  });

  test('install fails when pk12util fails: the error names the tool, never the password, and the private dir is gone', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { cur } = fixture(t);
    const db = tempDir(t);
    writeFileSync(join(db, 'cert9.db'), '');
    let leaked = '';
    const rec = recorder(t, (cmd, args) => {
      if (cmd === 'pk12util') {
        leaked = readFileSync(args[args.indexOf('-w') + 1]!, 'utf8');
        return { code: 17, stderr: `pk12util: PKCS12 decode failed for password ${leaked}` };
      }
      return args[0] === '-L' || args[0] === '-F' || args[0] === '-D' ? 255 : 0;
    });
    const store = createNssStore({ dbDir: db, run: rec.run, tmp: rec.tmp });
    await assert.rejects(store.install(pemCred(cur)), (e: unknown) => {
      assert.ok(e instanceof BrowserStoreError && e.code === 'COMMAND_FAILED');
      assert.match(e.message, /^pk12util -i \(importing the device certificate and key\) failed \(exit 17\): pk12util: PKCS12 decode failed for password \*\*\*$/);
      assert.ok(!e.message.includes(leaked));
      return true;
    });
    assert.equal(rec.lines().some((l) => l.startsWith('certutil -N')), false, 'an existing db is not created again');
    assert.deepEqual(rec.privateDirsLeft(), []);
  });

  test('install (pkcs11 key): registers the token module, imports only the certificate, never deletes keys', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { cur } = fixture(t);
    const db = tempDir(t);
    writeFileSync(join(db, 'cert9.db'), '');
    let added = false;
    const rec = recorder(t, (cmd, args) => {
      if (cmd === 'modutil' && args.includes('-list')) return added ? { stdout: `Name: ${NSS_TOKEN_MODULE}\nLibrary file: /usr/lib/softhsm/libsofthsm2.so\n` } : 29;
      if (cmd === 'modutil' && args.includes('-add')) return (added = true), 0;
      if (args[0] === '-D') return 255;
      if (args[0] === '-L') return rec.calls.some((c) => c.args[0] === '-A') ? { stdout: cur.certPem } : 255;
      return 0;
    });
    const store = createNssStore({ dbDir: db, run: rec.run, tmp: rec.tmp });
    await store.install(tokenCred(cur));
    assert.deepEqual(rec.lines(), [
      `modutil -dbdir sql:${db} -list ${NSS_TOKEN_MODULE}`,
      `modutil -dbdir sql:${db} -add ${NSS_TOKEN_MODULE} -libfile /usr/lib/softhsm/libsofthsm2.so -force`,
      `certutil -D -d sql:${db} -n ${NICK}`,
      `certutil -L -d sql:${db} -n ${NICK} -a`,
      `certutil -A -d sql:${db} -n ${NICK} -t ,, -i <tmp>/device.der`,
      `certutil -L -d sql:${db} -n ${NICK} -a`,
    ]);
    const add = rec.calls.find((c) => c.args[0] === '-A')!;
    assert.equal(sha1(new X509Certificate(add.files['device.der']!.bytes).toString()), sha1(cur.certPem));
    assert.deepEqual(Object.keys(add.files).sort(), ['db.pw', 'device.der'], 'no key material');
    // A second install with the module registered: no second -add.
    rec.calls.length = 0;
    await store.install(tokenCred(cur));
    assert.equal(rec.lines().filter((l) => l.startsWith('modutil')).length, 1);
    assert.equal(rec.lines()[0], `modutil -dbdir sql:${db} -list ${NSS_TOKEN_MODULE}`);
  });

  test('remove: key entries go with certutil -F then -D; token entries with -D only, then the module', async (t) => {
    const db = tempDir(t);
    writeFileSync(join(db, 'cert9.db'), '');
    const counts: Record<string, number> = {};
    const rec = recorder(t, (cmd, args) => {
      const k = `${cmd} ${args[0]}`;
      counts[k] = (counts[k] ?? 0) + 1;
      if (args[0] === '-F') return counts[k]! <= 2 ? 0 : 255; // two entries with keys
      if (args[0] === '-D') return counts[k]! <= 1 ? 0 : 255; // and a certificate left without one
      if (cmd === 'modutil') return args.includes('-list') ? { stdout: 'Library file: /x.so\n' } : 0;
      return 255;
    });
    const store = createNssStore({ dbDir: db, run: rec.run, tmp: rec.tmp });
    assert.equal(await store.remove(DEVICE), 3);
    assert.deepEqual(rec.lines(), [
      ...Array(3).fill(`certutil -F -d sql:${db} -f <tmp>/db.pw -n ${NICK}`),
      ...Array(2).fill(`certutil -D -d sql:${db} -n ${NICK}`),
      `certutil -L -d sql:${db} -n ${NICK} -a`,
    ]);
    rec.calls.length = 0;
    for (const k of Object.keys(counts)) delete counts[k];
    assert.equal(await store.remove(DEVICE, { token: true }), 1);
    assert.deepEqual(rec.lines(), [
      ...Array(2).fill(`certutil -D -d sql:${db} -n ${NICK}`),
      `certutil -L -d sql:${db} -n ${NICK} -a`,
      `modutil -dbdir sql:${db} -list ${NSS_TOKEN_MODULE}`,
      `modutil -dbdir sql:${db} -delete ${NSS_TOKEN_MODULE} -force`,
    ]);
    assert.deepEqual(rec.privateDirsLeft(), []);
  });

  test('a device id that is not a UUID never reaches a command', async (t) => {
    const rec = recorder(t, () => 0);
    const store = createNssStore({ dbDir: tempDir(t), run: rec.run, tmp: rec.tmp });
    await assert.rejects(store.remove('x" -d /etc'), /is not a device id/);
    assert.deepEqual(rec.calls, []);
  });
});

describe('macOS login keychain: the commands', () => {
  const KC = '/Users/alice/Library/Keychains/login.keychain-db';

  test('install: security import -x (non-extractable) of a SHA-1-MAC bundle, then the older identity of this device is deleted by SHA-1, nobody else\'s', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { old, cur, foreign } = fixture(t);
    const rec = recorder(t, (_cmd, args) => (args[0] === 'find-certificate' ? { stdout: `${old.certPem}${foreign.certPem}${cur.certPem}` } : 0));
    const store = createMacosStore({ keychain: KC, run: rec.run, tmp: rec.tmp });
    const entry = await store.install(pemCred(cur));
    const imp = rec.calls[0]!;
    const password = imp.args[imp.args.length - 1]!;
    assert.match(password, /^[A-Za-z0-9_-]{43}$/);
    // `security import` takes the password only in argv (-P) or from a GUI prompt: documented in macos-store.ts.
    assert.deepEqual(rec.lines(), [
      `security import <tmp>/device.p12 -k ${KC} -f pkcs12 -x -P ${password}`,
      `security find-certificate -a -p ${KC}`,
      `security delete-identity -Z ${sha1(old.certPem)} ${KC}`,
    ]);
    assert.equal(imp.dirMode, 0o700);
    assert.equal(imp.files['device.p12']!.mode, 0o600);
    assert.deepEqual(Object.keys(imp.files), ['device.p12'], 'no password file: security cannot read one');
    writeFileSync(join(rec.keep, 'pw'), password);
    const info = p12Info(join(rec.keep, 'device.p12'), join(rec.keep, 'pw'));
    assert.match(info, /MAC: sha1, Iteration 2048/);
    assert.match(info, /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
    assert.equal(entry.sha1, sha1(cur.certPem));
    assert.deepEqual(rec.privateDirsLeft(), []);
  });

  test('remove: delete-identity by SHA-1, delete-certificate for a certificate without its key', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { old, cur, foreign } = fixture(t);
    const rec = recorder(t, (_cmd, args) => (args[0] === 'find-certificate' ? { stdout: `${foreign.certPem}${old.certPem}${cur.certPem}` } : args[0] === 'delete-identity' && args[2] === sha1(cur.certPem) ? 44 : 0));
    const store = createMacosStore({ keychain: KC, run: rec.run, tmp: rec.tmp });
    assert.equal(await store.remove(DEVICE), 2);
    assert.deepEqual(rec.lines(), [
      `security find-certificate -a -p ${KC}`,
      `security delete-identity -Z ${sha1(old.certPem)} ${KC}`,
      `security delete-identity -Z ${sha1(cur.certPem)} ${KC}`,
      `security delete-certificate -Z ${sha1(cur.certPem)} ${KC}`,
    ]);
  });

  test('a pkcs11 key: not supported, says so, runs nothing', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { cur } = fixture(t);
    const rec = recorder(t, () => 0);
    await assert.rejects(createMacosStore({ keychain: KC, run: rec.run, tmp: rec.tmp }).install(tokenCred(cur)), (e: unknown) => e instanceof BrowserStoreError && e.code === 'UNSUPPORTED' && /PKCS#11 token .* not supported/.test(e.message));
    assert.deepEqual(rec.calls, []);
  });
});

describe('Windows user store: the commands', () => {
  const script = (c: Call): string => {
    assert.equal(c.cmd, 'powershell.exe');
    assert.deepEqual(c.args.slice(0, -1), ['-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand']);
    return Buffer.from(c.args[c.args.length - 1]!, 'base64').toString('utf16le');
  };

  test('install: Import-PfxCertificate without -Exportable, the password on stdin, then the older certificate of this device removed with its key', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { old, cur, foreign } = fixture(t);
    const b64 = (p: string): string => Buffer.from(new X509Certificate(p).raw).toString('base64');
    let bundleSeen: { mode: number; dirMode: number; info: string } | undefined;
    const rec = recorder(t, (_cmd, args, input) => {
      const s = Buffer.from(args[args.length - 1]!, 'base64').toString('utf16le');
      if (s.includes('Import-PfxCertificate')) {
        // While the command runs: the bundle in its private dir, readable with the password from stdin (AES-256, SHA-256 MAC).
        const p = /-FilePath '([^']+)'/.exec(s)![1]!;
        writeFileSync(join(rec.keep, 'win.pw'), input!.trimEnd());
        const info = p12Info(p, join(rec.keep, 'win.pw'));
        bundleSeen = { mode: statSync(p).mode & 0o777, dirMode: statSync(dirname(p)).mode & 0o777, info };
        return { stdout: `${sha1(cur.certPem)}\r\n` };
      }
      if (s.includes('Get-ChildItem')) return { stdout: [old, foreign, cur].map((c) => `${sha1(c.certPem)} ${b64(c.certPem)}`).join('\r\n') };
      return 0;
    });
    const store = createWindowsStore({ run: rec.run, tmp: rec.tmp });
    const entry = await store.install(pemCred(cur));
    assert.equal(rec.calls.length, 3);
    const [imp, list, rm] = rec.calls as [Call, Call, Call];
    const password = imp.input!.trimEnd();
    assert.match(password, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(imp.input, `${password}\n`);
    assertNoSecretInArgv(rec.calls, password);
    assert.equal(bundleSeen?.mode, 0o600);
    assert.equal(bundleSeen.dirMode, 0o700);
    assert.match(bundleSeen.info, /MAC: sha256/);
    assert.match(bundleSeen.info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
    const importScript = script(imp);
    assert.ok(!importScript.includes(password));
    assert.doesNotMatch(importScript, /Exportable/);
    const path = /-FilePath '([^']+)'/.exec(importScript)![1]!;
    assert.ok(path.startsWith(rec.tmp) && path.endsWith('device.p12'), path);
    assert.equal(importScript, SCRIPTS.import(path, NICK));
    assert.equal(
      importScript,
      `$ErrorActionPreference = 'Stop'
$password = ConvertTo-SecureString -String ([Console]::In.ReadLine()) -AsPlainText -Force
$imported = Import-PfxCertificate -FilePath '${path}' -CertStoreLocation '${WINDOWS_STORE}' -Password $password
foreach ($c in $imported) { $c.FriendlyName = '${NICK}'; $c.Thumbprint }`,
    );
    assert.equal(script(list), SCRIPTS.list);
    assert.equal(script(rm), `$ErrorActionPreference = 'Stop'\nforeach ($t in @('${sha1(old.certPem)}')) { Remove-Item -Path ('Cert:\\CurrentUser\\My\\' + $t) -DeleteKey }`);
    assert.deepEqual(rec.calls[0]!.args, powershellArgs(importScript));
    assert.equal(entry.sha1, sha1(cur.certPem));
    assert.equal(existsSync(path), false, 'the bundle is gone');
    assert.deepEqual(rec.privateDirsLeft(), []);
  });

  test('a pkcs11 key: not supported, runs nothing; a thumbprint that is not one never reaches a script', async (t) => {
    if (!haveTools(t, 'openssl')) return;
    const { cur } = fixture(t);
    const rec = recorder(t, () => 0);
    await assert.rejects(createWindowsStore({ run: rec.run, tmp: rec.tmp }).install(tokenCred(cur)), (e: unknown) => e instanceof BrowserStoreError && e.code === 'UNSUPPORTED');
    assert.deepEqual(rec.calls, []);
    assert.throws(() => SCRIPTS.remove(["ABC'; Remove-Item C:\\ -Recurse; '"]), /not a thumbprint/);
  });
});
