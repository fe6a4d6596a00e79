/**
 * The Windows MSI (scripts/package/msi.mjs, issue 15), built here with wixl
 * and checked with msitools. It was NOT run on Windows: these tests read its
 * tables (msiinfo), unpack its cabinet (msiextract), and run the agent's
 * enroll-file command line, formatted as Windows Installer and cmd.exe would,
 * with the real agent on Linux.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { AGENT_CLI, ROOT, requireTools, run, tempDir } from './support/processes.js';

const SCRIPT = join(ROOT, 'scripts/package/msi.mjs');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'agent/package.json'), 'utf8')) as { version: string }).version;
const msiMod = (): Promise<{ UPGRADE_CODE: string; MSI_PROPERTIES: string[]; HIDE_TARGET: number; msiVersion: (v: string) => string }> => import(SCRIPT) as never;

type Table = Record<string, string>[];

/** An msiinfo export: column names, types, key line, then tab-separated rows. */
async function table(msi: string, name: string): Promise<Table> {
  const r = await run('msiinfo', ['export', msi, name]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\r\n').filter((l) => l !== '');
  const cols = lines[0]!.split('\t');
  return lines.slice(3).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i]!, v])));
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function findFile(dir: string, name: string): string | undefined {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (e.name === name) return p;
  }
  return undefined;
}

/** CommandLineToArgvW for the plain cases the MSI uses: words, and "quoted words" without inner quotes. */
const splitArgs = (s: string): string[] => [...s.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);

let built: Promise<{ msi: string; exe: string } | { error: string }> | undefined;
function buildOnce(dir: string): Promise<{ msi: string; exe: string } | { error: string }> {
  built ??= (async () => {
    const r = await run(process.execPath, [SCRIPT, '--out-dir', dir]);
    if (r.code !== 0) return { error: `scripts/package/msi.mjs failed (exit ${r.code}):\n${r.stdout}${r.stderr}` };
    return { msi: join(dir, `latchkey-${VERSION}-x64.msi`), exe: join(dir, '.agent', 'latchkey-win-x64.exe') };
  })();
  return built;
}

describe('Windows MSI built with wixl (issue 15; not run on Windows)', () => {
  const tools = ['wixl', 'msiinfo', 'msiextract', 'msibuild'];
  const out = mkdtempSync(join(tmpdir(), 'latchkey-msi-'));
  after(() => rmSync(out, { recursive: true, force: true }));
  const get = async (t: TestContext) => {
    if (!requireTools(t, ...tools)) return undefined;
    const b = await buildOnce(out);
    if ('error' in b) assert.fail(b.error);
    return b;
  };

  test('per-machine x64 package: the executable in Program Files\\Latchkey, the ProgramData folder, a fixed upgrade code with MajorUpgrade', { timeout: 600_000 }, async (t) => {
    const b = await get(t);
    if (!b) return;
    const { UPGRADE_CODE } = await msiMod();
    const tables = (await run('msiinfo', ['tables', b.msi])).stdout.split('\n');
    for (const name of ['File', 'Component', 'Directory', 'CreateFolder', 'CustomAction', 'Property', 'Upgrade', 'LaunchCondition', 'InstallExecuteSequence']) assert.ok(tables.includes(name), `table ${name}`);
    const prop = Object.fromEntries((await table(b.msi, 'Property')).map((r) => [r.Property, r.Value]));
    assert.equal(prop.UpgradeCode, `{${UPGRADE_CODE}}`);
    assert.equal(prop.ProductVersion, VERSION);
    assert.equal(prop.ALLUSERS, '1', 'per-machine');
    const sum = (await run('msiinfo', ['suminfo', b.msi])).stdout;
    assert.match(sum, /Template: x64;1033/);
    const upgrade = await table(b.msi, 'Upgrade');
    assert.ok(upgrade.some((r) => r.UpgradeCode === `{${UPGRADE_CODE}}` && r.ActionProperty === 'WIX_UPGRADE_DETECTED'), JSON.stringify(upgrade));
    const dirs = Object.fromEntries((await table(b.msi, 'Directory')).map((r) => [r.Directory, r]));
    assert.deepEqual([dirs.INSTALLDIR?.Directory_Parent, dirs.INSTALLDIR?.DefaultDir], ['ProgramFiles64Folder', 'Latchkey']);
    assert.deepEqual([dirs.PROGRAMDATADIR?.Directory_Parent, dirs.PROGRAMDATADIR?.DefaultDir], ['CommonAppDataFolder', 'Latchkey']);
    const files = await table(b.msi, 'File');
    assert.deepEqual(files.map((f) => [f.File, f.FileName, f.Component_]), [['latchkey.exe', 'latchkey.exe', 'AgentExe']]);
    assert.equal(Number(files[0]!.FileSize), statSync(b.exe).size);
    const comps = Object.fromEntries((await table(b.msi, 'Component')).map((r) => [r.Component, r]));
    assert.equal(comps.AgentExe?.Directory_, 'INSTALLDIR');
    assert.equal(Number(comps.AgentExe?.Attributes) & 256, 256, 'msidbComponentAttributes64bit');
    assert.deepEqual((await table(b.msi, 'CreateFolder')).map((r) => [r.Directory_, r.Component_]), [['PROGRAMDATADIR', 'ProgramDataDir']]);

    const x = tempDir(t, 'latchkey-msiextract-');
    const r = await run('msiextract', ['-C', x, b.msi]);
    assert.equal(r.code, 0, r.stderr);
    const inside = findFile(x, 'latchkey.exe');
    assert.ok(inside, `latchkey.exe in ${r.stdout}`);
    assert.equal(sha256(inside), sha256(b.exe), 'the MSI carries exactly the built latchkey.exe');
  });

  test('the MDM properties: SERVER_URL, CA_FINGERPRINT, ENROLL_TOKEN, KEYSTORE (default os) are secure, the token hidden from the log', { timeout: 600_000 }, async (t) => {
    const b = await get(t);
    if (!b) return;
    const { MSI_PROPERTIES } = await msiMod();
    assert.deepEqual(MSI_PROPERTIES, ['SERVER_URL', 'CA_FINGERPRINT', 'ENROLL_TOKEN', 'KEYSTORE']);
    const { msiVersion } = await msiMod();
    assert.equal(msiVersion('1.2.3-rc.1'), '1.2.3');
    assert.throws(() => msiVersion('256.0.0'), /MAJOR, MINOR ≤ 255 and PATCH ≤ 65535/);
    assert.throws(() => msiVersion('1.2'), /MAJOR\.MINOR\.PATCH/);
    const prop = Object.fromEntries((await table(b.msi, 'Property')).map((r) => [r.Property, r.Value]));
    assert.equal(prop.KEYSTORE, 'os');
    for (const p of [...MSI_PROPERTIES, 'NO_SERVICE']) assert.ok(prop.SecureCustomProperties!.split(';').includes(p), `${p} in SecureCustomProperties`);
    assert.ok(prop.MsiHiddenProperties!.split(';').includes('ENROLL_TOKEN'));
    for (const p of ['SERVER_URL', 'CA_FINGERPRINT', 'ENROLL_TOKEN']) assert.equal(prop[p], undefined, `${p} has no default`);
    const conds = (await table(b.msi, 'LaunchCondition')).map((r) => r.Condition);
    assert.ok(conds.includes('NOT SERVER_URL OR (CA_FINGERPRINT AND ENROLL_TOKEN) OR Installed'), conds.join('\n'));
    assert.ok(conds.includes('KEYSTORE="os" OR KEYSTORE="file"'));
  });

  test('custom actions: enroll-file write then service install (deferred, as LocalSystem), service uninstall before the files go; the token only in LATCHKEY_TOKEN', { timeout: 600_000 }, async (t) => {
    const b = await get(t);
    if (!b) return;
    const { HIDE_TARGET } = await msiMod();
    const ca = Object.fromEntries((await table(b.msi, 'CustomAction')).map((r) => [r.Action, r]));
    const IN_SCRIPT = 0x400;
    const NO_IMPERSONATE = 0x800;
    const write = ca.LatchkeyWriteEnrollFile!;
    // Type 50: an executable named by a property (LK_CMD = [System64Folder]cmd.exe), deferred, not impersonated, target hidden.
    assert.equal(Number(write.Type) & 0x3f, 50);
    for (const bit of [IN_SCRIPT, NO_IMPERSONATE, HIDE_TARGET]) assert.equal(Number(write.Type) & bit, bit, `type ${write.Type} has 0x${bit.toString(16)}`);
    assert.equal(write.Source, 'LK_CMD');
    assert.deepEqual([ca.LatchkeySetCmd?.Type, ca.LatchkeySetCmd?.Source, ca.LatchkeySetCmd?.Target], ['51', 'LK_CMD', '[System64Folder]cmd.exe']);
    assert.match(write.Target!, /^\/d \/s \/c "set "LATCHKEY_TOKEN=\[ENROLL_TOKEN\]"&& "\[#latchkey\.exe\]" enroll-file write /);
    assert.equal(write.Target!.split('[ENROLL_TOKEN]').length, 2, 'the token appears once, in the set command');
    const ROLLBACK = 0x100;
    for (const [name, target, extra] of [['LatchkeyServiceInstall', 'service install', 0], ['LatchkeyServiceUninstall', 'service uninstall', 0x40], ['LatchkeyServiceRollback', 'service uninstall', 0x40 | ROLLBACK]] as const) {
      const a = ca[name]!;
      assert.equal(Number(a.Type) & 0x3f, 18, `${name}: an installed file run with arguments`);
      assert.deepEqual([a.Source, a.Target], ['latchkey.exe', target]);
      assert.equal(Number(a.Type) & (IN_SCRIPT | NO_IMPERSONATE | 0x40 | ROLLBACK), IN_SCRIPT | NO_IMPERSONATE | extra, `${name} type ${a.Type}`);
    }
    const seq = Object.fromEntries((await table(b.msi, 'InstallExecuteSequence')).map((r) => [r.Action, { n: Number(r.Sequence), cond: r.Condition }]));
    const n = (a: string): number => seq[a]!.n;
    for (const a of ['LatchkeyWriteEnrollFile', 'LatchkeyServiceInstall', 'LatchkeyServiceUninstall']) assert.ok(n(a) > n('InstallInitialize') && n(a) < n('InstallFinalize'), `${a} is in the script`);
    assert.ok(n('LatchkeyServiceUninstall') < n('RemoveFiles'));
    assert.ok(n('InstallFiles') < n('LatchkeyWriteEnrollFile') && n('LatchkeyWriteEnrollFile') < n('LatchkeyServiceInstall'), 'files, then the enroll file, then the service');
    assert.ok(n('LatchkeyServiceRollback') < n('LatchkeyServiceInstall'), 'the rollback is scheduled before what it undoes');
    assert.ok(n('LatchkeySetCmd') > n('CostFinalize') && n('LatchkeySetCmd') < n('InstallInitialize'));
    assert.equal(seq.LatchkeyWriteEnrollFile!.cond, 'SERVER_URL AND NOT (REMOVE~="ALL")');
    assert.equal(seq.LatchkeyServiceInstall!.cond, 'NOT (REMOVE~="ALL") AND NOT NO_SERVICE');
    assert.equal(seq.LatchkeyServiceRollback!.cond, 'NOT (REMOVE~="ALL") AND NOT NO_SERVICE');
    assert.equal(seq.LatchkeyServiceUninstall!.cond, 'REMOVE~="ALL"');
  });

  test('the enroll-file command line, formatted as Windows Installer and cmd /s /c would, is accepted by the real agent (run on Linux)', { timeout: 600_000 }, async (t) => {
    const b = await get(t);
    if (!b) return;
    const write = (await table(b.msi, 'CustomAction')).find((r) => r.Action === 'LatchkeyWriteEnrollFile')!.Target!;
    const dir = tempDir(t, 'latchkey-msi-ca-');
    const token = 'lk_enr_Zm9yIHRoZSBNU0kgdGVzdCBvbmx5XzEyMzQ1Njc4OQ';
    const fp = `sha256:${'c0ffee'.repeat(10)}0123`;
    // [PROP] → value, [DIR] → path with its trailing separator (Windows Installer "Formatted").
    const values: Record<string, string> = { ENROLL_TOKEN: token, SERVER_URL: 'https://latchkey.example.com:8443', CA_FINGERPRINT: fp, KEYSTORE: 'file', PROGRAMDATADIR: `${dir}/`, '#latchkey.exe': AGENT_CLI };
    const formatted = write.replace(/\[([#A-Za-z_.]+)\]/g, (_, k: string) => values[k] ?? assert.fail(`unknown property ${k}`));
    // cmd /d /s /c "X": X with its outer quotes removed; X = set "LATCHKEY_TOKEN=…"&& "exe" args…
    const inner = /^\/d \/s \/c "(.*)"$/.exec(formatted)![1]!;
    const m = /^set "LATCHKEY_TOKEN=([^"]*)"&& "([^"]+)" (.*)$/.exec(inner);
    assert.ok(m, inner);
    const [, envToken, exe, rest] = m;
    assert.equal(envToken, token);
    assert.equal(exe, AGENT_CLI);
    const args = splitArgs(rest!);
    assert.ok(!args.some((a) => a.includes(token)), 'the token is not an argument of latchkey.exe');
    const r = await run(process.execPath, [exe!, ...args], { env: { LATCHKEY_TOKEN: envToken! }, input: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'enroll.json'), 'utf8')), { server: values.SERVER_URL, caFingerprint: fp, keystore: 'file', tokenFile: join(dir, 'enroll-token') });
    assert.equal(readFileSync(join(dir, 'enroll-token'), 'utf8'), `${token}\n`);
    assert.ok(!(r.stdout + r.stderr).includes(token));
    // An MDM pushing the MSI again with another token replaces it (--force): msiexec's properties are the authority.
    const again = await run(process.execPath, [exe!, ...args], { env: { LATCHKEY_TOKEN: 'lk_enr_second' }, input: '' });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(readFileSync(join(dir, 'enroll-token'), 'utf8'), 'lk_enr_second\n');
  });

  test('Wine runs the MSI: msiexec /i with the MDM properties installs latchkey.exe and writes the enroll file and token through the custom action; msiexec /x removes the program and keeps the enroll file (Wine, not Windows)', { timeout: 600_000 }, async (t) => {
    const b = await get(t);
    if (!b || !requireTools(t, 'wine')) return;
    // Wine's msiexec and cmd.exe: a real run of the tables, the formatted command line and cmd's `set …&&`, but not
    // Windows: no SYSTEM account, and no .NET for the WinSW wrapper, so NO_SERVICE=1 leaves the service out.
    const prefix = tempDir(t, 'latchkey-wine-');
    const env = { WINEPREFIX: prefix, WINEDEBUG: '-all', DISPLAY: '' };
    const boot = await run('wine', ['wineboot', '--init'], { env });
    assert.equal(boot.code, 0, boot.stderr);
    // Node refuses Windows versions before 8.1; Wine's default prefix says Windows 7.
    assert.equal((await run('wine', ['winecfg', '/v', 'win10'], { env })).code, 0);
    // Output to files, not pipes: Node inside Wine cannot open a Unix pipe handed down as a Windows pipe (EBADF).
    const wine = (args: string[]): { code: number | null; stdout: string; stderr: string } => {
      const o = join(prefix, 'out.txt');
      const e = join(prefix, 'err.txt');
      const fo = openSync(o, 'w');
      const fe = openSync(e, 'w');
      try {
        const p = spawnSync('wine', args, { env: { ...process.env, ...env }, stdio: ['ignore', fo, fe], timeout: 300_000 });
        return { code: p.status, stdout: readFileSync(o, 'utf8'), stderr: readFileSync(e, 'utf8') };
      } finally {
        closeSync(fo);
        closeSync(fe);
      }
    };
    const token = 'lk_enr_V2luZSBydW5zIHRoZSBNU0lfdGVzdF8xMjM0NTY';
    const fp = `sha256:${'ab'.repeat(32)}`;
    const drive = join(prefix, 'drive_c');
    const r = wine(['msiexec', '/i', b.msi, 'SERVER_URL=https://latchkey.example.com:8443', `CA_FINGERPRINT=${fp}`, `ENROLL_TOKEN=${token}`, 'KEYSTORE=file', 'NO_SERVICE=1', '/qn', '/l*v', 'C:\\msi.log']);
    const log = readFileSync(join(drive, 'msi.log'), 'latin1');
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${log.slice(-3000)}`);
    assert.match(log, /Action ended [\d:]+: LatchkeyWriteEnrollFile\. Return value 1\./);
    assert.doesNotMatch(log, /Action start [\d:]+: LatchkeyServiceInstall\./, 'NO_SERVICE=1 skips the service');
    assert.equal(sha256(join(drive, 'Program Files/Latchkey/latchkey.exe')), sha256(b.exe));
    assert.deepEqual(JSON.parse(readFileSync(join(drive, 'ProgramData/Latchkey/enroll.json'), 'utf8')), {
      server: 'https://latchkey.example.com:8443', caFingerprint: fp, keystore: 'file', tokenFile: 'C:\\ProgramData\\Latchkey\\enroll-token',
    });
    assert.equal(readFileSync(join(drive, 'ProgramData/Latchkey/enroll-token'), 'utf8'), `${token}\n`);
    assert.ok(!(r.stdout + r.stderr).includes(token));
    // Wine's MSI implementation ignores MsiHiddenProperties (Windows Installer writes **** instead): its log is not a check of hiding.

    const x = wine(['msiexec', '/x', b.msi, '/qn']);
    assert.equal(x.code, 0, x.stderr);
    assert.throws(() => statSync(join(drive, 'Program Files/Latchkey/latchkey.exe')), /ENOENT/);
    assert.ok(statSync(join(drive, 'ProgramData/Latchkey/enroll.json')).isFile(), 'the enroll file and the state stay');
  });
});
