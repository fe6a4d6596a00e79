import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { launchdPlist, systemdUnit, WINSW_EXE_CONFIG, winswXml } from './service-files.js';
import { installService, uninstallService, winswFromSea, type RunResult, type ServiceDeps } from './service-install.js';
import { ServiceError, type ServiceSpec } from './service-types.js';

/**
 * The machine as tests see it: files under a temp root, commands recorded as
 * one line each; `codes` answers a command line (by prefix) with an exit code.
 */
function machine(
  t: TestContext,
  platform: NodeJS.Platform,
  opts: {
    privileged?: boolean | undefined;
    codes?: Record<string, number | RunResult>;
    answer?: (cmd: string, args: readonly string[]) => RunResult | undefined;
    /** Linux: what systemd runs (sd_booted's /run/systemd/system, the user manager's /run/user/501/systemd); both by default. */
    systemd?: 'system+user' | 'system' | 'none';
  } = {},
) {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-svc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const systemd = opts.systemd ?? 'system+user';
  if (platform === 'linux' && systemd !== 'none') mkdirSync(join(root, 'run/systemd/system'), { recursive: true });
  if (platform === 'linux' && systemd === 'system+user') mkdirSync(join(root, 'run/user/501/systemd'), { recursive: true });
  const ran: string[] = [];
  let slept = 0;
  const codes = { ...opts.codes };
  const deps: ServiceDeps = {
    platform,
    root,
    home: platform === 'darwin' ? '/Users/alice' : '/home/alice',
    uid: 501,
    privileged: 'privileged' in opts ? opts.privileged : true,
    run: async (cmd, args) => {
      const line = [cmd, ...args].join(' ');
      ran.push(line);
      const hit = Object.keys(codes).find((k) => line.startsWith(k));
      const r = hit === undefined ? (opts.answer?.(cmd, args) ?? 0) : codes[hit]!;
      return typeof r === 'number' ? { code: r, stdout: '', stderr: '' } : r;
    },
    winsw: async () => WINSW_BYTES,
    sleep: async () => {
      slept++;
    },
  };
  const file = (p: string) => join(root, p);
  const take = () => ran.splice(0);
  return { deps, ran, codes, file, take, slept: () => slept };
}

/** Stands in for the WinSW binary: the tests check that these exact bytes land on disk. */
const WINSW_BYTES = new Uint8Array([0x4d, 0x5a, 0x90, 0x00, 0x57, 0x69, 0x6e, 0x53, 0x57]);

const isCode = (code: ServiceError['code']) => (e: unknown) => e instanceof ServiceError && e.code === code;

describe('Linux: systemd', () => {
  const spec: ServiceSpec = { command: ['/usr/local/bin/latchkey'], stateDir: '/var/lib/latchkey', scope: 'system' };
  const UNIT = '/etc/systemd/system/latchkey.service';

  test('system install writes /etc/systemd/system/latchkey.service (0644), reloads, enables and starts; twice is the same', async (t) => {
    const m = machine(t, 'linux');
    const r = await installService(spec, m.deps);
    assert.equal(r.path, UNIT);
    assert.equal(readFileSync(m.file(UNIT), 'utf8'), systemdUnit(spec));
    assert.equal(statSync(m.file(UNIT)).mode & 0o777, 0o644);
    assert.equal(statSync(m.file('/var/lib/latchkey')).mode & 0o777, 0o700);
    assert.deepEqual(m.take(), ['systemctl daemon-reload', 'systemctl enable --now latchkey.service']);
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), ['systemctl daemon-reload', 'systemctl enable --now latchkey.service']);
  });

  test('a changed definition restarts a running service (enable --now alone would keep the old one)', async (t) => {
    const m = machine(t, 'linux');
    await installService(spec, m.deps);
    m.take();
    const moved = { ...spec, command: ['/opt/latchkey/latchkey'] };
    await installService(moved, m.deps);
    assert.deepEqual(m.take(), ['systemctl daemon-reload', 'systemctl try-restart latchkey.service', 'systemctl enable --now latchkey.service']);
    assert.equal(readFileSync(m.file(UNIT), 'utf8'), systemdUnit(moved));
  });

  test('uninstall disables, stops and removes; a second uninstall does nothing', async (t) => {
    const m = machine(t, 'linux');
    await installService(spec, m.deps);
    m.take();
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), ['systemctl disable --now latchkey.service', 'systemctl daemon-reload']);
    assert.equal(existsSync(m.file(UNIT)), false);
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), []);
  });

  test('not root: a clear error before anything is written or run', async (t) => {
    const m = machine(t, 'linux', { privileged: false });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('NOT_PRIVILEGED')(e) && /sudo/.test((e as Error).message) && /--user/.test((e as Error).message));
    await assert.rejects(uninstallService({ scope: 'system' }, m.deps), isCode('NOT_PRIVILEGED'));
    assert.equal(existsSync(m.file(UNIT)), false);
    assert.deepEqual(m.ran, []);
  });

  test('user install: ~/.config/systemd/user, systemctl --user, no root needed', async (t) => {
    const m = machine(t, 'linux', { privileged: false });
    const user: ServiceSpec = { ...spec, stateDir: '/home/alice/.local/state/latchkey', scope: 'user' };
    const r = await installService(user, m.deps);
    assert.equal(r.path, '/home/alice/.config/systemd/user/latchkey.service');
    assert.equal(readFileSync(m.file(r.path), 'utf8'), systemdUnit(user));
    assert.deepEqual(m.take(), ['systemctl --user daemon-reload', 'systemctl --user enable --now latchkey.service']);
    await uninstallService({ scope: 'user' }, m.deps);
    assert.deepEqual(m.take(), ['systemctl --user disable --now latchkey.service', 'systemctl --user daemon-reload']);
    assert.equal(existsSync(m.file(r.path)), false);
  });

  test('no systemd (a container, another init): a clear error before anything is written or run', async (t) => {
    const m = machine(t, 'linux', { systemd: 'none' });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('UNSUPPORTED')(e) && /systemd is not running/.test((e as Error).message) && /nothing was installed/.test((e as Error).message));
    assert.equal(existsSync(m.file(UNIT)), false);
    assert.equal(existsSync(m.file(spec.stateDir)), false);
    assert.deepEqual(m.ran, []);
  });

  test('no systemd user manager (su, no login session): --user is refused before anything is written', async (t) => {
    const m = machine(t, 'linux', { privileged: false, systemd: 'system' });
    const user: ServiceSpec = { ...spec, stateDir: '/home/alice/.local/state/latchkey', scope: 'user' };
    await assert.rejects(installService(user, m.deps), (e: unknown) => isCode('UNSUPPORTED')(e) && /no systemd user manager is running for uid 501/.test((e as Error).message) && /enable-linger/.test((e as Error).message));
    assert.equal(existsSync(m.file('/home/alice/.config/systemd/user/latchkey.service')), false);
    assert.deepEqual(m.ran, []);
  });

  test('uninstall removes a unit file left on a machine without systemd (by an install that failed), running nothing', async (t) => {
    const m = machine(t, 'linux', { systemd: 'none' });
    mkdirSync(m.file('/etc/systemd/system'), { recursive: true });
    writeFileSync(m.file(UNIT), systemdUnit(spec));
    const r = await uninstallService({ scope: 'system' }, m.deps);
    assert.equal(r.path, UNIT);
    assert.equal(existsSync(m.file(UNIT)), false);
    assert.deepEqual(m.ran, []);
    const user = '/home/alice/.config/systemd/user/latchkey.service';
    mkdirSync(m.file('/home/alice/.config/systemd/user'), { recursive: true });
    writeFileSync(m.file(user), systemdUnit({ ...spec, scope: 'user' }));
    await uninstallService({ scope: 'user' }, m.deps);
    assert.equal(existsSync(m.file(user)), false);
    assert.deepEqual(m.ran, []);
  });

  test("a failing systemctl is an error that carries systemctl's own message", async (t) => {
    const m = machine(t, 'linux', { codes: { 'systemctl enable': { code: 1, stdout: '', stderr: 'Failed to enable unit: Access denied\n' } } });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('COMMAND_FAILED')(e) && /`systemctl enable --now latchkey.service` failed with exit code 1: Failed to enable unit: Access denied$/.test((e as Error).message));
  });
});

describe('macOS: launchd', () => {
  const spec: ServiceSpec = { command: ['/usr/local/bin/latchkey'], stateDir: '/Library/Application Support/Latchkey', scope: 'system' };
  const PLIST = '/Library/LaunchDaemons/com.latchkey.agent.plist';
  const NOT_LOADED = { 'launchctl print': 113 }; // "Could not find service"

  test('system install writes the LaunchDaemon (0644) and bootstraps it into the system domain', async (t) => {
    const m = machine(t, 'darwin', { codes: { ...NOT_LOADED } });
    const r = await installService(spec, m.deps);
    assert.equal(r.path, PLIST);
    assert.equal(readFileSync(m.file(PLIST), 'utf8'), launchdPlist({ ...spec, logPath: '/Library/Logs/latchkey.log' }));
    assert.equal(statSync(m.file(PLIST)).mode & 0o777, 0o644);
    assert.deepEqual(m.take(), [
      'launchctl print system/com.latchkey.agent',
      'launchctl enable system/com.latchkey.agent',
      `launchctl bootstrap system ${PLIST}`,
    ]);
  });

  test('loaded and unchanged: nothing to do; loaded and changed: bootout, then bootstrap the new one', async (t) => {
    const m = machine(t, 'darwin', { codes: { ...NOT_LOADED } });
    await installService(spec, m.deps);
    m.take();
    delete m.codes['launchctl print'];
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), ['launchctl print system/com.latchkey.agent']);
    await installService({ ...spec, command: ['/opt/latchkey'] }, m.deps);
    assert.deepEqual(m.take(), [
      'launchctl print system/com.latchkey.agent',
      'launchctl bootout system/com.latchkey.agent',
      'launchctl enable system/com.latchkey.agent',
      `launchctl bootstrap system ${PLIST}`,
    ]);
  });

  test('uninstall boots it out and removes the plist; a second uninstall only looks', async (t) => {
    const m = machine(t, 'darwin', { codes: { ...NOT_LOADED } });
    await installService(spec, m.deps);
    delete m.codes['launchctl print'];
    m.take();
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), ['launchctl print system/com.latchkey.agent', 'launchctl bootout system/com.latchkey.agent']);
    assert.equal(existsSync(m.file(PLIST)), false);
    m.codes['launchctl print'] = 113;
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), ['launchctl print system/com.latchkey.agent']);
  });

  test('user install: a LaunchAgent in ~/Library/LaunchAgents, in the gui/<uid> domain; not root for a LaunchDaemon is refused', async (t) => {
    const m = machine(t, 'darwin', { privileged: false, codes: { ...NOT_LOADED } });
    const user: ServiceSpec = { ...spec, stateDir: '/Users/alice/Library/Application Support/Latchkey', scope: 'user' };
    const r = await installService(user, m.deps);
    assert.equal(r.path, '/Users/alice/Library/LaunchAgents/com.latchkey.agent.plist');
    assert.equal(readFileSync(m.file(r.path), 'utf8'), launchdPlist({ ...user, logPath: '/Users/alice/Library/Logs/latchkey.log' }));
    assert.deepEqual(m.take(), [
      'launchctl print gui/501/com.latchkey.agent',
      'launchctl enable gui/501/com.latchkey.agent',
      `launchctl bootstrap gui/501 ${r.path}`,
    ]);
    await assert.rejects(installService(spec, m.deps), isCode('NOT_PRIVILEGED'));
  });
});

describe('Windows: WinSW', () => {
  const spec: ServiceSpec = { command: ['C:\\Program Files\\Latchkey\\latchkey.exe'], stateDir: 'C:\\ProgramData\\Latchkey', scope: 'system' };
  const SVC = 'C:\\Program Files\\Latchkey\\latchkey-service.exe';
  const XML = 'C:\\Program Files\\Latchkey\\latchkey-service.xml';
  const CONFIG = 'C:\\Program Files\\Latchkey\\latchkey-service.exe.config';
  const onDisk = (m: ReturnType<typeof machine>, p: string) => m.file(p.replace(/^([A-Z]):/, '$1').replaceAll('\\', '/'));

  /**
   * The Service Control Manager as WinSW 1.17 shows it: `status` prints
   * NonExistent / Stopped / Started; `stop` returns before the service has
   * stopped (it still reads Started for `stopPolls` more status calls).
   */
  function winMachine(t: TestContext, scm: { state: 'NonExistent' | 'Stopped' | 'Started'; stopPolls?: number; codes?: Record<string, number | RunResult> }) {
    let stopping = 0;
    const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
    const m = machine(t, 'win32', {
      privileged: undefined,
      codes: scm.codes,
      answer: (cmd, args) => {
        assert.equal(cmd, SVC, 'every command goes through the wrapper beside latchkey.exe');
        assert.ok(existsSync(onDisk(m, XML)) && existsSync(onDisk(m, CONFIG)), 'WinSW runs only with its XML and .exe.config beside it');
        switch (args[0]) {
          case 'status':
            if (stopping > 0 && --stopping === 0) scm.state = 'Stopped';
            return ok(`${scm.state}\r\n`);
          case 'install':
            if (scm.state !== 'NonExistent') return { code: -1, stdout: "Service with id 'latchkey' already exists\r\n", stderr: 'System.Exception: Installation failure' };
            scm.state = 'Stopped';
            return ok();
          case 'start':
            scm.state = 'Started';
            return ok();
          case 'stop':
            stopping = (scm.stopPolls ?? 0) + 1;
            return ok();
          case 'uninstall':
            scm.state = 'NonExistent';
            return ok();
          default:
            throw new Error(`unexpected ${args.join(' ')}`);
        }
      },
    });
    // latchkey.exe itself, where the installer finds it.
    mkdirSync(onDisk(m, 'C:\\Program Files\\Latchkey'), { recursive: true });
    writeFileSync(onDisk(m, spec.command[0]!), 'latchkey.exe');
    return m;
  }
  const svc = (...args: string[]) => [SVC, ...args].join(' ');

  test('a new service: writes latchkey-service.exe (the WinSW bytes), .exe.config and .xml beside latchkey.exe, then install and start', async (t) => {
    const m = winMachine(t, { state: 'NonExistent' });
    const r = await installService(spec, m.deps);
    assert.equal(r.path, XML);
    assert.deepEqual(new Uint8Array(readFileSync(onDisk(m, SVC))), WINSW_BYTES);
    assert.equal(readFileSync(onDisk(m, XML), 'utf8'), winswXml(spec));
    assert.equal(readFileSync(onDisk(m, CONFIG), 'utf8'), WINSW_EXE_CONFIG);
    assert.ok(statSync(onDisk(m, 'C:\\ProgramData\\Latchkey\\logs')).isDirectory());
    assert.deepEqual(m.take(), [svc('status'), svc('install'), svc('start')]);
    assert.deepEqual(r.commands.map((c) => c.cmd), [SVC, SVC, SVC]);
  });

  test('twice is the same: installed, unchanged and running, it only asks; installed but stopped, it starts', async (t) => {
    const scm = { state: 'NonExistent' as 'NonExistent' | 'Stopped' | 'Started' };
    const m = winMachine(t, scm);
    await installService(spec, m.deps);
    m.take();
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), [svc('status')]);
    scm.state = 'Stopped';
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), [svc('status'), svc('start')]);
  });

  test('a changed definition (another state dir): stop, wait until stopped, register again, start', async (t) => {
    const scm = { state: 'NonExistent' as 'NonExistent' | 'Stopped' | 'Started', stopPolls: 2 };
    const m = winMachine(t, scm);
    await installService(spec, m.deps);
    m.take();
    const moved = { ...spec, stateDir: 'D:\\Latchkey State' };
    await installService(moved, m.deps);
    assert.deepEqual(m.take(), [svc('status'), svc('stop'), svc('status'), svc('status'), svc('status'), svc('uninstall'), svc('install'), svc('start')]);
    assert.equal(m.slept(), 2);
    assert.match(readFileSync(onDisk(m, XML), 'utf8'), /<arguments>run --state-dir &quot;D:\\Latchkey State&quot;<\/arguments>/);
  });

  test('a new WinSW binary replaces a running one only after the old wrapper has stopped the service', async (t) => {
    const scm = { state: 'NonExistent' as 'NonExistent' | 'Stopped' | 'Started' };
    const m = winMachine(t, scm);
    await installService(spec, m.deps);
    writeFileSync(onDisk(m, SVC), 'an older WinSW');
    m.take();
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), [svc('status'), svc('stop'), svc('status'), svc('status'), svc('uninstall'), svc('install'), svc('start')]);
    assert.deepEqual(new Uint8Array(readFileSync(onDisk(m, SVC))), WINSW_BYTES);
  });

  test('a service of that name left by another install (files missing here) is re-registered with this wrapper', async (t) => {
    const m = winMachine(t, { state: 'Started' });
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), [svc('status'), svc('stop'), svc('status'), svc('uninstall'), svc('install'), svc('start')]);
  });

  test('uninstall: stop (and wait), uninstall, remove the three files; a second uninstall does nothing', async (t) => {
    const m = winMachine(t, { state: 'NonExistent', stopPolls: 1 });
    await installService(spec, m.deps);
    m.take();
    const r = await uninstallService({ scope: 'system', command: spec.command }, m.deps);
    assert.equal(r.path, XML);
    assert.deepEqual(m.take(), [svc('status'), svc('stop'), svc('status'), svc('status'), svc('uninstall')]);
    assert.deepEqual(readdirSync(onDisk(m, 'C:\\Program Files\\Latchkey')), ['latchkey.exe']);
    await uninstallService({ scope: 'system', command: spec.command }, m.deps);
    assert.deepEqual(m.take(), []);
  });

  test('a service that does not stop within 30 s is an error that says what to do', async (t) => {
    const m = winMachine(t, { state: 'NonExistent', stopPolls: 1000 });
    await installService(spec, m.deps);
    await assert.rejects(uninstallService({ scope: 'system', command: spec.command }, m.deps), (e: unknown) => isCode('COMMAND_FAILED')(e) && /did not stop within 30 s; stop it \(`net stop latchkey`\)/.test((e as Error).message));
    assert.equal(m.slept(), 60);
    assert.ok(existsSync(onDisk(m, SVC)), 'nothing removed while it runs');
  });

  test('access denied from WinSW (WMI AccessDenied = 2, or the message) says to use an elevated prompt', async (t) => {
    const m = winMachine(t, { state: 'NonExistent', codes: { [svc('install')]: { code: 2, stdout: '', stderr: 'WMI.WmiException: AccessDenied' } } });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('NOT_PRIVILEGED')(e) && /elevated \(Administrator\) prompt/.test((e as Error).message));
    const m2 = winMachine(t, { state: 'Started', codes: { [svc('stop')]: { code: -1, stdout: '', stderr: 'System.UnauthorizedAccessException: Access is denied.' } } });
    await assert.rejects(installService(spec, m2.deps), isCode('NOT_PRIVILEGED'));
  });

  test('a service still marked for deletion: the error names the open Services console', async (t) => {
    const m = winMachine(t, { state: 'NonExistent', codes: { [svc('install')]: { code: -1, stdout: "Service with id 'latchkey' already exists\r\n", stderr: '' } } });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('COMMAND_FAILED')(e) && /services\.msc/.test((e as Error).message));
  });

  test('outside the packaged latchkey.exe there is no WinSW: a clear error before anything is written or run', async (t) => {
    const m = winMachine(t, { state: 'NonExistent' });
    m.deps.winsw = winswFromSea; // this test runs in plain node, not in a single executable
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('UNSUPPORTED')(e) && /needs the packaged latchkey\.exe/.test((e as Error).message));
    assert.deepEqual(m.ran, []);
    assert.deepEqual(readdirSync(onDisk(m, 'C:\\Program Files\\Latchkey')), ['latchkey.exe']);
    assert.equal(existsSync(onDisk(m, 'C:\\ProgramData')), false);
  });

  test('--user is refused; uninstall needs to know where latchkey.exe is', async (t) => {
    const m = winMachine(t, { state: 'NonExistent' });
    await assert.rejects(installService({ ...spec, scope: 'user' }, m.deps), isCode('UNSUPPORTED'));
    await assert.rejects(uninstallService({ scope: 'user' }, m.deps), isCode('UNSUPPORTED'));
    await assert.rejects(uninstallService({ scope: 'system' }, m.deps), isCode('INVALID'));
    assert.deepEqual(m.ran, []);
  });
});

test('a platform without a supported service manager is a clear error', async (t) => {
  const m = machine(t, 'freebsd');
  await assert.rejects(installService({ command: ['/usr/local/bin/latchkey'], stateDir: '/var/db/latchkey', scope: 'system' }, m.deps), (e: unknown) => isCode('UNSUPPORTED')(e) && /latchkey run/.test((e as Error).message));
});
