/**
 * `latchkey service install|uninstall`: put the service definition where the
 * OS service manager looks for it and (re)start it, or stop and remove it.
 * Every effect goes through ServiceDeps (a file-system root, the platform, a
 * `run`), so tests check the exact files and commands for each platform.
 * Both are idempotent: running them twice leaves the same state.
 */
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { writeFileAtomic } from '../state/atomic.js';
import { launchdPlist, systemdUnit, windowsService } from './service-files.js';
import { LAUNCHD_LABEL, SERVICE_NAME, ServiceError, type Command, type ServiceSpec } from './service-types.js';

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
  /** root on Unix. undefined when unknown (Windows): sc.exe's "access denied" is reported instead. */
  privileged: boolean | undefined;
  run: Run;
}

export interface ServiceResult {
  /** The unit / plist on the machine, null on Windows. */
  path: string | null;
  /** Commands run, in order. */
  commands: Command[];
}

export async function installService(s: ServiceSpec, deps: ServiceDeps): Promise<ServiceResult> {
  return forPlatform(s, deps).install();
}

/** Stops, disables and removes the service of that scope; nothing to do when it is not installed. */
export async function uninstallService(s: Pick<ServiceSpec, 'scope'>, deps: ServiceDeps): Promise<ServiceResult> {
  return forPlatform({ command: [], stateDir: '/', ...s }, deps).uninstall();
}

/** The real machine: '/' as root, child_process for commands. */
export function nodeServiceDeps(): ServiceDeps {
  return {
    platform: process.platform,
    root: '/',
    home: homedir(),
    uid: process.getuid?.() ?? -1,
    privileged: process.platform === 'win32' ? undefined : process.getuid?.() === 0,
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
    if (ok !== 'any' && !ok.includes(r.code)) {
      const line = [cmd, ...args].join(' ');
      const why = (r.stderr || r.stdout).trim();
      if (deps.platform === 'win32' && r.code === 5) throw new ServiceError('NOT_PRIVILEGED', `\`${line}\`: access denied; run it from an elevated (Administrator) prompt`);
      throw new ServiceError('COMMAND_FAILED', `\`${line}\` failed with exit code ${r.code}${why ? `: ${why}` : ''}`);
    }
    return r;
  };
  return { run, commands };
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

/** Win32 error codes that sc.exe / net.exe exit with. */
const ERROR_SERVICE_ALREADY_RUNNING = 1056;
const ERROR_SERVICE_DOES_NOT_EXIST = 1060;
const ERROR_SERVICE_MARKED_FOR_DELETE = 1072;

// sc.exe: https://learn.microsoft.com/windows-server/administration/windows-commands/sc-create (and sc-config, sc-failure, sc-delete).
function windows(s: ServiceSpec, deps: ServiceDeps): Steps {
  if (s.scope !== 'system') throw new ServiceError('UNSUPPORTED', 'Windows services run system-wide: leave out --user');
  const exists = async (run: Runner) =>
    (await run('sc.exe', ['query', SERVICE_NAME], [0, ERROR_SERVICE_DOES_NOT_EXIST])).code === 0;
  // `net stop` waits until the service has stopped (sc.exe stop does not); it fails when it was not running, which is fine.
  const stop = (run: Runner) => run('net.exe', ['stop', SERVICE_NAME], 'any');
  return {
    async install() {
      const def = windowsService(s);
      const { run, commands } = runner(deps);
      if (await exists(run)) {
        await stop(run);
        await run(def.config.cmd, def.config.args);
      } else {
        await run(def.create.cmd, def.create.args);
      }
      for (const c of [def.failure, def.failureFlag, def.description]) await run(c.cmd, c.args);
      await run('sc.exe', ['start', SERVICE_NAME], [0, ERROR_SERVICE_ALREADY_RUNNING]);
      return { path: null, commands };
    },
    async uninstall() {
      const { run, commands } = runner(deps);
      if (await exists(run)) {
        await stop(run);
        await run('sc.exe', ['delete', SERVICE_NAME], [0, ERROR_SERVICE_MARKED_FOR_DELETE]);
      }
      return { path: null, commands };
    },
  };
}
