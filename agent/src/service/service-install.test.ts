import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { launchdPlist, systemdUnit, windowsService } from './service-files.js';
import { installService, uninstallService, type RunResult, type ServiceDeps } from './service-install.js';
import { ServiceError, type ServiceSpec } from './service-types.js';

/**
 * The machine as tests see it: files under a temp root, commands recorded as
 * one line each; `codes` answers a command line (by prefix) with an exit code.
 */
function machine(t: TestContext, platform: NodeJS.Platform, opts: { privileged?: boolean | undefined; codes?: Record<string, number | RunResult> } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-svc-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const ran: string[] = [];
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
      const r = hit === undefined ? 0 : codes[hit]!;
      return typeof r === 'number' ? { code: r, stdout: '', stderr: '' } : r;
    },
  };
  const file = (p: string) => join(root, p);
  const take = () => ran.splice(0);
  return { deps, ran, codes, file, take };
}

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

describe('Windows: sc.exe', () => {
  const spec: ServiceSpec = { command: ['C:\\Program Files\\Latchkey\\latchkey.exe'], stateDir: 'C:\\ProgramData\\Latchkey', scope: 'system' };
  const def = windowsService(spec);
  const line = (c: { cmd: string; args: string[] }) => [c.cmd, ...c.args].join(' ');
  const ABSENT = { 'sc.exe query': 1060 }; // ERROR_SERVICE_DOES_NOT_EXIST

  test('a new service: create, failure actions, description, start', async (t) => {
    const m = machine(t, 'win32', { privileged: undefined, codes: { ...ABSENT } });
    const r = await installService(spec, m.deps);
    assert.equal(r.path, null);
    assert.deepEqual(r.commands[1], def.create);
    assert.deepEqual(m.take(), ['sc.exe query latchkey', line(def.create), line(def.failure), line(def.failureFlag), line(def.description), 'sc.exe start latchkey']);
    assert.equal(
      line(def.create),
      'sc.exe create latchkey binPath= "C:\\Program Files\\Latchkey\\latchkey.exe" run --state-dir C:\\ProgramData\\Latchkey start= auto DisplayName= Latchkey device agent',
    );
  });

  test('an existing service is stopped, reconfigured and started again (already running is fine)', async (t) => {
    const m = machine(t, 'win32', { codes: { 'sc.exe start': 1056, 'net.exe stop': 2 } });
    await installService(spec, m.deps);
    assert.deepEqual(m.take(), ['sc.exe query latchkey', 'net.exe stop latchkey', line(def.config), line(def.failure), line(def.failureFlag), line(def.description), 'sc.exe start latchkey']);
  });

  test('uninstall stops and deletes; when absent it only looks', async (t) => {
    const m = machine(t, 'win32', { codes: { 'sc.exe delete': 1072 } });
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), ['sc.exe query latchkey', 'net.exe stop latchkey', 'sc.exe delete latchkey']);
    m.codes['sc.exe query'] = 1060;
    await uninstallService({ scope: 'system' }, m.deps);
    assert.deepEqual(m.take(), ['sc.exe query latchkey']);
  });

  test('access denied (5) from sc.exe says to use an elevated prompt; --user is refused', async (t) => {
    const m = machine(t, 'win32', { privileged: undefined, codes: { ...ABSENT, 'sc.exe create': 5 } });
    await assert.rejects(installService(spec, m.deps), (e: unknown) => isCode('NOT_PRIVILEGED')(e) && /elevated/.test((e as Error).message));
    await assert.rejects(installService({ ...spec, scope: 'user' }, m.deps), isCode('UNSUPPORTED'));
    await assert.rejects(uninstallService({ scope: 'user' }, m.deps), isCode('UNSUPPORTED'));
  });
});

test('a platform without a supported service manager is a clear error', async (t) => {
  const m = machine(t, 'freebsd');
  await assert.rejects(installService({ command: ['/usr/local/bin/latchkey'], stateDir: '/var/db/latchkey', scope: 'system' }, m.deps), (e: unknown) => isCode('UNSUPPORTED')(e) && /latchkey run/.test((e as Error).message));
});
