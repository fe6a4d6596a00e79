/**
 * Service definitions for each OS, as pure functions of a ServiceSpec: no I/O,
 * so each one is tested byte for byte and, where the tool exists, by the OS's
 * own checker (systemd-analyze verify, plutil -lint).
 */
import { posix, win32 } from 'node:path';
import {
  agentArgv, assertPrintable, DESCRIPTION, DISPLAY_NAME, LAUNCHD_LABEL, SERVICE_NAME, ServiceError,
  type ServiceSpec,
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

// ---------------------------------------------------------------- Windows (WinSW)

const winAbsolute = (p: string): boolean => /^[A-Za-z]:\\/.test(p) || p.startsWith('\\\\');

/**
 * One argument as the MSVC runtime / CommandLineToArgvW parse it back ("Parsing
 * C++ command-line arguments"): quoted when it has a space, tab or quote (or
 * always, for paths); backslashes are literal except before a `"`, so those
 * runs, and a run at the end of a quoted argument, are doubled.
 */
export function windowsArg(a: string, alwaysQuote = false): string {
  if (!alwaysQuote && a !== '' && !/[ \t"]/.test(a)) return a;
  return `"${a.replace(/(\\*)"/g, '$1$1\\"').replace(/(\\+)$/, '$1$1')}"`;
}

/**
 * The wrapper's own `.exe.config`. WinSW 1.17 is a .NET 2.0 program; Windows
 * 8 and later ship only the .NET 4 runtime (3.5 is an optional feature), and
 * this file lets it run on either, 4.0 first.
 */
export const WINSW_EXE_CONFIG = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<configuration>',
  '  <startup>',
  '    <supportedRuntime version="v4.0"/>',
  '    <supportedRuntime version="v2.0.50727"/>',
  '  </startup>',
  '</configuration>',
  '',
].join('\r\n');

/** Where the wrapper writes latchkey-service.{out,err,wrapper}.log: under the state directory, not beside the binary in Program Files. */
export const winswLogDir = (stateDir: string): string => win32.join(stateDir, 'logs');

/**
 * The WinSW service definition, `latchkey-service.xml`, read at each start
 * by the wrapper `latchkey-service.exe` beside it (WinSW 1.17, as shipped in
 * node-windows). WinSW is the program the Service Control Manager starts: it
 * answers the SCM and runs `latchkey.exe run --state-dir …` as its child.
 *
 * - Arguments: one `<arguments>` string, quoted here for the MSVC parser
 *   (windowsArg). WinSW 1.17's `<argument>` elements are not used: it wraps
 *   a value with spaces in quotes but escapes neither quotes nor backslashes.
 * - WinSW runs the values through Environment.ExpandEnvironmentVariables,
 *   which has no escape: a `%` in a path is refused rather than expanded.
 * - Restart on failure after 30 s, as with systemd and launchd (the SCM
 *   repeats the last failure action; the count resets after a day). WinSW
 *   reports a zero exit to the SCM as a clean stop and exits with the
 *   child's code otherwise, which the SCM takes as a crash. WinSW 1.17 has
 *   no equivalent of systemd's RestartPreventExitStatus=: exit code 3
 *   (enroll again) is restarted like any failure, and each restart exits 3
 *   again at once, with the reason in the wrapper's log, until the device is
 *   enrolled again or the service is uninstalled.
 * - Stop: WinSW sends Ctrl+C (SIGINT in Node) to the agent first
 *   (stopparentprocessfirst: the agent ends its own renewal child), waits
 *   up to stoptimeout, then kills it.
 */
export function winswXml(s: ServiceSpec): string {
  if (s.scope !== 'system') throw new ServiceError('UNSUPPORTED', 'Windows services run system-wide: use `latchkey service install` from an elevated prompt, without --user');
  checkSpec(s, winAbsolute);
  const [exe, ...scriptArgs] = s.command;
  const logDir = winswLogDir(s.stateDir);
  for (const v of [...agentArgv(s), logDir]) {
    if (v.includes('%')) throw new ServiceError('INVALID', `WinSW expands %VARIABLE% in its configuration and cannot escape %: ${JSON.stringify(v)}; use a path without %`);
  }
  if (exe!.includes('"')) throw new ServiceError('INVALID', `not a Windows executable path: ${JSON.stringify(exe)}`);
  // Paths always quoted (a state dir like C:\ProgramData\Latchkey reads the same either way); the words `run` and `--state-dir` as they are.
  const args = [...scriptArgs.map((a) => windowsArg(a, true)), 'run', '--state-dir', windowsArg(s.stateDir, true)].join(' ');
  const el = (name: string, value: string) => `  <${name}>${xmlEscape(value)}</${name}>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!-- Written by `latchkey service install` for the WinSW service wrapper; run it again rather than editing this file. -->',
    '<service>',
    el('id', SERVICE_NAME),
    el('name', DISPLAY_NAME),
    el('description', DESCRIPTION),
    el('executable', exe!),
    el('arguments', args),
    el('workingdirectory', s.stateDir),
    el('startmode', 'Automatic'),
    '  <!-- Any non-zero exit restarts after 30 s, exit code 3 (enroll again) included: WinSW cannot exempt an exit code. -->',
    `  <onfailure action="restart" delay="${RESTART_SECONDS} sec"/>`,
    el('resetfailure', '1 day'),
    el('stopparentprocessfirst', 'true'),
    el('stoptimeout', '20 sec'),
    el('logpath', logDir),
    '  <log mode="roll-by-size">',
    '    <sizeThreshold>10240</sizeThreshold>',
    '    <keepFiles>8</keepFiles>',
    '  </log>',
    '</service>',
    '',
  ].join('\r\n');
}
