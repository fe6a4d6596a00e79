/**
 * A real, unlocked gnome-keyring on a private D-Bus session bus, for the `os`
 * keystore tests (a test process normally has no session bus).
 *
 * libsecret connects to the session bus on its first successful call and
 * keeps that connection for the life of the process: DBUS_SESSION_BUS_ADDRESS
 * is read at that call (setting it after keytar is loaded is fine), but a
 * process cannot move to another bus afterwards ("The connection is closed"
 * once the bus is gone). So the test process gets one keyring for the whole
 * file (`startKeyring` with the file-level `after` hook), and tests that need
 * another bus (none, no provider, locked) run a child process on
 * `startPrivateBus`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What the fixture needs of a test context: `t` or node:test's file-level `{ after }`. */
export interface Hooks {
  after(fn: () => unknown): void;
}

export interface PrivateBus {
  /** DBUS_SESSION_BUS_ADDRESS of the bus. */
  address: string;
  /** The environment a child process uses to reach this bus (and nothing of the caller's session). */
  env: NodeJS.ProcessEnv;
  /** The temp HOME of the keyring daemon (its keyring files are under it). */
  home: string;
  /** Locks the login keyring (as the desktop does on screen lock); resolves when it is locked. */
  lock(): Promise<void>;
}

export const KEYRING_PASSWORD = 'latchkey-test-keyring';
const LOGIN = '/org/freedesktop/secrets/collection/login';

/** Names the first missing program, or undefined. */
async function missing(programs: string[]): Promise<string | undefined> {
  for (const p of programs) {
    try {
      await run('sh', ['-c', `command -v ${p}`]);
    } catch {
      return `${p} not found (apt-get install ${p === 'dbus-daemon' ? 'dbus-daemon' : p === 'dbus-send' ? 'dbus-bin' : 'gnome-keyring'})`;
    }
  }
  return undefined;
}

const pidsToKill = new Set<number>();
process.on('exit', () => {
  for (const pid of pidsToKill) {
    try {
      process.kill(pid);
    } catch {
      /* already gone */
    }
  }
});

const stop = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

const sendSecrets = (env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ stdout: string }> =>
  run('dbus-send', ['--session', '--print-reply', '--reply-timeout=2000', ...args], { env });

async function until(what: string, f: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await f().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const loginLocked = async (env: NodeJS.ProcessEnv): Promise<boolean | undefined> => {
  try {
    const { stdout } = await sendSecrets(env, '--dest=org.freedesktop.secrets', LOGIN, 'org.freedesktop.DBus.Properties.Get', 'string:org.freedesktop.Secret.Collection', 'string:Locked');
    return /boolean true/.test(stdout);
  } catch {
    return undefined;
  }
};

/**
 * A new session bus (no service activation, so nothing starts behind our
 * back) and, unless `provider: false`, a gnome-keyring-daemon on it whose
 * login keyring is created and unlocked with KEYRING_PASSWORD. Everything runs
 * in a temp HOME and is killed in `t.after`. Does not touch process.env.
 * Resolves with a string naming what is missing when a program is absent.
 */
export async function startPrivateBus(t: Hooks, opts: { provider?: boolean } = {}): Promise<PrivateBus | string> {
  const provider = opts.provider ?? true;
  // Hooks are registered before the first await: node:test's file-level `after` must be called synchronously.
  const children: ChildProcess[] = [];
  // eslint-disable-next-line prefer-const -- assigned after the hook that reads it is registered
  let root: string | undefined;
  t.after(async () => {
    for (const c of children.reverse()) {
      await stop(c);
      if (c.pid !== undefined) pidsToKill.delete(c.pid);
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });
  const absent = await missing(provider ? ['dbus-daemon', 'dbus-send', 'gnome-keyring-daemon'] : ['dbus-daemon']);
  if (absent) return absent;

  root = mkdtempSync(join(tmpdir(), 'latchkey-keyring-'));
  const home = join(root, 'home');
  const runtime = join(root, 'run');
  mkdirSync(join(home, '.local', 'share'), { recursive: true });
  mkdirSync(runtime, { mode: 0o700 });
  const conf = join(root, 'bus.conf');
  writeFileSync(
    conf,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=${root}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
`,
  );

  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: join(home, '.local', 'share'), XDG_RUNTIME_DIR: runtime, XDG_CONFIG_HOME: join(home, '.config'), LANG: 'C.UTF-8' };
  const bus = spawn('dbus-daemon', [`--config-file=${conf}`, '--nofork', '--print-address=1'], { env: base, stdio: ['ignore', 'pipe', 'pipe'] });
  let busErr = ''; // "Failed to set fd limit" noise in containers; shown only if the bus fails
  bus.stderr!.on('data', (d: Buffer) => (busErr += d.toString()));
  children.push(bus);
  if (bus.pid !== undefined) pidsToKill.add(bus.pid);
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    bus.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl).trim());
    });
    bus.once('exit', (code) => reject(new Error(`dbus-daemon exited (${code}) before printing its address: ${busErr.trim()}`)));
    bus.once('error', reject);
  });
  const env: NodeJS.ProcessEnv = { ...base, DBUS_SESSION_BUS_ADDRESS: address };

  if (provider) {
    // --unlock reads the login keyring password on stdin (until EOF) and creates the keyring if needed.
    const gkd = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(gkd);
    if (gkd.pid !== undefined) pidsToKill.add(gkd.pid);
    gkd.stdin!.end(KEYRING_PASSWORD);
    await until('the gnome-keyring login collection', async () => (await loginLocked(env)) === false);
  }

  return {
    address,
    env,
    home,
    async lock() {
      await sendSecrets(env, '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock', `array:objpath:${LOGIN}`);
      await until('the login keyring to lock', async () => (await loginLocked(env)) === true);
    },
  };
}

/**
 * Makes the os keystore usable in this process: a private bus and unlocked
 * keyring are started and DBUS_SESSION_BUS_ADDRESS is set for this process
 * (before the first keytar call), even when the caller has a session. Call it
 * once per process with the file-level hooks: the libsecret connection cannot
 * move to another bus afterwards.
 *
 * Not the caller's session: a gnome-keyring started there (`dbus-run-session
 * -- gnome-keyring-daemon --unlock`, the desktop's) keeps its items in
 * $HOME/.local/share/keyrings, and every such daemon of the same user shares
 * that file: test runs side by side then rewrite it under one another, and a
 * key written a moment ago is gone or unreadable. LATCHKEY_TEST_KEYRING=session
 * uses the caller's session anyway (to try another Secret Service provider).
 */
export async function startKeyring(t: Hooks): Promise<{ address: string; home?: string } | string> {
  const existing = process.env.DBUS_SESSION_BUS_ADDRESS;
  if (existing && process.env.LATCHKEY_TEST_KEYRING === 'session') return { address: existing };
  // eslint-disable-next-line prefer-const -- assigned after the hook that reads it is registered
  let address: string | undefined;
  t.after(() => {
    if (!address || process.env.DBUS_SESSION_BUS_ADDRESS !== address) return;
    if (existing) process.env.DBUS_SESSION_BUS_ADDRESS = existing;
    else delete process.env.DBUS_SESSION_BUS_ADDRESS;
  });
  const bus = await startPrivateBus(t);
  if (typeof bus === 'string') return bus;
  address = bus.address;
  process.env.DBUS_SESSION_BUS_ADDRESS = bus.address;
  return { address: bus.address, home: bus.home };
}
