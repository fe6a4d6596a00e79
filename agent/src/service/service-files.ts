/**
 * Service definitions for each OS, as pure functions of a ServiceSpec: no I/O,
 * so each one is tested byte for byte and, where the tool exists, by the OS's
 * own checker (systemd-analyze verify, plutil -lint).
 */
import { posix } from 'node:path';
import {
  agentArgv, assertPrintable, DESCRIPTION, DISPLAY_NAME, LAUNCHD_LABEL, SERVICE_NAME, ServiceError,
  type Command, type ServiceSpec,
} from './service-types.js';

/** Exit status of the agent when the device must be enrolled again (errors.ts EXIT_REENROLL): restarting cannot help. */
const EXIT_REENROLL = 3;
const RESTART_SECONDS = 30;

function checkSpec(s: ServiceSpec, isAbsolute: (p: string) => boolean): void {
  if (s.command.length === 0) throw new ServiceError('INVALID', 'the agent command is empty');
  for (const a of [...agentArgv(s), ...(s.writablePaths ?? [])]) assertPrintable('service argument', a);
  if (!isAbsolute(s.command[0]!)) throw new ServiceError('INVALID', `the agent executable must be an absolute path, got ${JSON.stringify(s.command[0])}`);
  for (const p of [s.stateDir, ...(s.writablePaths ?? [])]) {
    if (!isAbsolute(p)) throw new ServiceError('INVALID', `service paths must be absolute, got ${JSON.stringify(p)}`);
  }
}

// ---------------------------------------------------------------- systemd

/**
 * One word of a unit-file value. systemd.unit(5) "Specifiers": `%` → `%%`.
 * systemd.service(5) "Command lines": in arguments (not in the executable
 * path, which is not expanded) `$VAR` and `${VAR}` are environment
 * substitutions → `$$`; a lone `;` separates commands, quoted it is a plain
 * word. systemd.syntax(7) "Quoting": a double-quoted word takes C escapes, so
 * `\` and `"` get a backslash. Plain words are left readable.
 */
export function systemdWord(word: string, kind: 'path' | 'arg'): string {
  let v = word.replaceAll('%', '%%');
  if (kind === 'arg') v = v.replaceAll('$', () => '$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return v;
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

const under = (dir: string, p: string): boolean => p === dir || p.startsWith(`${dir}/`);

/**
 * A systemd service unit. system scope: /etc/systemd/system, root, at boot,
 * sandboxed (systemd.exec(5) "Sandboxing") only as far as a keystore allows.
 * user scope: `systemctl --user`, started at login, for the os keystore that
 * reaches the Secret Service over the user's D-Bus session bus.
 */
export function systemdUnit(s: ServiceSpec): string {
  checkSpec(s, posix.isAbsolute);
  const stateDir = posix.normalize(s.stateDir);
  const [exe, ...args] = agentArgv({ ...s, stateDir });
  // systemd refuses an executable path with quotes or backslashes ("Executable name contains special characters").
  if (/["'\\]/.test(exe!)) throw new ServiceError('INVALID', `systemd cannot start an executable whose path contains quotes or backslashes: ${JSON.stringify(exe)}; install latchkey in another directory`);
  const execStart = [systemdWord(exe!, 'path'), ...args.map((a) => systemdWord(a, 'arg'))].join(' ');
  const service = [
    'Type=simple',
    `ExecStart=${execStart}`,
    'Restart=on-failure',
    `RestartSec=${RESTART_SECONDS}s`,
    '# Exit status 3: this device must be enrolled again; restarting would not help.',
    `RestartPreventExitStatus=${EXIT_REENROLL}`,
    'TimeoutStopSec=20s',
    'UMask=0077',
    'NoNewPrivileges=yes',
  ];
  if (s.scope === 'user') {
    return unit(
      [
        `Description=${DISPLAY_NAME} (user)`,
        "# The os keystore talks to the Secret Service over the user's D-Bus session bus;",
        '# the user manager passes DBUS_SESSION_BUS_ADDRESS on (pam_systemd).',
        'Wants=dbus.socket',
        'After=dbus.socket',
      ],
      service,
      'default.target',
    );
  }
  // StateDirectory= (systemd.exec(5) "Paths") when the state lives under /var/lib: systemd creates it, 0700, writable under ProtectSystem=strict.
  const varLib = under('/var/lib', stateDir) && stateDir !== '/var/lib' ? stateDir.slice('/var/lib/'.length) : null;
  const useStateDirectory = varLib !== null && /^[A-Za-z0-9._/-]+$/.test(varLib);
  const writable = [...(useStateDirectory ? [] : [stateDir]), ...(s.writablePaths ?? []).map((p) => posix.normalize(p))];
  const inHome = [stateDir, ...writable].some((p) => under('/home', p) || under('/root', p));
  const inTmp = [stateDir, ...writable].some((p) => under('/tmp', p) || under('/var/tmp', p));
  service.push(
    ...(useStateDirectory ? [`StateDirectory=${varLib}`, 'StateDirectoryMode=0700'] : []),
    ...(writable.length > 0 ? [`ReadWritePaths=${writable.map((p) => systemdWord(p, 'path')).join(' ')}`] : []),
    '# Not set on purpose: PrivateDevices= and ProtectClock= (a device allow-list) would hide',
    '# /dev/tpmrm0 from tpm2-pkcs11; MemoryDenyWriteExecute= breaks the V8 JIT.',
    'ProtectSystem=strict',
    ...(inHome ? ['# ProtectHome= left off: the state directory is under a home directory.'] : ['ProtectHome=read-only']),
    ...(inTmp ? [] : ['PrivateTmp=yes']),
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectHostname=yes',
    'RestrictSUIDSGID=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    '# AF_NETLINK: os.networkInterfaces() for the device facts.',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
  );
  return unit([`Description=${DISPLAY_NAME}`, 'Wants=network-online.target', 'After=network-online.target'], service, 'multi-user.target');
}

function unit(unitSection: string[], serviceSection: string[], wantedBy: string): string {
  return [
    '# Written by `latchkey service install`; run it again rather than editing this file.',
    '[Unit]', ...unitSection, '',
    '[Service]', ...serviceSection, '',
    '[Install]', `WantedBy=${wantedBy}`, '',
  ].join('\n');
}

// ---------------------------------------------------------------- launchd

/** XML 1.0 §2.4 character data and §3.1 attribute values: the five predefined entities. */
export function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/**
 * A launchd.plist(5): a LaunchDaemon (system) or LaunchAgent (user). KeepAlive
 * with SuccessfulExit=false restarts after a failure only, like systemd's
 * Restart=on-failure; ThrottleInterval spaces the restarts.
 */
export function launchdPlist(s: ServiceSpec & { logPath: string }): string {
  checkSpec({ ...s, writablePaths: [...(s.writablePaths ?? []), s.logPath] }, posix.isAbsolute);
  const str = (v: string) => `<string>${xmlEscape(v)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    `\t<key>Label</key>\n\t${str(LAUNCHD_LABEL)}`,
    '\t<key>ProgramArguments</key>',
    '\t<array>',
    ...agentArgv(s).map((a) => `\t\t${str(a)}`),
    '\t</array>',
    '\t<key>RunAtLoad</key>\n\t<true/>',
    '\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>',
    `\t<key>ThrottleInterval</key>\n\t<integer>${RESTART_SECONDS}</integer>`,
    '\t<key>Umask</key>\n\t<integer>63</integer>',
    `\t<key>StandardOutPath</key>\n\t${str(s.logPath)}`,
    `\t<key>StandardErrorPath</key>\n\t${str(s.logPath)}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- Windows

const winAbsolute = (p: string): boolean => /^[A-Za-z]:\\/.test(p) || p.startsWith('\\\\');

/**
 * One argument as the MSVC runtime / CommandLineToArgvW parse it back ("Parsing
 * C++ command-line arguments"): quoted when it has a space, tab or quote;
 * backslashes are literal except before a `"`, so those runs, and a run at the
 * end of a quoted argument, are doubled.
 */
export function windowsArg(a: string): string {
  if (a !== '' && !/[ \t"]/.test(a)) return a;
  return `"${a.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\+)$/, '$1$1')}"`;
}

/**
 * The service's command line (the SCM's ImagePath). The executable is always
 * quoted: an unquoted path with spaces is the "unquoted service path" hole
 * (C:\Program.exe would run first).
 */
export function windowsCommandLine(argv: readonly string[]): string {
  const [exe, ...rest] = argv;
  if (exe === undefined || exe.includes('"')) throw new ServiceError('INVALID', `not a Windows executable path: ${JSON.stringify(exe)}`);
  return [`"${exe}"`, ...rest.map(windowsArg)].join(' ');
}

export interface WindowsService {
  /** `sc.exe create` for a new service, `sc.exe config` (same options) to update an existing one. */
  create: Command;
  config: Command;
  /** Restart after 60 s, three times; the failure count resets after a day. */
  failure: Command;
  /** Apply the failure actions also when the service stops with a non-zero exit code. */
  failureFlag: Command;
  description: Command;
}

/**
 * sc.exe argv, run without a shell (Node quotes each argv element for the
 * MSVC runtime, so the binPath value reaches sc.exe with its inner quotes).
 * sc.exe wants each `option=` and its value as two arguments.
 */
export function windowsService(s: ServiceSpec): WindowsService {
  if (s.scope !== 'system') throw new ServiceError('UNSUPPORTED', 'Windows services run system-wide: use `latchkey service install` from an elevated prompt, without --user');
  checkSpec(s, winAbsolute);
  const options = ['binPath=', windowsCommandLine(agentArgv(s)), 'start=', 'auto', 'DisplayName=', DISPLAY_NAME];
  const sc = (...args: string[]): Command => ({ cmd: 'sc.exe', args });
  return {
    create: sc('create', SERVICE_NAME, ...options),
    config: sc('config', SERVICE_NAME, ...options),
    failure: sc('failure', SERVICE_NAME, 'reset=', '86400', 'actions=', 'restart/60000/restart/60000/restart/60000'),
    failureFlag: sc('failureflag', SERVICE_NAME, '1'),
    description: sc('description', SERVICE_NAME, DESCRIPTION),
  };
}
