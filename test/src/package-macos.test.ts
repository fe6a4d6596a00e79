/**
 * The macOS package (scripts/package/macos.mjs, issue 15): a .tar.gz, since
 * Debian has no xar/mkbom to make a .pkg. NOT RUN ON macOS: here the archive
 * is built, its plist read by python3's plistlib, its scripts checked with
 * `sh -n` and shellcheck and run on Linux against a temporary root (DESTDIR).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { ROOT, requireTools, run, tempDir } from './support/processes.js';

const SCRIPT = join(ROOT, 'scripts/package/macos.mjs');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'agent/package.json'), 'utf8')) as { version: string }).version;
const NAME = `latchkey-${VERSION}-darwin-x64`;
const mode = (p: string): number => statSync(p).mode & 0o777;
const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const exists = (p: string): boolean => {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
};

const out = mkdtempSync(join(tmpdir(), 'latchkey-macos-pkg-'));
after(() => rmSync(out, { recursive: true, force: true }));
let built: Promise<{ tgz: string; bin: string; dir: string }> | undefined;
/** Built once and unpacked into `out`. */
function buildOnce(): Promise<{ tgz: string; bin: string; dir: string }> {
  built ??= (async () => {
    const r = await run(process.execPath, [SCRIPT, '--out-dir', out]);
    assert.equal(r.code, 0, `scripts/package/macos.mjs failed:\n${r.stdout}${r.stderr}`);
    const tgz = join(out, `${NAME}.tar.gz`);
    const x = await run('tar', ['xzf', tgz, '-C', out]);
    assert.equal(x.code, 0, x.stderr);
    return { tgz, bin: join(out, '.agent', 'latchkey-darwin-x64'), dir: join(out, NAME) };
  })();
  return built;
}

describe('macOS package: a .tar.gz with the binary, the LaunchDaemon plist and install scripts (issue 15; not run on macOS)', () => {
  test('the archive: root-owned entries, the darwin-x64 binary unchanged (a Mach-O x86_64), executable scripts', { timeout: 600_000 }, async (t: TestContext) => {
    if (!requireTools(t, 'tar')) return;
    const b = await buildOnce();
    const list = (await run('tar', ['tzvf', b.tgz])).stdout.trim().split('\n').map((l) => l.split(/\s+/));
    assert.deepEqual(list.map((c) => c[5]), [`${NAME}/`, `${NAME}/README.txt`, `${NAME}/bin/`, `${NAME}/bin/latchkey`, `${NAME}/com.latchkey.agent.plist`, `${NAME}/install.sh`, `${NAME}/uninstall.sh`]);
    for (const c of list) assert.equal(c[1], '0/0', `${c[5]} owned by root`);
    assert.deepEqual(list.map((c) => c[0]), ['drwxr-xr-x', '-rw-r--r--', 'drwxr-xr-x', '-rwxr-xr-x', '-rw-r--r--', '-rwxr-xr-x', '-rwxr-xr-x']);
    assert.equal(sha256(join(b.dir, 'bin/latchkey')), sha256(b.bin));
    const head = readFileSync(join(b.dir, 'bin/latchkey')).subarray(0, 8);
    assert.equal(head.readUInt32LE(0), 0xfeedfacf, 'MH_MAGIC_64');
    assert.equal(head.readUInt32LE(4), 0x01000007, 'CPU_TYPE_X86_64');
    assert.match(readFileSync(join(b.dir, 'README.txt'), 'utf8'), /codesign --sign -[\s\S]*not run on macOS/);
  });

  test('the plist is what `latchkey service install` writes for the system LaunchDaemon, and plistlib reads it', { timeout: 600_000 }, async (t: TestContext) => {
    if (!requireTools(t, 'python3')) return;
    const b = await buildOnce();
    const file = join(b.dir, 'com.latchkey.agent.plist');
    const { launchDaemonPlist } = (await import(SCRIPT)) as { launchDaemonPlist: () => Promise<string> };
    assert.equal(readFileSync(file, 'utf8'), await launchDaemonPlist());
    const py = 'import json, plistlib, sys\nwith open(sys.argv[1], "rb") as f: print(json.dumps(plistlib.load(f)))';
    const r = await run('python3', ['-c', py, file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      Label: 'com.latchkey.agent',
      ProgramArguments: ['/usr/local/bin/latchkey', 'run', '--state-dir', '/Library/Application Support/Latchkey'],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 30,
      Umask: 63,
      StandardOutPath: '/Library/Logs/latchkey.log',
      StandardErrorPath: '/Library/Logs/latchkey.log',
    });
  });

  test('install.sh and uninstall.sh: POSIX sh (sh -n, shellcheck), run against a temporary root with DESTDIR', { timeout: 600_000 }, async (t: TestContext) => {
    if (!requireTools(t, 'sh', 'shellcheck')) return;
    const b = await buildOnce();
    const install = join(b.dir, 'install.sh');
    const uninstall = join(b.dir, 'uninstall.sh');
    for (const s of [install, uninstall]) {
      assert.equal((await run('sh', ['-n', s])).code, 0, `sh -n ${s}`);
      const sc = await run('shellcheck', ['--shell=sh', s]);
      assert.equal(sc.code, 0, sc.stdout);
    }
    // Not on a Mac and no DESTDIR: refuses, touching nothing.
    const here = await run('sh', [install], { env: { DESTDIR: '' } });
    assert.equal(here.code, 2);
    assert.match(here.stderr, /this installs on macOS; set DESTDIR=/);

    const root = tempDir(t, 'latchkey-macos-root-');
    const env = { DESTDIR: root };
    const first = await run('sh', [install], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /installed into .* \(no launchctl, no codesign: DESTDIR is set\)/);
    const bin = join(root, 'usr/local/bin/latchkey');
    const plist = join(root, 'Library/LaunchDaemons/com.latchkey.agent.plist');
    const state = join(root, 'Library/Application Support/Latchkey');
    assert.equal(sha256(bin), sha256(b.bin));
    assert.deepEqual([mode(bin), mode(plist), mode(state)], [0o755, 0o644, 0o700]);
    assert.equal(readFileSync(plist, 'utf8'), readFileSync(join(b.dir, 'com.latchkey.agent.plist'), 'utf8'));
    assert.ok(statSync(join(root, 'Library/Logs')).isDirectory());

    // Again (an upgrade): same result, the enroll file an MDM dropped stays, no temp files left.
    const enroll = join(state, 'enroll.json');
    writeFileSync(enroll, '{}\n', { mode: 0o644 });
    assert.equal((await run('sh', [install], { env })).code, 0);
    assert.equal(readFileSync(enroll, 'utf8'), '{}\n');
    assert.ok(!exists(join(root, 'usr/local/bin/.latchkey.new')) && !exists(`${plist}.new`));

    const bad = await run('sh', [uninstall, '--everything'], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown argument --everything; use --purge/);
    const un = await run('sh', [uninstall], { env });
    assert.equal(un.code, 0, un.stderr);
    assert.ok(!exists(bin) && !exists(plist), 'binary and plist removed');
    assert.ok(exists(enroll), 'the state directory is kept without --purge');
    assert.equal((await run('sh', [install], { env })).code, 0);
    const purge = await run('sh', [uninstall, '--purge'], { env });
    assert.equal(purge.code, 0, purge.stderr);
    assert.ok(!exists(state) && !exists(bin) && !exists(plist));
  });

  test('install.sh run from an incomplete copy says what is missing', async (t: TestContext) => {
    const dir = tempDir(t, 'latchkey-macos-partial-');
    writeFileSync(join(dir, 'install.sh'), readFileSync(join(ROOT, 'scripts/package/macos/install.sh')));
    const r = await run('sh', [join(dir, 'install.sh')], { env: { DESTDIR: join(dir, 'root') } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bin\/latchkey is missing; unpack the whole archive/);
  });
});
