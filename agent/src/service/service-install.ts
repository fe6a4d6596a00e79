/**
 * `latchkey service install|uninstall`: put the service definition where the
 * OS service manager looks for it and (re)start it, or stop and remove it.
 * Every effect goes through ServiceDeps (a file-system root, the platform, a
 * `run`), so tests check the exact files and commands for each platform.
 * Both are idempotent: running them twice leaves the same state.
 */
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, posix, win32 } from 'node:path';
import { getAsset, isSea } from 'node:sea';
import { setTimeout as delay } from 'node:timers/promises';
import { writeFileAtomic } from '../state/atomic.js';
import { launchdPlist, systemdUnit, WINSW_EXE_CONFIG, winswLogDir, winswXml } from './service-files.js';
import { LAUNCHD_LABEL, SERVICE_NAME, ServiceError, WINSW_BASENAME, type Command, type ServiceSpec } from './service-types.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell; resolves with its exit code (never rejects on a non-zero exit). */
export type Run = (cmd: string, args: readonly string[]) => Promise<RunResult>;

export interface ServiceDeps {
  platform: NodeJS.Platform;
  /** Prefix of every file written or removed: '/' on the machine, a temp dir in tests. */
  root: string;
  home: string;
  /** The user's uid: launchd's per-user domain is gui/<uid>. */
  uid: number;
  /** root on Unix. undefined when unknown (Windows): "access denied" from a write or from WinSW is reported instead. */
  privileged: boolean | undefined;
  run: Run;
  /** Windows: the bytes of the WinSW service wrapper (the packaged latchkey.exe carries them as a SEA asset). */
  winsw: () => Promise<Uint8Array>;
  /** Waits between status polls (Windows); setTimeout when left out. */
  sleep?: (ms: number) => Promise<void>;
}

export interface ServiceResult {
  /** The unit / plist / WinSW XML on the machine. */
  path: string | null;
  /** Commands run, in order. */
  commands: Command[];
}

export async function installService(s: ServiceSpec, deps: ServiceDeps): Promise<ServiceResult> {
  return forPlatform(s, deps).install();
}

/**
 * Stops, disables and removes the service of that scope; nothing to do when it
 * is not installed. Windows needs `command` (the agent's own argv): the
 * wrapper sits beside the agent's executable.
 */
export async function uninstallService(s: Pick<ServiceSpec, 'scope'> & { command?: readonly string[] }, deps: ServiceDeps): Promise<ServiceResult> {
  return forPlatform({ command: [], stateDir: '/', ...s }, deps).uninstall();
}

/** SEA asset key of the WinSW binary in the Windows build (scripts/package.mjs adds it). */
export const WINSW_ASSET = 'winsw.exe';

/** The WinSW bytes from the running single executable, or a clear error when this is not the packaged latchkey.exe. */
export async function winswFromSea(): Promise<Uint8Array> {
  if (!isSea()) {
    throw new ServiceError('UNSUPPORTED', 'service install on Windows needs the packaged latchkey.exe, which carries the WinSW service wrapper: build it with `pnpm --filter @latchkey/agent package --target win-x64` and run `latchkey.exe service install` from an elevated prompt');
  }
  try {
    return new Uint8Array(getAsset(WINSW_ASSET));
  } catch (e) {
    throw new ServiceError('UNSUPPORTED', `this latchkey.exe was built without the WinSW service wrapper (SEA asset ${WINSW_ASSET}); package it again with scripts/package.mjs --target win-x64`, { cause: e });
  }
}

/** The real machine: '/' as root, child_process for commands. */
export function nodeServiceDeps(): ServiceDeps {
  return {
    platform: process.platform,
    root: '/',
    home: homedir(),
    uid: process.getuid?.() ?? -1,
    privileged: process.platform === 'win32' ? undefined : process.getuid?.() === 0,
    winsw: winswFromSea,
    sleep: (ms) => delay(ms),
    run: (cmd, args) =>
      new Promise((resolve, reject) => {
        execFile(cmd, args, { windowsHide: true }, (err, stdout, stderr) => {
          const code = (err as { code?: unknown } | null)?.code;
          if (err && typeof code !== 'number') reject(new ServiceError('COMMAND_FAILED', `could not run ${cmd}: ${err.message}`, { cause: err }));
          else resolve({ code: typeof code === 'number' ? code : 0, stdout, stderr });
        });
      }),
  };
}

interface Steps {
  install(): Promise<ServiceResult>;
  uninstall(): Promise<ServiceResult>;
}

function forPlatform(s: ServiceSpec, deps: ServiceDeps): Steps {
  if (s.scope === 'system' && deps.privileged === false) {
    const how = deps.platform === 'win32' ? 'from an elevated (Administrator) prompt' : 'with sudo';
    throw new ServiceError('NOT_PRIVILEGED', `a system-wide service needs administrator rights: run \`latchkey service …\` ${how}, or use --user for a per-user agent`);
  }
  switch (deps.platform) {
    case 'linux':
      return systemd(s, deps);
    case 'darwin':
      return launchd(s, deps);
    case 'win32':
      return windows(s, deps);
    default:
      throw new ServiceError('UNSUPPORTED', `no service manager support for ${deps.platform}: start \`latchkey run\` from your init system`);
  }
}

type Runner = (cmd: string, args: string[], ok?: readonly number[] | 'any') => Promise<RunResult>;

/** Runs commands, keeps the list, turns an unexpected exit code into a ServiceError. */
function runner(deps: ServiceDeps): { run: Runner; commands: Command[] } {
  const commands: Command[] = [];
  const run: Runner = async (cmd: string, args: string[], ok: readonly number[] | 'any' = [0]): Promise<RunResult> => {
    commands.push({ cmd, args });
    const r = await deps.run(cmd, args);
    if (ok !== 'any' && !ok.includes(r.code)) throw commandFailed(deps, cmd, args, r);
    return r;
  };
  return { run, commands };
}

function commandFailed(deps: ServiceDeps, cmd: string, args: readonly string[], r: RunResult, hint = ''): ServiceError {
  const line = [cmd, ...args].join(' ');
  const why = (r.stderr || r.stdout).trim();
  if (deps.platform === 'win32' && (r.code === WMI_ACCESS_DENIED || /access(\s+is)?\s*denied/i.test(why))) {
    return new ServiceError('NOT_PRIVILEGED', `\`${line}\`: access denied; run it from an elevated (Administrator) prompt`);
  }
  return new ServiceError('COMMAND_FAILED', `\`${line}\` failed with exit code ${r.code}${why ? `: ${why}` : ''}${hint}`);
}

const onDisk = (deps: ServiceDeps, p: string): string => join(deps.root, p);
const readOrNull = (p: string): Promise<string | null> => readFile(p, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));

/** Writes the file (0644: service managers refuse group/world-writable definitions); returns the previous content. */
async function put(deps: ServiceDeps, path: string, content: string): Promise<string | null> {
  const file = onDisk(deps, path);
  const before = await readOrNull(file);
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  if (before !== content) await writeFileAtomic(file, content, { mode: 0o644 });
  return before;
}

async function remove(deps: ServiceDeps, path: string): Promise<boolean> {
  const file = onDisk(deps, path);
  if ((await readOrNull(file)) === null) return false;
  await rm(file, { force: true });
  return true;
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/**
 * Why systemd cannot run the unit here, or null when it can. sd_booted(3):
 * /run/systemd/system exists only when systemd is the init system; a user
 * manager keeps its runtime files under /run/user/UID/systemd.
 */
async function systemdMissing(deps: ServiceDeps, user: boolean): Promise<string | null> {
  if (!(await exists(onDisk(deps, '/run/systemd/system')))) {
    return 'systemd is not running on this machine (no /run/systemd/system; a container or another init system): nothing was installed; start `latchkey run` from your init system or a process supervisor';
  }
  if (user && !(await exists(onDisk(deps, posix.join('/run/user', String(deps.uid), 'systemd'))))) {
    return `no systemd user manager is running for uid ${deps.uid} (no /run/user/${deps.uid}/systemd; a shell without a login session, e.g. su or a container): nothing was installed; log in on a session, or enable lingering with \`loginctl enable-linger\`, or install the system service with sudo`;
  }
  return null;
}

// systemctl(1): daemon-reload, enable --now, try-restart, disable --now.
function systemd(s: ServiceSpec, deps: ServiceDeps): Steps {
  const user = s.scope === 'user';
  const path = user ? posix.join(deps.home, '.config/systemd/user', `${SERVICE_NAME}.service`) : `/etc/systemd/system/${SERVICE_NAME}.service`;
  const unitName = `${SERVICE_NAME}.service`;
  const ctl = (...args: string[]) => (user ? ['--user', ...args] : args);
  return {
    async install() {
      const unit = systemdUnit(s);
      const { run, commands } = runner(deps);
      // Before anything is written: a unit file no manager will load is only litter.
      const missing = await systemdMissing(deps, user);
      if (missing) throw new ServiceError('UNSUPPORTED', missing);
      await mkdir(onDisk(deps, s.stateDir), { recursive: true, mode: 0o700 });
      const before = await put(deps, path, unit);
      await run('systemctl', ctl('daemon-reload'));
      // enable --now starts a stopped service but leaves a running one on its old definition.
      if (before !== null && before !== unit) await run('systemctl', ctl('try-restart', unitName));
      await run('systemctl', ctl('enable', '--now', unitName));
      return { path, commands };
    },
    async uninstall() {
      const { run, commands } = runner(deps);
      if ((await readOrNull(onDisk(deps, path))) !== null) {
        // A unit file left without a running systemd (an install that failed before this check existed): nothing to stop.
        if (await systemdMissing(deps, user)) {
          await remove(deps, path);
          return { path, commands };
        }
        await run('systemctl', ctl('disable', '--now', unitName));
        await remove(deps, path);
        await run('systemctl', ctl('daemon-reload'));
      }
      return { path, commands };
    },
  };
}

// launchctl(1): print, bootout, enable, bootstrap (the domain-target forms, macOS 10.10+).
function launchd(s: ServiceSpec, deps: ServiceDeps): Steps {
  const user = s.scope === 'user';
  const domain = user ? `gui/${deps.uid}` : 'system';
  const target = `${domain}/${LAUNCHD_LABEL}`;
  const path = user ? posix.join(deps.home, 'Library/LaunchAgents', `${LAUNCHD_LABEL}.plist`) : `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
  const logPath = user ? posix.join(deps.home, 'Library/Logs/latchkey.log') : '/Library/Logs/latchkey.log';
  return {
    async install() {
      const plist = launchdPlist({ ...s, logPath });
      const { run, commands } = runner(deps);
      await mkdir(onDisk(deps, s.stateDir), { recursive: true, mode: 0o700 });
      await mkdir(onDisk(deps, posix.dirname(logPath)), { recursive: true, mode: 0o755 });
      const before = await put(deps, path, plist);
      const loaded = (await run('launchctl', ['print', target], 'any')).code === 0;
      if (loaded && before === plist) return { path, commands };
      if (loaded) await run('launchctl', ['bootout', target]);
      // A service left disabled (launchctl disable) refuses to bootstrap.
      await run('launchctl', ['enable', target]);
      await run('launchctl', ['bootstrap', domain, path]);
      return { path, commands };
    },
    async uninstall() {
      const { run, commands } = runner(deps);
      if ((await run('launchctl', ['print', target], 'any')).code === 0) await run('launchctl', ['bootout', target]);
      await remove(deps, path);
      return { path, commands };
    },
  };
}

// ---------------------------------------------------------------- Windows (WinSW)

/**
 * WinSW 1.17 exits with the WMI Win32_Service method result when a call
 * fails (AccessDenied 2, ServiceAlreadyRunning 10, …), -1 on other errors.
 */
const WMI_ACCESS_DENIED = 2;
const WMI_SERVICE_CANNOT_ACCEPT_CONTROL = 5;
const WMI_SERVICE_NOT_ACTIVE = 6;
const WMI_SERVICE_ALREADY_RUNNING = 10;
/** Longer than the XML's stoptimeout (20 s), after which WinSW kills the agent. */
const STOP_WAIT_MS = 30_000;
const POLL_MS = 500;

type WinswState = 'NonExistent' | 'Stopped' | 'Started';

/** A Windows path under deps.root: the path itself on the machine, root/C/… in tests on another OS. */
function winOnDisk(deps: ServiceDeps, p: string): string {
  if (deps.root === '/') return p;
  return join(deps.root, p.replace(/^([A-Za-z]):/, '$1').replaceAll('\\', '/'));
}

/** Files are written into the agent's directory (Program Files): EPERM there means "not elevated". */
async function winWrite<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'EACCES') throw new ServiceError('NOT_PRIVILEGED', `cannot write ${what}: access denied; run \`latchkey service …\` from an elevated (Administrator) prompt`, { cause: e });
    if (code === 'EBUSY') throw new ServiceError('COMMAND_FAILED', `cannot replace ${what}: it is in use; stop the service (\`net stop ${SERVICE_NAME}\`) and run this again`, { cause: e });
    throw e;
  }
}

const readBytes = (p: string): Promise<Buffer | null> => readFile(p).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : Promise.reject(e)));

/** Writes `content` unless the file already holds exactly it; true when written. */
async function putWin(deps: ServiceDeps, path: string, content: string | Uint8Array): Promise<boolean> {
  const file = winOnDisk(deps, path);
  const want = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const before = await readBytes(file);
  if (before !== null && before.equals(want)) return false;
  await winWrite(path, () => writeFileAtomic(file, want, { mode: 0o755 }));
  return true;
}

/**
 * WinSW (https://github.com/winsw/winsw, 1.17 from node-windows): the
 * wrapper `latchkey-service.exe` beside latchkey.exe is the service's
 * program and reads `latchkey-service.xml` next to it; its `.exe.config`
 * lets the .NET 2.0 wrapper run on .NET 4. `install` registers the service
 * (name, start mode, failure actions: read only then), `start`, `stop`,
 * `uninstall`, and `status` prints NonExistent, Stopped or Started.
 *
 * Install: when the files change while a service of that id exists (an
 * upgrade, another state dir, latchkey.exe moved), the service is stopped,
 * unregistered and registered again, so the SCM never keeps an old
 * definition. A running wrapper locks its .exe: a different WinSW binary is
 * written only after the old one has stopped the service.
 */
function windows(s: ServiceSpec, deps: ServiceDeps): Steps {
  if (s.scope !== 'system') throw new ServiceError('UNSUPPORTED', 'Windows services run system-wide: leave out --user');
  const files = () => {
    const exe = s.command[0];
    if (!exe || !/^([A-Za-z]:\\|\\\\)/.test(exe)) throw new ServiceError('INVALID', `the agent executable must be an absolute Windows path, got ${JSON.stringify(exe)}`);
    const dir = win32.dirname(exe);
    const base = win32.join(dir, WINSW_BASENAME);
    return { exe: `${base}.exe`, xml: `${base}.xml`, config: `${base}.exe.config` };
  };
  const sleep = deps.sleep ?? ((ms: number) => delay(ms));

  const wrapper = (run: Runner, exe: string) => {
    const status = async (): Promise<WinswState> => {
      const r = await run(exe, ['status']);
      const word = r.stdout.trim().split(/\r?\n/).pop()?.trim();
      if (word === 'NonExistent' || word === 'Stopped' || word === 'Started') return word;
      throw new ServiceError('COMMAND_FAILED', `\`${exe} status\` printed ${JSON.stringify(r.stdout.trim())}, not NonExistent, Stopped or Started`);
    };
    /** WinSW's stop returns once the SCM has the request: wait until the agent and the wrapper are gone. */
    const stop = async (): Promise<void> => {
      await run(exe, ['stop'], [0, WMI_SERVICE_CANNOT_ACCEPT_CONTROL, WMI_SERVICE_NOT_ACTIVE]);
      for (let waited = 0; ; waited += POLL_MS) {
        if ((await status()) !== 'Started') return;
        if (waited >= STOP_WAIT_MS) throw new ServiceError('COMMAND_FAILED', `the ${SERVICE_NAME} service did not stop within ${STOP_WAIT_MS / 1000} s; stop it (\`net stop ${SERVICE_NAME}\`) and run this again`);
        await sleep(POLL_MS);
      }
    };
    return { status, stop };
  };

  return {
    async install() {
      const xml = winswXml(s);
      const f = files();
      const bytes = await deps.winsw();
      const { run, commands } = runner(deps);
      const w = wrapper(run, f.exe);
      await winWrite(s.stateDir, () => mkdir(winOnDisk(deps, winswLogDir(s.stateDir)), { recursive: true, mode: 0o700 }));
      // The .exe.config first: without it the wrapper may not run at all (a machine without .NET 3.5).
      let changed = await putWin(deps, f.config, WINSW_EXE_CONFIG);
      const oldExe = await readBytes(winOnDisk(deps, f.exe));
      const newExe = oldExe === null || !oldExe.equals(bytes);
      if (oldExe !== null && newExe && (await readBytes(winOnDisk(deps, f.xml))) !== null && (await w.status()) === 'Started') await w.stop();
      if (await putWin(deps, f.xml, xml)) changed = true;
      if (newExe && (await putWin(deps, f.exe, bytes))) changed = true;
      let state = await w.status();
      if (changed && state !== 'NonExistent') {
        if (state === 'Started') await w.stop();
        await run(f.exe, ['uninstall']);
        state = 'NonExistent';
      }
      if (state === 'NonExistent') {
        const r = await run(f.exe, ['install'], 'any');
        // After an uninstall, Windows deletes the service only once nothing holds it open (services.msc does).
        const hint = /already exists/i.test(r.stdout + r.stderr) ? '; if the Services console (services.msc) is open, close it and run this again' : '';
        if (r.code !== 0) throw commandFailed(deps, f.exe, ['install'], r, hint);
      }
      if (state !== 'Started') await run(f.exe, ['start'], [0, WMI_SERVICE_ALREADY_RUNNING]);
      return { path: f.xml, commands };
    },
    async uninstall() {
      const f = files();
      const { run, commands } = runner(deps);
      const present = (await readBytes(winOnDisk(deps, f.exe))) !== null && (await readBytes(winOnDisk(deps, f.xml))) !== null;
      if (present) {
        const w = wrapper(run, f.exe);
        const state = await w.status();
        if (state === 'Started') await w.stop();
        if (state !== 'NonExistent') await run(f.exe, ['uninstall']);
      }
      // The wrapper's process may hold its .exe for a moment after the service stopped: rm retries EBUSY/EPERM.
      for (const p of [f.exe, f.xml, f.config]) await winWrite(p, () => rm(winOnDisk(deps, p), { force: true, maxRetries: 10, retryDelay: 200 }));
      return { path: f.xml, commands };
    },
  };
}
