/**
 * Throwaway PKCS#11 tokens for tests: a SoftHSM2 token in a temp dir, and a
 * software TPM (swtpm) with a tpm2-pkcs11 store. Each returns the module
 * path, token label, PIN and the environment the module needs (for this
 * process: assign it to process.env BEFORE the module is first opened, the
 * modules read it once; for child processes: pass it on), or a string naming
 * what is missing on this machine. Everything started is stopped and every
 * temp dir removed in `t.after`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pkcs11TestToken {
  module: string;
  tokenLabel: string;
  pin: string;
  soPin: string;
  /** Variables the module reads at C_Initialize. */
  env: Record<string, string>;
}

/** What the fixtures need from node:test's TestContext (or a suite-level stand-in). */
export interface AfterHook {
  after(fn: () => unknown): void;
}

const MULTIARCH = process.arch === 'x64' ? 'x86_64-linux-gnu' : process.arch === 'arm64' ? 'aarch64-linux-gnu' : `${process.arch}-linux-gnu`;
const SOFTHSM_MODULES = ['/usr/lib/softhsm/libsofthsm2.so', `/usr/lib/${MULTIARCH}/softhsm/libsofthsm2.so`, '/usr/local/lib/softhsm/libsofthsm2.so'];
const TPM2_PKCS11_MODULES = [`/usr/lib/${MULTIARCH}/pkcs11/libtpm2_pkcs11.so`, `/usr/lib/${MULTIARCH}/libtpm2_pkcs11.so.1`, '/usr/local/lib/libtpm2_pkcs11.so'];
const TABRMD_TCTI = [`/usr/lib/${MULTIARCH}/libtss2-tcti-tabrmd.so.0`, '/usr/local/lib/libtss2-tcti-tabrmd.so.0'];
const SWTPM_TCTI = [`/usr/lib/${MULTIARCH}/libtss2-tcti-swtpm.so.0`, '/usr/local/lib/libtss2-tcti-swtpm.so.0'];

const which = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const firstExisting = (paths: string[]): string | undefined => paths.find((p) => existsSync(p));

function run(cmd: string, args: string[], env: Record<string, string>): void {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args[0] ?? ''} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr || r.stdout).trim().slice(-2000)}`);
}

/** A SoftHSM2 token in a fresh temp dir (Debian: softhsm2). */
export async function softhsmToken(t: AfterHook, label = 'latchkey-test'): Promise<Pkcs11TestToken | string> {
  const module = firstExisting(SOFTHSM_MODULES);
  if (!module) return `SoftHSM2 (libsofthsm2.so; apt-get install softhsm2)`;
  if (!which('softhsm2-util')) return 'softhsm2-util (apt-get install softhsm2)';
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-softhsm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { SOFTHSM2_CONF: conf };
  const pin = '246813579';
  const soPin = '975318642';
  run('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], env);
  return { module, tokenLabel: label, pin, soPin, env };
}

async function freePortPair(): Promise<number> {
  for (let tries = 0; tries < 20; tries++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    if (port >= 65535) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free pair of TCP ports for swtpm');
}

async function waitFor(what: string, ms: number, probe: () => boolean | Promise<boolean>, alive: () => string | undefined): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const dead = alive();
    if (dead) throw new Error(`${what}: ${dead}`);
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} was not ready within ${ms} ms`);
}

function start(t: AfterHook, cmd: string, args: string[], env: Record<string, string>): { proc: ChildProcess; output: () => string; exited: () => string | undefined } {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-4000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    }
  });
  return {
    proc,
    output: () => out,
    exited: () => (proc.exitCode !== null || proc.signalCode !== null ? `${cmd} exited (${proc.exitCode ?? proc.signalCode}): ${out.trim()}` : proc.pid === undefined ? `${cmd} did not start` : undefined),
  };
}

const portOpen = (port: number): Promise<boolean> =>
  new Promise<boolean>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });

/**
 * Starts swtpm (TPM 2.0, already initialised and started up) on a free pair
 * of loopback ports over `stateDir`, stopped in `t.after`. Returns the TPM
 * port: tpm2-tools reach it with `TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=N`.
 */
export async function startSwtpm(t: AfterHook, stateDir: string): Promise<number> {
  const port = await freePortPair();
  const swtpm = start(
    t,
    'swtpm',
    ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--tpmstate', `dir=${stateDir}`, '--flags', 'not-need-init,startup-clear'],
    {},
  );
  // Probe the control port: the TPM port serves one client at a time.
  await waitFor('swtpm', 5000, () => portOpen(port + 1), swtpm.exited);
  return port;
}

export const hasCommand = which;
export const SWTPM_TCTI_LIBS = SWTPM_TCTI;
export const firstExistingPath = firstExisting;

/**
 * A software TPM 2.0 (swtpm) behind tpm2-abrmd on a private D-Bus session
 * bus, and a tpm2-pkcs11 store with one token (`tpm2_ptool init` +
 * `addtoken`). The resource manager is needed: swtpm, like a real TPM, holds
 * 3 transient objects, and tpm2-pkcs11 and tpm2_ptool run out of them
 * ("out of memory for object contexts") when they talk to it directly.
 * On a real machine the kernel's /dev/tpmrm0 plays that part.
 * `tpmState`: serve that swtpm state dir (already set up, e.g. with EK
 * certificates by tpm-fixtures.ts) instead of a fresh one.
 */
export async function swtpmToken(t: AfterHook, label = 'latchkey-tpm', opts: { tpmState?: string } = {}): Promise<Pkcs11TestToken | string> {
  if (!which('swtpm')) return 'swtpm (apt-get install swtpm swtpm-tools)';
  if (!which('tpm2-abrmd')) return 'tpm2-abrmd (apt-get install tpm2-abrmd)';
  if (!which('dbus-daemon')) return 'dbus-daemon (apt-get install dbus-daemon)';
  if (!which('tpm2_ptool')) return 'tpm2_ptool (apt-get install libtpm2-pkcs11-tools)';
  if (!which('tpm2_getcap')) return 'tpm2-tools (apt-get install tpm2-tools)';
  const module = firstExisting(TPM2_PKCS11_MODULES);
  if (!module) return 'tpm2-pkcs11 (libtpm2_pkcs11.so; apt-get install libtpm2-pkcs11-1)';
  if (!firstExisting(SWTPM_TCTI)) return 'the swtpm TCTI (apt-get install libtss2-tcti-swtpm0)';
  if (!firstExisting(TABRMD_TCTI)) return 'the tpm2-abrmd TCTI (apt-get install libtss2-tcti-tabrmd0)';

  const dir = mkdtempSync(join(tmpdir(), 'latchkey-swtpm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  if (!opts.tpmState) mkdirSync(join(dir, 'state'));
  mkdirSync(join(dir, 'store'));

  const port = await startSwtpm(t, opts.tpmState ?? join(dir, 'state'));

  const bus = `unix:path=${join(dir, 'bus')}`;
  const dbus = start(t, 'dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=${bus}`], {});
  await waitFor('dbus-daemon', 5000, () => existsSync(join(dir, 'bus')), dbus.exited);

  const tcti = 'tabrmd:bus_type=session';
  const env = {
    DBUS_SESSION_BUS_ADDRESS: bus,
    TPM2_PKCS11_TCTI: tcti,
    TPM2_PKCS11_STORE: join(dir, 'store'),
    TPM2TOOLS_TCTI: tcti,
    TPM2_PKCS11_LOG_LEVEL: '0',
  };
  const abrmd = start(
    t,
    'tpm2-abrmd',
    ['--session', `--tcti=swtpm:host=127.0.0.1,port=${port}`, ...(process.getuid?.() === 0 ? ['--allow-root'] : [])],
    env,
  );
  await waitFor(
    'tpm2-abrmd',
    10_000,
    () => spawnSync('tpm2_getcap', ['properties-fixed'], { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 5000 }).status === 0,
    abrmd.exited,
  );

  const pin = '135792468';
  const soPin = '864297531';
  run('tpm2_ptool', ['init', '--path', join(dir, 'store')], env);
  run('tpm2_ptool', ['addtoken', '--pid=1', `--label=${label}`, `--userpin=${pin}`, `--sopin=${soPin}`, '--path', join(dir, 'store')], env);
  return { module, tokenLabel: label, pin, soPin, env };
}
