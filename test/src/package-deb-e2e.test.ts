/**
 * The .debs installed on this machine (issue 15, "Packages"): `dpkg -i` both,
 * `latchkey-server init` and `start` as the latchkey user from the installed
 * paths (the unit's ExecStart and User=, run with setpriv: there is no
 * running systemd here), a token from the installed CLI, the installed agent
 * enrolling by itself from /etc/latchkey/enroll.json as latchkey.service
 * would run it, then `dpkg --purge` of both leaving nothing behind but the
 * server's data dir. Needs root and dpkg; idempotent (purges first), and
 * cleans up when it fails.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { artefact, linuxPackages } from './support/linux-packages.js';
import { freePort, mustRun, requireTools, run, skipOrRequire } from './support/processes.js';

const DATA = '/var/lib/latchkey-server';
/** Written into the data dir by this test: a data dir without it is someone's real CA and is never removed here. */
const MARKER = '.latchkey-package-e2e';
const PACKAGES = ['latchkey', 'latchkey-server'];
/** What the packages or their scripts make, beyond what `dpkg -L` lists. */
const MADE = ['/etc/latchkey', '/etc/latchkey-server', '/var/lib/latchkey', '/usr/lib/latchkey-server', '/usr/share/doc/latchkey', '/usr/share/doc/latchkey-server'];
/**
 * Where the packages, their scripts, dpkg and systemd put things: searched for
 * names with "latchkey" in them that were not there before the install. Not
 * all of /etc: other tests write there meanwhile (browser policies named
 * latchkey-test-*); /etc/latchkey* are in MADE.
 */
const SEARCH = ['/etc/systemd', '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/share', '/lib/systemd', '/var/lib', '/var/cache', '/opt', '/srv'];

const named = async (): Promise<string[]> =>
  (await run('find', [...SEARCH.filter((d) => existsSync(d)), '-xdev', '-iname', '*latchkey*', '-not', '-path', DATA, '-not', '-path', `${DATA}/*`])).stdout.trim().split('\n').filter(Boolean);

const installed = (pkg: string): boolean => /install ok installed|deinstall ok config-files/.test(spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout ?? '');

function purgeAll(): string {
  const present = PACKAGES.filter(installed);
  if (!present.length) return '';
  const r = spawnSync('dpkg', ['--purge', ...present], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dpkg --purge ${present.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Removes the data dir only if this test made it or it is empty. */
function removeTestData(): void {
  if (!existsSync(DATA)) return;
  // Empty (the packages installed, never initialized) or this test's: nothing of anyone's is lost.
  if (!existsSync(join(DATA, MARKER)) && readdirSync(DATA).length > 0) throw new Error(`${DATA} exists and was not made by this test (no ${MARKER}): it may hold a real CA; move it away to run this test`);
  spawnSync('rm', ['-rf', DATA]);
}

/** systemd.service(5) ExecStart= and User= of an installed unit, as argv (plain words: the units the packages ship use no quoting). */
function unitCommand(unit: string): { argv: string[]; user?: string } {
  const text = readFileSync(unit, 'utf8');
  const exec = /^ExecStart=(.+)$/m.exec(text)?.[1];
  assert.ok(exec, `${unit} has an ExecStart=`);
  assert.doesNotMatch(exec, /["'\\$%]/, 'ExecStart without quoting or specifiers');
  const user = /^User=(.+)$/m.exec(text)?.[1];
  return { argv: exec.trim().split(/\s+/), ...(user ? { user } : {}) };
}

/** argv as `user` (setpriv, as systemd's User=/Group= would: that user's groups, umask 0077 from the unit). */
const asUser = (user: string | undefined, argv: string[]): string[] => [
  ...(user ? ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--reset-env'] : []),
  'sh', '-c', 'umask 0077 && exec "$@"', 'sh', ...argv,
];

interface Proc { proc: ChildProcess; log(): string; exit: Promise<number | null> }
function start(argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const [cmd, ...args] = argv;
  const proc = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, log: () => out, exit: new Promise((r) => proc.on('close', r)) };
}

async function until(what: string, fn: () => Promise<boolean> | boolean, log: () => string, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`timed out waiting for ${what}\n${log()}`);
}

async function stop(p: Proc | undefined): Promise<void> {
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill('SIGTERM');
  const t = setTimeout(() => p.proc.kill('SIGKILL'), 20_000);
  await p.exit;
  clearTimeout(t);
}

describe('the .debs on this machine: install, init, start, zero-touch enroll, purge (issue 15)', () => {
  test('dpkg -i; the server as its unit runs it; the agent enrolls from /etc/latchkey/enroll.json; dpkg --purge keeps only the data dir', { timeout: 40 * 60_000 }, async (t) => {
    if (process.getuid?.() !== 0) return skipOrRequire(t, 'installing packages needs root (run the suite as root, as CI does)');
    if (!requireTools(t, 'dpkg', 'dpkg-deb', 'dpkg-shlibdeps', 'rpmbuild', 'strip', 'setpriv', 'adduser', 'curl')) return;
    if (existsSync('/var/lib/latchkey') && !installed('latchkey')) {
      assert.fail('/var/lib/latchkey exists without the latchkey package: it may be a real agent\'s identity, which purging would remove; move it away to run this test');
    }
    const built = await linuxPackages();
    if ('error' in built) throw new Error(built.error);
    const debs = [artefact(built.dir, /^latchkey_.*_amd64\.deb$/), artefact(built.dir, /^latchkey-server_.*_amd64\.deb$/)];

    // A machine where they are installed already (a previous run, two Node versions in CI): purge first.
    purgeAll();
    removeTestData();
    const running: { server?: Proc; agent?: Proc } = {};
    t.after(async () => {
      await stop(running.agent);
      await stop(running.server);
      purgeAll();
      removeTestData();
    });

    // Paths of the packages that exist before (shared directories: /usr/bin, /etc, …) may exist after.
    const contents = new Set<string>();
    for (const deb of debs) for (const l of (await mustRun('dpkg-deb', ['-c', deb])).stdout.trim().split('\n')) contents.add(l.split(/\s+/).slice(5).join(' ').replace(/^\./, '').replace(/\/$/, '') || '/');
    const existedBefore = new Set([...contents, ...MADE].filter((p) => existsSync(p)));
    const namedBefore = new Set(await named());
    const inst = await run('dpkg', ['-i', ...debs], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
    assert.equal(inst.code, 0, `dpkg -i:\n${inst.stdout}${inst.stderr}`);
    assert.match(inst.stdout, /latchkey-server init --data-dir \/var\/lib\/latchkey-server/, 'the postinst says what to do next');
    const listed = (await mustRun('dpkg', ['-L', ...PACKAGES])).stdout.trim().split('\n').filter((l) => l.startsWith('/') && l !== '/.');
    for (const p of ['/usr/bin/latchkey', '/usr/bin/latchkey-server', '/lib/systemd/system/latchkey.service', '/lib/systemd/system/latchkey-server.service', '/usr/lib/latchkey-server/node']) assert.ok(listed.includes(p), `dpkg -L lists ${p}`);

    // The postinst: a system user, the data dir 0700 and its own; no enroll file yet, so the agent is not enabled.
    const pw = (await mustRun('getent', ['passwd', 'latchkey'])).stdout.trim().split(':');
    assert.ok(Number(pw[2]) < 1000, `latchkey is a system user (uid ${pw[2]})`);
    assert.match(pw[6]!, /nologin|false/);
    const st = statSync(DATA);
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(st.uid, Number(pw[2]));
    writeFileSync(join(DATA, MARKER), 'made by test/src/package-deb-e2e.test.ts\n');

    // init as the unit's user, then start from the unit's ExecStart.
    const serverUnit = unitCommand('/lib/systemd/system/latchkey-server.service');
    assert.equal(serverUnit.user, 'latchkey');
    const port = await freePort();
    const initArgv = asUser('latchkey', ['/usr/bin/latchkey-server', 'init', '--data-dir', DATA, '--org', 'Package E2E', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, '--json']);
    const init = await run(initArgv[0]!, initArgv.slice(1));
    assert.equal(init.code, 0, `init:\n${init.stdout}${init.stderr}`);
    const { rootFingerprint } = JSON.parse(init.stdout) as { rootFingerprint: string };
    assert.equal(statSync(join(DATA, 'config.json')).uid, Number(pw[2]), 'the data dir\'s files are the latchkey user\'s');

    const server = (running.server = start(asUser(serverUnit.user, serverUnit.argv)));
    await until('the server to listen', () => /listening on https:\/\//.test(server.log()), server.log);
    // The console assets are found from the installed layout.
    const page = await run('curl', ['-sk', '-o', '-', '-w', '\n%{http_code}', `https://127.0.0.1:${port}/`]);
    assert.match(page.stdout, /<title>Latchkey<\/title>[\s\S]*\n200$/, 'the console is served from /usr/lib/latchkey-server/console');

    const admin = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
      const argv = asUser('latchkey', ['/usr/bin/latchkey-server', ...args, '--data-dir', DATA]);
      return run(argv[0]!, argv.slice(1));
    };
    const tok = await admin(['token', 'create', '--json']);
    assert.equal(tok.code, 0, `token create: ${tok.stderr}`);
    const { token } = JSON.parse(tok.stdout) as { token: string };

    // The MDM's files, then the agent as latchkey.service runs it (root, its ExecStart).
    mkdirSync('/etc/latchkey', { recursive: true });
    writeFileSync('/etc/latchkey/token', `${token}\n`, { mode: 0o600 });
    writeFileSync('/etc/latchkey/enroll.json', `${JSON.stringify({ server: `https://127.0.0.1:${port}`, caFingerprint: rootFingerprint, keystore: 'file', tokenFile: 'token' })}\n`, { mode: 0o644 });
    const agentUnit = unitCommand('/lib/systemd/system/latchkey.service');
    assert.deepEqual(agentUnit.argv, ['/usr/bin/latchkey', 'run', '--state-dir', '/var/lib/latchkey']);
    assert.equal(agentUnit.user, undefined, 'the agent service runs as root');
    const agent = (running.agent = start(asUser(undefined, agentUnit.argv), { LATCHKEY_BACKOFF_CAP_MS: '1000' }));
    await until('the agent to enroll', () => /enrolled: device [0-9a-f-]{36}/.test(agent.log()), () => `${agent.log()}\n--- server:\n${server.log()}`);
    const deviceId = /enrolled: device ([0-9a-f-]{36})/.exec(agent.log())![1]!;
    assert.ok(!agent.log().includes(token) && !server.log().includes(token), 'the token is never logged');
    const list = await admin(['devices', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { items: { id: string }[] }).items.map((d) => d.id), [deviceId]);
    const status = await run('/usr/bin/latchkey', ['--state-dir', '/var/lib/latchkey', 'status', '--json']);
    assert.equal((JSON.parse(status.stdout) as { deviceId?: string }).deviceId, deviceId);

    await stop(agent);
    await stop(server);
    assert.equal(server.proc.exitCode, 0, server.log());

    // Purge: nothing of either package is left but the data dir (and the user, by policy).
    const purge = await run('dpkg', ['--purge', ...PACKAGES]);
    assert.equal(purge.code, 0, `dpkg --purge:\n${purge.stdout}${purge.stderr}`);
    assert.match(purge.stdout + purge.stderr, /kept \/var\/lib\/latchkey-server: it holds the CA's keys and the database/);
    for (const p of PACKAGES) assert.ok(!installed(p), `${p} is purged`);
    const left = [...new Set([...listed, ...MADE])].filter((p) => existsSync(p) && !existedBefore.has(p));
    assert.deepEqual(left, [], 'every file and directory the packages made is gone');
    // Anything else named after latchkey (a unit's wants link, dpkg's info files, a doc dir) outside the kept data dir.
    const after = await named();
    assert.deepEqual(after.filter((p) => !namedBefore.has(p)), [], 'no file named after latchkey is left');
    assert.ok(existsSync(join(DATA, 'config.json')), `${DATA} is kept`);
    assert.ok(existsSync(join(DATA, 'admin-token')), 'with its keys and tokens');
  });
});
