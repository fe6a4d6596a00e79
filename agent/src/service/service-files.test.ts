import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { launchdPlist, systemdUnit, systemdWord, WINSW_EXE_CONFIG, windowsArg, winswXml, xmlEscape } from './service-files.js';
import { ServiceError, type ServiceSpec } from './service-types.js';

const SYSTEM: ServiceSpec = { command: ['/usr/local/bin/latchkey'], stateDir: '/var/lib/latchkey', scope: 'system' };
const has = (tool: string): boolean => spawnSync(tool, ['--version'], { stdio: 'ignore' }).error === undefined;
/** A skip reason when the tool is missing here; under LATCHKEY_REQUIRE_ALL=1 never (the test runs and fails). */
const need = (tool: string): string | false => (has(tool) || process.env.LATCHKEY_REQUIRE_ALL === '1' ? false : `${tool} is not installed`);

describe('systemd unit', () => {
  test('system.service(5) unit: run --state-dir, on-failure restarts, network-online, StateDirectory, sandbox', () => {
    const u = systemdUnit(SYSTEM);
    const lines = u.split('\n');
    for (const l of [
      '[Unit]', 'Wants=network-online.target', 'After=network-online.target', '[Service]', 'Type=simple',
      'ExecStart=/usr/local/bin/latchkey run --state-dir /var/lib/latchkey', 'Restart=on-failure', 'RestartSec=30s',
      'RestartPreventExitStatus=3', 'StateDirectory=latchkey', 'StateDirectoryMode=0700', 'UMask=0077', 'NoNewPrivileges=yes',
      'ProtectSystem=strict', 'ProtectHome=read-only', 'PrivateTmp=yes', '[Install]', 'WantedBy=multi-user.target',
    ]) assert.ok(lines.includes(l), `missing ${l}`);
    // Settings that would break a keystore (TPM device, V8 JIT) are not there.
    assert.doesNotMatch(u, /^(PrivateDevices|ProtectClock|MemoryDenyWriteExecute|DeviceAllow)=/m);
    assert.doesNotMatch(u, /^ReadWritePaths=/m);
  });

  test('a state directory outside /var/lib is made writable with ReadWritePaths=; under /home ProtectHome= is left off, under /tmp PrivateTmp=', () => {
    const opt = systemdUnit({ ...SYSTEM, stateDir: '/opt/latch key', writablePaths: ['/var/lib/softhsm/tokens'] });
    assert.match(opt, /^ReadWritePaths="\/opt\/latch key" \/var\/lib\/softhsm\/tokens$/m);
    assert.doesNotMatch(opt, /^StateDirectory=/m);
    assert.match(opt, /^ProtectHome=read-only$/m);
    const home = systemdUnit({ ...SYSTEM, stateDir: '/home/alice/.local/state/latchkey' });
    assert.match(home, /^ReadWritePaths=\/home\/alice\/\.local\/state\/latchkey$/m);
    assert.doesNotMatch(home, /^ProtectHome=/m);
    assert.doesNotMatch(systemdUnit({ ...SYSTEM, stateDir: '/tmp/lk' }), /^PrivateTmp=/m);
  });

  test('user unit: systemctl --user, after the D-Bus session socket, WantedBy=default.target, no system-only sandboxing', () => {
    const u = systemdUnit({ ...SYSTEM, stateDir: '/home/alice/.local/state/latchkey', scope: 'user' });
    assert.match(u, /^After=dbus\.socket$/m);
    assert.match(u, /^WantedBy=default\.target$/m);
    assert.match(u, /^ExecStart=\/usr\/local\/bin\/latchkey run --state-dir \/home\/alice\/\.local\/state\/latchkey$/m);
    assert.doesNotMatch(u, /network-online|multi-user|ProtectSystem|PrivateTmp|StateDirectory/);
  });

  test('systemd.service(5) "Command lines": quoting and escaping of ExecStart= words', () => {
    assert.equal(systemdWord('/usr/bin/latchkey', 'path'), '/usr/bin/latchkey');
    assert.equal(systemdWord('--state-dir', 'arg'), '--state-dir');
    assert.equal(systemdWord('/opt/my dir/x', 'arg'), '"/opt/my dir/x"');
    assert.equal(systemdWord('say "hi"', 'arg'), '"say \\"hi\\""');
    assert.equal(systemdWord('a\\b', 'arg'), '"a\\\\b"');
    assert.equal(systemdWord('100%', 'arg'), '100%%'); // systemd.unit(5) "Specifiers"
    assert.equal(systemdWord('$HOME', 'arg'), '"$$HOME"'); // environment substitution in arguments
    assert.equal(systemdWord('/x/$HOME', 'path'), '"/x/$HOME"'); // the executable path is not substituted
    assert.equal(systemdWord(';', 'arg'), '";"'); // a lone ; would start a second command
    assert.equal(systemdWord("it's", 'arg'), '"it\'s"');
    assert.equal(systemdWord('', 'arg'), '""');
  });

  test('refuses a relative executable, an executable path systemd rejects, and control characters', () => {
    assert.throws(() => systemdUnit({ ...SYSTEM, command: ["/opt/it's/latchkey"] }), /quotes or backslashes/);
    assert.throws(() => systemdUnit({ ...SYSTEM, command: ['latchkey'] }), (e: unknown) => e instanceof ServiceError && e.code === 'INVALID');
    assert.throws(() => systemdUnit({ ...SYSTEM, stateDir: '/var/lib/a\nExecStartPre=/bin/sh' }), /control character/);
    assert.throws(() => systemdUnit({ ...SYSTEM, stateDir: 'state' }), /absolute/);
  });
});

describe('systemd-analyze verify (the real parser)', { skip: process.platform === 'linux' ? need('systemd-analyze') : 'systemd is Linux only' }, () => {
  // Directory names with everything that needs escaping. systemd takes no quotes or backslashes in the
  // executable's own path (tested below), so node is linked into the first, the script sits in the second.
  const ODD = 'lk %p $HOME ; x';
  const NASTY = `lk "q" \\b %p $HOME ; it's`;

  function verify(unitText: string, user: boolean): { status: number | null; unitLines: string[] } {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-unit-'));
    try {
      const file = join(dir, 'latchkey.service');
      writeFileSync(file, unitText);
      const runtime = join(dir, 'runtime');
      mkdirSync(runtime, { mode: 0o700 });
      const r = spawnSync('systemd-analyze', [...(user ? ['--user'] : []), 'verify', file], {
        encoding: 'utf8',
        env: { ...process.env, XDG_RUNTIME_DIR: runtime, SYSTEMD_LOG_COLOR: '0' },
      });
      // The host (a container) may draw warnings of its own; keep those about our unit.
      const unitLines = `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => l.includes('latchkey.service'));
      return { status: r.status, unitLines };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  function fixture(t: { after: (fn: () => void) => void }): { exe: string; script: string } {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-exe-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, ODD));
    mkdirSync(join(dir, NASTY));
    const exe = join(dir, ODD, 'node');
    symlinkSync(process.execPath, exe);
    const script = join(dir, NASTY, 'cli.js');
    writeFileSync(script, '');
    chmodSync(script, 0o644);
    return { exe, script };
  }

  test('system unit (packaged binary, /var/lib state) passes with no warnings', () => {
    const r = verify(systemdUnit({ ...SYSTEM, command: [process.execPath] }), false);
    assert.deepEqual(r.unitLines, []);
    assert.equal(r.status, 0);
  });

  test('system unit with an executable, script and state dir full of quotes, %, $, ; and spaces passes', (t) => {
    const { exe, script } = fixture(t);
    const r = verify(systemdUnit({ command: [exe, script], stateDir: `/home/al ice/${NASTY}`, scope: 'system', writablePaths: ['/var/lib/softhsm/tokens'] }), false);
    assert.deepEqual(r.unitLines, []);
    assert.equal(r.status, 0);
  });

  test('user unit passes `systemd-analyze --user verify`', (t) => {
    const { exe, script } = fixture(t);
    const r = verify(systemdUnit({ command: [exe, script], stateDir: '/home/alice/.local/state/latchkey', scope: 'user' }), true);
    assert.deepEqual(r.unitLines, []);
    assert.equal(r.status, 0);
  });

  test('control: the same unit with the path pasted in unescaped fails, so the checks above can fail', (t) => {
    const { exe } = fixture(t);
    const naive = systemdUnit({ ...SYSTEM, command: [process.execPath] }).replace(/^ExecStart=\S+/m, `ExecStart=${exe}`);
    const r = verify(naive, false);
    assert.notEqual(r.status, 0);
    assert.ok(r.unitLines.some((l) => /bad unit file setting/.test(l)), r.unitLines.join('\n'));
  });
});

/** XML 1.0 well-formedness, enough for a plist: balanced tags, quoted attributes, only declared entities, no stray < or &. */
function assertWellFormedXml(xml: string): void {
  const body = xml.replace(/^<\?xml [^?]*\?>\s*/, '').replace(/^<!DOCTYPE [^>]*>\s*/, '');
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w.-]*)((?:\s+[\w:-]+="[^"<&]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < body.length) {
    if (body[i] === '<') {
      tag.lastIndex = i;
      const m = tag.exec(body);
      assert.ok(m, `malformed tag at ${JSON.stringify(body.slice(i, i + 30))}`);
      const [all, close, name, , selfClose] = m;
      if (close) assert.equal(stack.pop(), name, `</${name}> does not close the open element`);
      else if (!selfClose) stack.push(name!);
      i += all.length;
    } else {
      const end = body.indexOf('<', i) === -1 ? body.length : body.indexOf('<', i);
      const text = body.slice(i, end);
      assert.doesNotMatch(text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, ''), /[&>]/, `unescaped character in ${JSON.stringify(text)}`);
      if (stack.length === 0) assert.match(text, /^\s*$/, 'text outside the root element');
      i = end;
    }
  }
  assert.deepEqual(stack, [], 'unclosed elements');
}

describe('launchd plist', () => {
  const NASTY_DIR = `/Users/al & "bob" <x> 'y'/Library/Application Support/Latchkey`;
  const spec = { command: ['/Applications/Latch <key>.app/Contents/MacOS/latchkey'], stateDir: NASTY_DIR, scope: 'system' as const, logPath: '/Library/Logs/latchkey.log' };

  test('launchd.plist(5): Label, ProgramArguments, RunAtLoad, KeepAlive on failure, log paths', () => {
    const p = launchdPlist({ ...SYSTEM, logPath: '/Library/Logs/latchkey.log' });
    assert.match(p, /<key>Label<\/key>\n\t<string>com\.latchkey\.agent<\/string>/);
    assert.match(p, /<key>ProgramArguments<\/key>\n\t<array>\n\t\t<string>\/usr\/local\/bin\/latchkey<\/string>\n\t\t<string>run<\/string>\n\t\t<string>--state-dir<\/string>\n\t\t<string>\/var\/lib\/latchkey<\/string>\n\t<\/array>/);
    assert.match(p, /<key>RunAtLoad<\/key>\n\t<true\/>/);
    assert.match(p, /<key>KeepAlive<\/key>\n\t<dict>\n\t\t<key>SuccessfulExit<\/key>\n\t\t<false\/>/);
    assert.match(p, /<key>StandardOutPath<\/key>\n\t<string>\/Library\/Logs\/latchkey\.log<\/string>/);
    assert.match(p, /<key>StandardErrorPath<\/key>\n\t<string>\/Library\/Logs\/latchkey\.log<\/string>/);
  });

  test('XML 1.0 §2.4: every value is escaped, and the plist stays well-formed', () => {
    assert.equal(xmlEscape(`a&b<c>"d"'e'`), 'a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;');
    const p = launchdPlist(spec);
    assert.ok(p.includes('<string>/Users/al &amp; &quot;bob&quot; &lt;x&gt; &apos;y&apos;/Library/Application Support/Latchkey</string>'));
    assertWellFormedXml(p);
    assert.throws(() => assertWellFormedXml(p.replace('&amp;', '&')), /unescaped/); // the checker itself can fail
    assert.throws(() => assertWellFormedXml(p.replace('</array>', '')), /does not close|unclosed/);
  });

  // plutil exists only on macOS; on Linux the plistlib test below is the independent parser.
  if (process.platform === 'darwin') test('plutil -lint accepts it', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-plist-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'com.latchkey.agent.plist');
    writeFileSync(file, launchdPlist(spec));
    const r = spawnSync('plutil', ['-lint', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test("an independent plist parser (Python's plistlib) reads back the exact argv", { skip: need('python3') }, () => {
    const code = 'import plistlib,sys,json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))';
    const r = spawnSync('python3', ['-c', code], { input: launchdPlist(spec), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const parsed = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(parsed, {
      Label: 'com.latchkey.agent',
      ProgramArguments: [spec.command[0], 'run', '--state-dir', NASTY_DIR],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 30,
      Umask: 63,
      StandardOutPath: '/Library/Logs/latchkey.log',
      StandardErrorPath: '/Library/Logs/latchkey.log',
    });
  });
});

/** The MSVC runtime's argument parser (Microsoft "Parsing C++ command-line arguments"), written from the spec, not from windowsArg. */
function parseWindowsCommandLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let cur = '';
    let quoted = false;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (c === '\\') {
        let n = 0;
        while (line[i] === '\\') {
          n++;
          i++;
        }
        if (line[i] === '"') {
          cur += '\\'.repeat(n >> 1);
          if (n % 2 === 1) cur += '"';
          else quoted = !quoted;
        } else {
          cur += '\\'.repeat(n);
          i--;
        }
      } else if (c === '"') {
        if (quoted && line[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = !quoted;
      } else if (!quoted && (c === ' ' || c === '\t')) break;
      else cur += c;
    }
    out.push(cur);
  }
  return out;
}

describe('Windows service (WinSW)', () => {
  const EXE = 'C:\\Program Files\\Latchkey\\latchkey.exe';
  const WIN: ServiceSpec = { command: [EXE], stateDir: 'C:\\ProgramData\\Latchkey', scope: 'system' };
  /** The XML's elements as WinSW reads them, by an XML parser that is not ours (Python's ElementTree). */
  const readBack = (xml: string): Record<string, unknown> => {
    const code = [
      'import sys, json, xml.etree.ElementTree as ET',
      'root = ET.fromstring(sys.stdin.buffer.read())',
      'out = {"root": root.tag}',
      'for e in root:',
      '    out[e.tag] = ({"attrs": e.attrib, "children": {c.tag: c.text for c in e}} if len(e) or e.attrib else e.text)',
      'print(json.dumps(out))',
    ].join('\n');
    const r = spawnSync('python3', ['-c', code], { input: xml, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  test('WinSW XML: id, name, description, the packaged latchkey.exe, `run --state-dir "<dir>"`, automatic start, restart on failure, Ctrl+C stop, rolled logs', () => {
    assert.equal(winswXml(WIN), [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<!-- Written by `latchkey service install` for the WinSW service wrapper; run it again rather than editing this file. -->',
      '<service>',
      '  <id>latchkey</id>',
      '  <name>Latchkey device agent</name>',
      '  <description>Keeps this device&apos;s Latchkey client certificate fresh and answers the server&apos;s control channel.</description>',
      '  <executable>C:\\Program Files\\Latchkey\\latchkey.exe</executable>',
      '  <arguments>run --state-dir &quot;C:\\ProgramData\\Latchkey&quot;</arguments>',
      '  <workingdirectory>C:\\ProgramData\\Latchkey</workingdirectory>',
      '  <startmode>Automatic</startmode>',
      '  <!-- Any non-zero exit restarts after 30 s, exit code 3 (enroll again) included: WinSW cannot exempt an exit code. -->',
      '  <onfailure action="restart" delay="30 sec"/>',
      '  <resetfailure>1 day</resetfailure>',
      '  <stopparentprocessfirst>true</stopparentprocessfirst>',
      '  <stoptimeout>20 sec</stoptimeout>',
      '  <logpath>C:\\ProgramData\\Latchkey\\logs</logpath>',
      '  <log mode="roll-by-size">',
      '    <sizeThreshold>10240</sizeThreshold>',
      '    <keepFiles>8</keepFiles>',
      '  </log>',
      '</service>',
      '',
    ].join('\r\n'));
  });

  test('XML 1.0 §2.4: paths with &, <, >, quotes and spaces are escaped; the document stays well-formed, comments hold no "--"', () => {
    const spec: ServiceSpec = { command: ["C:\\Program Files\\R&D <Tools>\\latchkey.exe"], stateDir: "C:\\Users\\Al & Bo's\\Latch <key>", scope: 'system' };
    const xml = winswXml(spec);
    assert.ok(xml.includes('<executable>C:\\Program Files\\R&amp;D &lt;Tools&gt;\\latchkey.exe</executable>'));
    assert.ok(xml.includes('<arguments>run --state-dir &quot;C:\\Users\\Al &amp; Bo&apos;s\\Latch &lt;key&gt;&quot;</arguments>'));
    for (const c of xml.matchAll(/<!--([\s\S]*?)-->/g)) assert.doesNotMatch(c[1]!, /--/, 'XML 1.0 §2.5: no "--" inside a comment');
    assertWellFormedXml(xml.replace(/<!--[\s\S]*?-->/g, ''));
    assertWellFormedXml(WINSW_EXE_CONFIG);
  });

  test('an independent XML parser reads back the exact values, and the MSVC parser turns <arguments> back into the agent argv', { skip: need('python3') }, () => {
    for (const stateDir of ['C:\\ProgramData\\Latchkey', 'C:\\ProgramData\\Latch key', 'D:\\Al & Bo\'s "state"\\', '\\\\server\\share\\latch key\\']) {
      const spec: ServiceSpec = { command: [EXE], stateDir, scope: 'system' };
      const got = readBack(winswXml(spec));
      assert.equal(got.root, 'service');
      assert.equal(got.executable, EXE);
      assert.equal(got.workingdirectory, stateDir);
      assert.deepEqual(parseWindowsCommandLine(`"${EXE}" ${got.arguments as string}`), [EXE, 'run', '--state-dir', stateDir], stateDir);
      assert.deepEqual(got.onfailure, { attrs: { action: 'restart', delay: '30 sec' }, children: {} });
      assert.deepEqual(got.log, { attrs: { mode: 'roll-by-size' }, children: { sizeThreshold: '10240', keepFiles: '8' } });
      assert.equal(got.description, "Keeps this device's Latchkey client certificate fresh and answers the server's control channel.");
    }
    const config = readBack(WINSW_EXE_CONFIG);
    assert.equal(config.root, 'configuration');
    assert.deepEqual(config.startup, { attrs: {}, children: { supportedRuntime: null } }); // two runtimes, parsed below
    assert.deepEqual([...WINSW_EXE_CONFIG.matchAll(/<supportedRuntime version="([^"]+)"\/>/g)].map((m) => m[1]), ['v4.0', 'v2.0.50727']);
  });

  test('a development checkout (node.exe + cli.js) runs node with the quoted script before `run`', () => {
    const node = 'C:\\Program Files\\nodejs\\node.exe';
    const script = 'C:\\Users\\Al Ice\\src\\latchkey\\agent\\dist\\cli.js';
    const xml = winswXml({ ...WIN, command: [node, script] });
    assert.ok(xml.includes(`<executable>${node}</executable>`));
    assert.ok(xml.includes('<arguments>&quot;C:\\Users\\Al Ice\\src\\latchkey\\agent\\dist\\cli.js&quot; run --state-dir &quot;C:\\ProgramData\\Latchkey&quot;</arguments>'));
  });

  test('windowsArg: backslashes are doubled only before a quote and at the end of a quoted argument', () => {
    const cases = ['plain', 'C:\\dir\\', 'C:\\my dir\\', 'a"b', 'a\\"b', 'a\\\\"b c', '', 'tab\there', 'x\\\\'];
    for (const a of cases) {
      assert.deepEqual(parseWindowsCommandLine(`"C:\\x.exe" ${windowsArg(a)}`), ['C:\\x.exe', a], a);
      assert.deepEqual(parseWindowsCommandLine(`"C:\\x.exe" ${windowsArg(a, true)}`), ['C:\\x.exe', a], a);
    }
    assert.equal(windowsArg('C:\\dir\\'), 'C:\\dir\\');
    assert.equal(windowsArg('C:\\dir\\', true), '"C:\\dir\\\\"');
    assert.equal(windowsArg('C:\\my dir\\'), '"C:\\my dir\\\\"');
  });

  test('refused: a per-user service, relative paths, control characters, and % (WinSW expands %VAR% and cannot escape it)', () => {
    const code = (c: ServiceError['code']) => (e: unknown) => e instanceof ServiceError && e.code === c;
    assert.throws(() => winswXml({ ...WIN, scope: 'user' }), code('UNSUPPORTED'));
    assert.throws(() => winswXml({ ...WIN, command: ['latchkey.exe'] }), code('INVALID'));
    assert.throws(() => winswXml({ ...WIN, stateDir: 'ProgramData\\Latchkey' }), code('INVALID'));
    assert.throws(() => winswXml({ ...WIN, stateDir: 'C:\\Latch\r\nkey' }), /control character/);
    assert.throws(() => winswXml({ ...WIN, stateDir: 'C:\\%SystemRoot%\\x' }), (e: unknown) => code('INVALID')(e) && /cannot escape %/.test((e as Error).message));
    assert.throws(() => winswXml({ ...WIN, command: ['C:\\100%\\latchkey.exe'] }), code('INVALID'));
  });
});
